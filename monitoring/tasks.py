"""Celery tasks of the monitoring app: thin adapters over the services."""
