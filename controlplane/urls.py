"""URL map: admin (the operators' home), the v1 API, schema/docs, and the health endpoints."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from controlplane.observability import views as observability
from monitoring.dashboard import views as monitoring_views

admin.autodiscover()  # SimpleAdminConfig in INSTALLED_APPS: only URL-serving processes load the admin
admin.site.site_header = "controlplane"
admin.site.site_title = "controlplane"
admin.site.index_title = "Services, configuration and pipelines"

# Apps mount distinct prefixes, so order only decides how many patterns a request tries: config reads,
# the most frequent API call (every service reads and watches its config), come first.
api_v1 = [
    path("", include("configstore.api.urls")),
    path("", include("controlplane.access.api.urls")),
    path("", include("controlplane.events.api.urls")),
    path("", include("registry.api.urls")),
    path("", include("pipelines.api.urls")),
    path("", include("monitoring.api.urls")),
]

urlpatterns = [
    path("", monitoring_views.landing, name="landing"),  # the dashboard for signed-in staff, else the admin
    path("dashboard/", include("monitoring.dashboard.urls")),
    path("status/", include("monitoring.status.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", observability.healthz, name="healthz"),
    path("readyz", observability.readyz, name="readyz"),
    path("metrics", observability.metrics, name="metrics"),
]

handler404 = "controlplane.errors_views.not_found"
handler500 = "controlplane.errors_views.server_error"
