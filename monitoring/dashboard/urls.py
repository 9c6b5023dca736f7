"""Dashboard routes, mounted at /dashboard/ (namespace `dashboard`)."""

from __future__ import annotations

from django.urls import path

from monitoring.dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("services/<str:name>/", views.service_detail, name="service"),
    path("pipelines/", views.pipeline_list, name="pipelines"),
    path("pipelines/<slug:slug>/", views.pipeline_detail, name="pipeline"),
    path("alerts/", views.alerts, name="alerts"),
    path("events/", views.event_list, name="events"),
    path("live/", views.live_stream, name="live"),
    path("live/state/", views.live_state, name="live-state"),
]
