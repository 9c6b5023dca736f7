"""Public status routes, mounted at /status/ (namespace `status`)."""

from __future__ import annotations

from django.urls import path, re_path

from monitoring.status import views

app_name = "status"
urlpatterns = [
    path("", views.status_page, name="page"),
    re_path(r"^badge/(?P<key>[A-Za-z0-9._-]{1,100})\.svg$", views.badge, name="badge"),
]
