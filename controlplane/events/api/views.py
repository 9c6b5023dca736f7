"""Event log and webhook subscription endpoints."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.access.scopes import Scope
from controlplane.actors import actor_from_request
from controlplane.events import selectors, services
from controlplane.events.api.serializers import (
    EventSerializer,
    WebhookDeliverySerializer,
    WebhookSubscriptionCreatedSerializer,
    WebhookSubscriptionSerializer,
)
from controlplane.events.models import WebhookSubscription


class EventListApi(ListAPIView):
    """The event log, newest first; filter by `kind` (`check.*` allowed), `subject`, `since` (event id)."""

    required_scopes = {"*": Scope.EVENTS_READ}
    serializer_class = EventSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", str),
            OpenApiParameter("subject", str),
            OpenApiParameter("since", {"type": "integer", "minimum": 0}, description="Only events with a larger id."),
        ]
    )
    def get(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        return super().get(request, *args, **kwargs)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        since = self.request.query_params.get("since")
        if since is not None and not since.isdigit():
            raise ValidationError({"since": ["An event id (integer)."]})
        return selectors.event_list(
            kind=self.request.query_params.get("kind"),
            subject=self.request.query_params.get("subject"),
            since_id=int(since) if since is not None else None,
        )


class WebhookListCreateApi(ListAPIView):
    """List subscriptions; create one (the secret, generated when omitted, is returned once)."""

    required_scopes = {"GET": Scope.EVENTS_READ, "POST": Scope.ADMIN}
    serializer_class = WebhookSubscriptionSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.webhook_subscription_list()

    @extend_schema(request=WebhookSubscriptionSerializer, responses={201: WebhookSubscriptionCreatedSerializer})
    def post(self, request: Request) -> Response:
        data = WebhookSubscriptionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        subscription, secret = services.webhook_subscription_create(
            **data.validated_data, actor=actor_from_request(request)
        )
        body = WebhookSubscriptionSerializer(subscription).data
        body["secret"] = secret
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookDetailApi(GenericAPIView):
    """Read, change or delete one subscription; `deliveries` lists its recent delivery log."""

    serializer_class = WebhookSubscriptionSerializer

    required_scopes = {"GET": Scope.EVENTS_READ, "PUT": Scope.ADMIN, "PATCH": Scope.ADMIN, "DELETE": Scope.ADMIN}

    @extend_schema(responses=WebhookSubscriptionSerializer)
    def get(self, request: Request, pk: int) -> Response:
        subscription = get_object_or_404(WebhookSubscription, pk=pk)
        body = WebhookSubscriptionSerializer(subscription).data
        body["deliveries"] = WebhookDeliverySerializer(
            selectors.webhook_delivery_list(subscription)[:20], many=True
        ).data
        return Response(body)

    @extend_schema(request=WebhookSubscriptionSerializer, responses=WebhookSubscriptionSerializer)
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(request=WebhookSubscriptionSerializer, responses=WebhookSubscriptionSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=True)

    def _update(self, request: Request, pk: int, *, partial: bool) -> Response:
        subscription = get_object_or_404(WebhookSubscription, pk=pk)
        data = WebhookSubscriptionSerializer(subscription, data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        fields = {k: v for k, v in data.validated_data.items() if not (k == "secret" and not v)}
        services.webhook_subscription_update(subscription, actor=actor_from_request(request), **fields)
        return Response(WebhookSubscriptionSerializer(subscription).data)

    def delete(self, request: Request, pk: int) -> Response:
        subscription = get_object_or_404(WebhookSubscription, pk=pk)
        services.webhook_subscription_delete(subscription, actor=actor_from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
