"""Reads of the monitoring app."""
