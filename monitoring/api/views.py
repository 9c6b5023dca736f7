"""Monitoring API: views."""
