"""Benchmark-only routes: the same trivial view with the full stack and with everything switched off."""

from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.access.scopes import Scope


class PingFullApi(APIView):
    """Full stack: API-key auth, scope check, per-key rate limit (Redis), tracing middleware."""

    required_scopes = {"GET": Scope.EVENTS_READ}

    def get(self, request):  # type: ignore[no-untyped-def]
        return Response({"status": "ok"})


class PingBareApi(PingFullApi):
    """The same view with authentication, scopes and rate limiting switched off."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []


urlpatterns = [
    path("bench/full/", PingFullApi.as_view()),
    path("bench/bare/", PingBareApi.as_view()),
    path("", include("controlplane.urls")),
]
