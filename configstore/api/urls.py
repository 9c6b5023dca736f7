"""Config API routes (mounted under /api/v1/). Fixed sub-paths come before the catch-all entry route."""

from django.urls import include, path, register_converter

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

# Grouped under the namespace prefix, so resolving a read (the hottest API path) matches the prefix once
# instead of trying every config route in full.
namespace_patterns = [
    path("", views.NamespaceConfigApi.as_view(), name="config-namespace"),
    path("watch/", config_watch, name="config-watch"),
    path("import/", views.ImportApi.as_view(), name="config-import"),
    path("history/", views.HistoryApi.as_view(), name="config-history"),
    path("history/<int:number>/", views.RevisionApi.as_view(), name="config-revision"),
    path("rollback/", views.RollbackApi.as_view(), name="config-rollback"),
    path("rules/", views.RuleListApi.as_view(), name="config-rules"),
    path("rules/<int:pk>/", views.RuleDetailApi.as_view(), name="config-rule"),
    path("sources/", views.SourceListApi.as_view(), name="config-sources"),
    path("sources/<int:pk>/", views.SourceDetailApi.as_view(), name="config-source"),
    path("sources/<int:pk>/reload/", views.SourceReloadApi.as_view(), name="config-source-reload"),
    path("<configkey:key>/", views.EntryApi.as_view(), name="config-entry"),
]

urlpatterns = [
    path("config/", views.NamespaceListApi.as_view(), name="config-namespaces"),
    path("config/<str:namespace>/", include(namespace_patterns)),
]
