"""Test-only URLs: the real ones plus views slower than gunicorn's timeout, to check the request deadline."""

import time

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.access.scopes import Scope


class SlowApi(APIView):
    """Sleeps far longer than the test gunicorn's timeout."""

    required_scopes = {"*": Scope.EVENTS_READ}

    def get(self, request):  # type: ignore[no-untyped-def]
        time.sleep(60)
        return Response({"slept": True})


def slow_plain(request: HttpRequest) -> JsonResponse:
    """A plain Django view that busy-waits (pure Python, no sleep) past the timeout."""
    end = time.monotonic() + 60
    while time.monotonic() < end:
        sum(range(1000))
    return JsonResponse({"done": True})


urlpatterns = [
    path("api/v1/slow/", SlowApi.as_view()),
    path("api/plain-slow/", slow_plain),
    path("", include("controlplane.urls")),
]
