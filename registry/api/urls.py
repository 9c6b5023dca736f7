"""Registry routes, included under /api/v1/."""

from django.urls import path, register_converter
from rest_framework.routers import SimpleRouter

from registry.api import views
from registry.models import NAME_PATTERN


class NameConverter:
    """A service name or instance id: the model's URL-safe name rule, so every stored name is routable."""

    regex = NAME_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(NameConverter, "registryname")

router = SimpleRouter()
router.register("services", views.ServiceViewSet, basename="registry-service")

urlpatterns = [
    path("services/<registryname:name>/instances/", views.InstanceListApi.as_view(), name="registry-instances"),
    path(
        "services/<registryname:name>/instances/<registryname:instance_id>/",
        views.InstanceDetailApi.as_view(),
        name="registry-instance",
    ),
    path(
        "services/<registryname:name>/instances/<registryname:instance_id>/heartbeat/",
        views.HeartbeatApi.as_view(),
        name="registry-heartbeat",
    ),
    path(
        "services/<registryname:name>/instances/<registryname:instance_id>/maintenance/",
        views.MaintenanceApi.as_view(),
        name="registry-maintenance",
    ),
    path("checks/<int:pk>/", views.CheckDetailApi.as_view(), name="registry-check"),
    path("checks/<int:pk>/results/", views.CheckResultsApi.as_view(), name="registry-check-results"),
    path("checks/<int:pk>/run/", views.CheckRunApi.as_view(), name="registry-check-run"),
    path("discover/<registryname:name>/", views.DiscoverApi.as_view(), name="registry-discover"),
    *router.urls,
]
