"""Config API routes (mounted under /api/v1/). Fixed sub-paths come before the catch-all entry route."""

from django.urls import path, register_converter

from configstore.api import views
from configstore.api.watch import config_watch


class KeyConverter:
    """A dotted config key in a URL (validated fully by the services)."""

    regex = r"[a-z0-9_]+(?:\.[a-z0-9_]+)*"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(KeyConverter, "configkey")

urlpatterns = [
    path("config/", views.NamespaceListApi.as_view(), name="config-namespaces"),
    path("config/<str:namespace>/", views.NamespaceConfigApi.as_view(), name="config-namespace"),
    path("config/<str:namespace>/watch/", config_watch, name="config-watch"),
    path("config/<str:namespace>/import/", views.ImportApi.as_view(), name="config-import"),
    path("config/<str:namespace>/history/", views.HistoryApi.as_view(), name="config-history"),
    path("config/<str:namespace>/history/<int:number>/", views.RevisionApi.as_view(), name="config-revision"),
    path("config/<str:namespace>/rollback/", views.RollbackApi.as_view(), name="config-rollback"),
    path("config/<str:namespace>/rules/", views.RuleListApi.as_view(), name="config-rules"),
    path("config/<str:namespace>/rules/<int:pk>/", views.RuleDetailApi.as_view(), name="config-rule"),
    path("config/<str:namespace>/sources/", views.SourceListApi.as_view(), name="config-sources"),
    path("config/<str:namespace>/sources/<int:pk>/", views.SourceDetailApi.as_view(), name="config-source"),
    path(
        "config/<str:namespace>/sources/<int:pk>/reload/", views.SourceReloadApi.as_view(), name="config-source-reload"
    ),
    path("config/<str:namespace>/<configkey:key>/", views.EntryApi.as_view(), name="config-entry"),
]
