"""Every write of the monitoring app (`<entity>_<verb>`, keyword-only, in transaction.atomic)."""
