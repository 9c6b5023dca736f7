"""controlplane: service registry, configuration store and pipelines behind one admin and one API."""

from controlplane.celery import app as celery_app

__all__ = ["celery_app"]
