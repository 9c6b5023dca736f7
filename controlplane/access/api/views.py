"""API-key management over the API (`admin` scope)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.access import selectors, services
from controlplane.access.api.serializers import APIKeyCreatedSerializer, APIKeyCreateSerializer, APIKeySerializer
from controlplane.access.models import APIKey
from controlplane.access.scopes import Scope
from controlplane.actors import actor_from_request


class APIKeyListCreateApi(ListAPIView):
    """List keys; create one (its plaintext is in the response, once)."""

    required_scopes = {"*": Scope.ADMIN}
    serializer_class = APIKeySerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.api_key_list()

    @extend_schema(request=APIKeyCreateSerializer, responses={201: APIKeyCreatedSerializer})
    def post(self, request: Request) -> Response:
        data = APIKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        key, plaintext = services.api_key_create(
            name=fields["name"],
            scopes=fields["scopes"],
            rate=fields["rate"],
            namespaces=fields["namespaces"],
            expires_at=fields["expires_at"],
            actor=actor_from_request(request),
        )
        key.key = plaintext  # type: ignore[attr-defined]
        return Response(APIKeyCreatedSerializer(key).data, status=status.HTTP_201_CREATED)


class APIKeyRevokeApi(APIView):
    """Revoke a key by prefix; it is refused from the next request on."""

    required_scopes = {"*": Scope.ADMIN}

    @extend_schema(request=None, responses={200: APIKeySerializer})
    def post(self, request: Request, prefix: str) -> Response:
        key = get_object_or_404(APIKey, prefix=prefix)
        services.api_key_revoke(key, actor=actor_from_request(request))
        return Response(APIKeySerializer(key).data)
