"""Registry routes, included under /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from registry.api import views

router = SimpleRouter()
router.register("services", views.ServiceViewSet, basename="registry-service")

urlpatterns = [
    path("services/<slug:name>/instances/", views.InstanceListApi.as_view(), name="registry-instances"),
    path(
        "services/<slug:name>/instances/<str:instance_id>/", views.InstanceDetailApi.as_view(), name="registry-instance"
    ),
    path(
        "services/<slug:name>/instances/<str:instance_id>/heartbeat/",
        views.HeartbeatApi.as_view(),
        name="registry-heartbeat",
    ),
    path(
        "services/<slug:name>/instances/<str:instance_id>/maintenance/",
        views.MaintenanceApi.as_view(),
        name="registry-maintenance",
    ),
    path("checks/<int:pk>/", views.CheckDetailApi.as_view(), name="registry-check"),
    path("checks/<int:pk>/results/", views.CheckResultsApi.as_view(), name="registry-check-results"),
    path("checks/<int:pk>/run/", views.CheckRunApi.as_view(), name="registry-check-run"),
    path("discover/<slug:name>/", views.DiscoverApi.as_view(), name="registry-discover"),
    *router.urls,
]
