"""URLconf of the watch server's handler (`controlplane.watchserver`): the blocking queries only.

The routes are written as in the project URLconf, so metrics and access logs label them alike.
"""

from django.urls import path

import registry.api.urls  # noqa: F401 - registers the `registryname` path converter
from configstore.api.watch import watch_response
from registry.watch import discover_watch_response

urlpatterns = [
    path("api/v1/config/<str:namespace>/watch/", watch_response, name="config-watch"),
    path("api/v1/discover/<registryname:name>/", discover_watch_response, name="registry-discover"),
]
