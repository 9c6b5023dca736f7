"""Monitoring API: serializers."""
