"""Test-only URLs: the real ones plus views that fail, to check the 500 path."""

from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.access.scopes import Scope


class BoomApi(APIView):
    required_scopes = {"*": Scope.EVENTS_READ}

    def get(self, request):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret-internal-detail DATABASE_PASSWORD=hunter2")

    def post(self, request):  # type: ignore[no-untyped-def]
        return Response({"received": request.data})


def plain_boom(request):  # type: ignore[no-untyped-def]
    raise ValueError("secret-internal-detail in a plain view")


urlpatterns = [
    path("api/v1/boom/", BoomApi.as_view()),
    path("api/plain-boom/", plain_boom),
    path("", include("controlplane.urls")),
]
