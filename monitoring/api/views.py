"""Monitoring API: metric series, uptime and maintenance windows — thin adapters over selectors and services."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status as http_status
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.mixins import ListModelMixin, RetrieveModelMixin
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from controlplane.access.scopes import Scope, grants
from controlplane.actors import actor_from_request
from monitoring.api import serializers as s
from monitoring.models import MaintenanceWindow, SeriesKind
from monitoring.selectors.series import SeriesQueryError, series_read
from monitoring.selectors.targets import UnknownTarget, series_target
from monitoring.selectors.uptime import uptime_many
from monitoring.services import maintenance as maintenance_services

READ_WRITE = {"GET": Scope.MONITORING_READ, "*": Scope.MONITORING_WRITE}


def _query(serializer_class: type, request) -> dict:  # type: ignore[no-untyped-def, type-arg]
    params = {key: request.query_params.get(key) for key in request.query_params}
    serializer = serializer_class(data=params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _may_read_namespace(request, namespace: str) -> bool:  # type: ignore[no-untyped-def]
    """A namespace's series are config metadata: the key needs `config:read` and the namespace in its limit."""
    key = request.auth
    return key is not None and grants(key.scopes, Scope.CONFIG_READ) and key.allows_namespace(namespace)


class SeriesApi(GenericAPIView):
    """GET: points of one series (kind, target, metric) from `from` to `to` at `step`, at most 2,000.

    The step (default: the smallest of 1m, 5m, 15m, 30m, 1h, 3h, 6h, 12h, 1d, 7d giving at most 2,000
    points) is served by the coarsest roll-up whose buckets divide it; a value is null where nothing is
    known. Targets of checks, instances and services are named as `<service>`, `<service>/<instance_id>`,
    `<service>/<instance_id>/<check>` or a check id.
    """

    required_scopes = {"GET": Scope.MONITORING_READ}
    serializer_class = s.SeriesSerializer
    pagination_class = None

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", str, required=True, enum=s.SERIES_KINDS),
            OpenApiParameter("target", {"type": "string", "maxLength": 300}, required=True),
            OpenApiParameter("metric", str, required=True, enum=s.SERIES_METRICS, description="one of the kind's"),
            OpenApiParameter(
                "from", OpenApiTypes.DATETIME, description="ISO 8601 with offset; default 24 h before `to`"
            ),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="ISO 8601 with offset; default now"),
            OpenApiParameter(
                "step",
                {"type": "string", "pattern": s.STEP_PATTERN},
                description=f"seconds (whole minutes), or 5m / 1h / 1d; at most {s.MAX_POINTS} points",
            ),
        ],
        responses=s.SeriesSerializer,
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        query = _query(s.SeriesQuerySerializer, request)
        if query["kind"] == SeriesKind.NAMESPACE and not _may_read_namespace(request, query["target"]):
            # The config API's rule: a namespace the key may not read looks absent (no existence oracle).
            raise NotFound(f"No namespace {query['target']!r}.")
        try:
            target = series_target(query["kind"], query["target"])
            answer = series_read(
                kind=query["kind"],
                target=target,
                metric=query["metric"],
                start=query["from"],
                end=query["to"],
                step=query.get("step"),
            )
        except UnknownTarget as exc:
            raise ValidationError({"target": [str(exc)]}) from None
        except SeriesQueryError as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None
        body = {
            "kind": answer.kind,
            "target": query["target"],
            "metric": answer.metric,
            "unit": answer.unit,
            "start": answer.start,
            "end": answer.end,
            "step": answer.step,
            "resolution": answer.resolution,
            "points": [{"t": t, "value": value, "count": count} for t, value, count in answer.values],
        }
        return Response(s.SeriesSerializer(body).data)


class UptimeApi(GenericAPIView):
    """GET: uptime of a target over windows (`windows=1h,24h,7d,30d,90d`): passing / (window - maintenance).

    Unknown time (no result covering it) is reported in `unknown_seconds` and counts against uptime.
    """

    required_scopes = {"GET": Scope.MONITORING_READ}
    serializer_class = s.UptimeSerializer
    pagination_class = None

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "target",
                {"type": "string", "maxLength": 400, "pattern": s.UPTIME_TARGET_PATTERN},
                required=True,
                description="service:<name>, instance:<svc>/<id>, check:<id>",
            ),
            OpenApiParameter(
                "windows",
                {"type": "string", "pattern": s.WINDOWS_PATTERN},
                description="one to ten distinct, comma-separated, default 1h,24h,7d,30d,90d",
            ),
        ],
        responses=s.UptimeSerializer,
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        query = _query(s.UptimeQuerySerializer, request)
        kind, name = query["target"]
        try:
            target = series_target(kind, name)
        except UnknownTarget as exc:
            raise ValidationError({"target": [str(exc)]}) from None
        results = uptime_many(targets=[(kind, target)], windows=query["windows"])[(kind, target)]
        return Response(s.UptimeSerializer({"target": f"{kind}:{name}", "windows": results}).data)


class MaintenanceWindowViewSet(ListModelMixin, RetrieveModelMixin, GenericViewSet):
    """Maintenance windows: one-off or recurring (weekdays, start time, duration, IANA time zone)."""

    required_scopes = READ_WRITE
    serializer_class = s.MaintenanceWindowSerializer
    queryset = MaintenanceWindow.objects.select_related("service", "instance__service").order_by("-id")

    def create(self, request):  # type: ignore[no-untyped-def]
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        window = maintenance_services.maintenance_window_create(
            actor=actor_from_request(request), **serializer.validated_data
        )
        return Response(self.get_serializer(window).data, status=http_status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):  # type: ignore[no-untyped-def]
        window = self.get_object()
        serializer = self.get_serializer(window, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            window = maintenance_services.maintenance_window_update(
                window=window, actor=actor_from_request(request), **serializer.validated_data
            )
        return Response(self.get_serializer(window).data)

    def destroy(self, request, pk=None):  # type: ignore[no-untyped-def]
        window = self.get_object()
        maintenance_services.maintenance_window_delete(window=window, actor=actor_from_request(request))
        return Response(status=http_status.HTTP_204_NO_CONTENT)
