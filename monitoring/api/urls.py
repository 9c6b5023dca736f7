"""Monitoring API routes, included under /api/v1/."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from monitoring.api import views

router = SimpleRouter()
router.register("maintenance", views.MaintenanceWindowViewSet, basename="monitoring-maintenance")

urlpatterns = [
    path("metrics/series/", views.SeriesApi.as_view(), name="monitoring-series"),
    path("metrics/uptime/", views.UptimeApi.as_view(), name="monitoring-uptime"),
    path("alerts/", include("monitoring.api.alert_urls")),
    *router.urls,
]
