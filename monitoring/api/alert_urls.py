"""Alerting API routes, included under /api/v1/alerts/."""

from __future__ import annotations

from django.urls import path

from monitoring.api import alerts as views

urlpatterns = [
    path("", views.AlertListApi.as_view(), name="alert-list"),
    path("rules/", views.AlertRuleListApi.as_view(), name="alert-rule-list"),
    path("rules/<int:pk>/", views.AlertRuleDetailApi.as_view(), name="alert-rule-detail"),
    path("silences/", views.SilenceListApi.as_view(), name="alert-silence-list"),
    path("silences/<int:pk>/", views.SilenceDetailApi.as_view(), name="alert-silence-detail"),
    path("channels/", views.NotificationChannelListApi.as_view(), name="alert-channel-list"),
    path("channels/<int:pk>/", views.NotificationChannelDetailApi.as_view(), name="alert-channel-detail"),
]
