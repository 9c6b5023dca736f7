"""Registry API: thin adapters from HTTP to `registry.selectors` (reads) and `registry.services` (writes)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status as http_status
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet

from controlplane.access.scopes import Scope
from controlplane.actors import actor_from_request
from controlplane.errors import Conflict, ServiceUnavailable
from controlplane.watchhub import INDEX_MAX, WAIT_PATTERN, parse_blocking_params
from registry import selectors, services
from registry.api import serializers as s
from registry.models import NAME_PATTERN, Check, CheckResult, Instance, InstanceStatus, ServiceType
from registry.watch import max_wait_seconds

READ_WRITE = {"GET": Scope.REGISTRY_READ, "*": Scope.REGISTRY_WRITE}
SERVICE_PATH = [OpenApiParameter("name", str, OpenApiParameter.PATH, description="service name")]
INSTANCE_PATH = [
    *SERVICE_PATH,
    OpenApiParameter("instance_id", str, OpenApiParameter.PATH, description="instance id within the service"),
]


def _choice_param(request, name: str, choices: list[str]) -> str | None:  # type: ignore[no-untyped-def]
    value = request.query_params.get(name) or None
    if value is not None and value not in choices:
        raise ValidationError({name: [f"Choose one of {', '.join(choices)}."]})
    return value


class ServiceViewSet(GenericViewSet):
    """Service CRUD by name; list filters `type`, `tag`, `capability`, `status`, `search`."""

    required_scopes = READ_WRITE
    lookup_field = "name"
    lookup_value_regex = NAME_PATTERN
    serializer_class = s.ServiceSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        params = self.request.query_params
        return selectors.service_list(
            type=_choice_param(self.request, "type", ServiceType.values),
            tag=params.get("tag") or None,
            capability=params.get("capability") or None,
            status=_choice_param(self.request, "status", InstanceStatus.values),
            search=params.get("search") or None,
        )

    # The filters belong to the list only (on the class they were documented for create/retrieve/... too).
    @extend_schema(
        parameters=[
            # An empty value is no filter (`?type=&status=` from a form), so the document lists it too.
            OpenApiParameter("type", str, enum=["", *ServiceType.values]),
            OpenApiParameter("tag", str),
            OpenApiParameter("capability", str),
            OpenApiParameter(
                "status",
                str,
                enum=["", *InstanceStatus.values],
                description="services with an instance in this status (empty: any)",
            ),
            OpenApiParameter("search", str),
        ]
    )
    def list(self, request):  # type: ignore[no-untyped-def]
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.ServiceSerializer(page, many=True).data)

    @extend_schema(request=s.ServiceWriteSerializer, responses={201: s.ServiceDetailSerializer})
    def create(self, request):  # type: ignore[no-untyped-def]
        body = s.ServiceWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        service = services.service_create(**body.validated_data, actor=actor_from_request(request))
        return Response(s.ServiceDetailSerializer(selectors.service_get(name=service.name)).data, status=201)

    @extend_schema(responses=s.ServiceDetailSerializer)
    def retrieve(self, request, name: str):  # type: ignore[no-untyped-def]
        return Response(s.ServiceDetailSerializer(selectors.service_get(name=name)).data)

    @extend_schema(request=s.ServiceWriteSerializer, responses=s.ServiceDetailSerializer)
    def partial_update(self, request, name: str):  # type: ignore[no-untyped-def]
        service = selectors.service_get(name=name)
        body = s.ServiceWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        services.service_update(service=service, actor=actor_from_request(request), **body.validated_data)
        return Response(s.ServiceDetailSerializer(selectors.service_get(name=name)).data)

    def destroy(self, request, name: str):  # type: ignore[no-untyped-def]
        services.service_delete(service=selectors.service_get(name=name), actor=actor_from_request(request))
        return Response(status=http_status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=SERVICE_PATH)
class InstanceListApi(GenericAPIView):
    """GET: a service's instances. POST: register (upsert by `instance_id`) an instance with its checks."""

    queryset = Instance.objects.none()  # for the schema only; lookups go through selectors

    required_scopes = READ_WRITE
    serializer_class = s.InstanceSerializer
    pagination_class = None  # the GET answers the whole (small) list, as the document now says

    @extend_schema(operation_id="services_instances_list", responses=s.InstanceSerializer(many=True))
    def get(self, request, name: str):  # type: ignore[no-untyped-def]
        service = selectors.service_get(name=name)
        return Response(s.InstanceSerializer(service.instances.all(), many=True).data)

    @extend_schema(
        request=s.InstanceRegisterSerializer, responses={200: s.InstanceSerializer, 201: s.InstanceSerializer}
    )
    def post(self, request, name: str):  # type: ignore[no-untyped-def]
        service = selectors.service_get(name=name)
        body = s.InstanceRegisterSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        data["checks"] = [dict(check) for check in data.get("checks", [])]
        instance, created = services.instance_register(service=service, actor=actor_from_request(request), **data)
        instance = selectors.instance_get(service_name=name, instance_id=instance.instance_id)
        return Response(s.InstanceSerializer(instance).data, status=201 if created else 200)


@extend_schema(parameters=INSTANCE_PATH)
class InstanceDetailApi(GenericAPIView):
    """GET: one instance. DELETE: deregister it."""

    queryset = Instance.objects.none()  # for the schema only; lookups go through selectors

    required_scopes = READ_WRITE
    serializer_class = s.InstanceSerializer

    def get(self, request, name: str, instance_id: str):  # type: ignore[no-untyped-def]
        return Response(s.InstanceSerializer(selectors.instance_get(service_name=name, instance_id=instance_id)).data)

    def delete(self, request, name: str, instance_id: str):  # type: ignore[no-untyped-def]
        instance = selectors.instance_get(service_name=name, instance_id=instance_id)
        services.instance_deregister(instance=instance, actor=actor_from_request(request))
        return Response(status=http_status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=INSTANCE_PATH)
class HeartbeatApi(GenericAPIView):
    """PUT: pass the instance's TTL check(s), or set them to `warning`/`critical` with an output."""

    queryset = Instance.objects.none()  # for the schema only; lookups go through selectors

    required_scopes = {"PUT": Scope.REGISTRY_WRITE}
    serializer_class = s.HeartbeatSerializer
    pagination_class = None

    @extend_schema(request=s.HeartbeatSerializer, responses=s.CheckSerializer(many=True))
    def put(self, request, name: str, instance_id: str):  # type: ignore[no-untyped-def]
        instance = selectors.instance_get(service_name=name, instance_id=instance_id)
        body = s.HeartbeatSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        checks = services.check_ttl_update(
            instance=instance,
            check_name=body.validated_data.get("check") or None,
            status=body.validated_data["status"],
            output=body.validated_data["output"],
            actor=actor_from_request(request),
        )
        if not checks:
            field = "check" if body.validated_data.get("check") else "non_field_errors"
            raise ValidationError({field: ["The instance has no such ttl check."]})
        return Response(s.CheckSerializer(checks, many=True).data)


@extend_schema(parameters=INSTANCE_PATH)
class MaintenanceApi(GenericAPIView):
    """PUT: put an instance in or out of maintenance (it leaves discovery while in it)."""

    queryset = Instance.objects.none()  # for the schema only; lookups go through selectors

    required_scopes = {"PUT": Scope.REGISTRY_WRITE}
    serializer_class = s.MaintenanceSerializer

    @extend_schema(request=s.MaintenanceSerializer, responses=s.InstanceSerializer)
    def put(self, request, name: str, instance_id: str):  # type: ignore[no-untyped-def]
        instance = selectors.instance_get(service_name=name, instance_id=instance_id)
        body = s.MaintenanceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.instance_set_maintenance(instance=instance, actor=actor_from_request(request), **body.validated_data)
        return Response(s.InstanceSerializer(selectors.instance_get(service_name=name, instance_id=instance_id)).data)


class CheckDetailApi(GenericAPIView):
    """GET: a check's configuration and state."""

    queryset = Check.objects.none()  # for the schema's path parameter type

    required_scopes = {"GET": Scope.REGISTRY_READ}
    serializer_class = s.CheckSerializer

    def get(self, request, pk: int):  # type: ignore[no-untyped-def]
        return Response(s.CheckSerializer(selectors.check_get(check_id=pk)).data)


class CheckResultsApi(ListAPIView):
    """GET: a check's results, newest first (paginated)."""

    required_scopes = {"GET": Scope.REGISTRY_READ}
    serializer_class = s.CheckResultSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL kwargs
            return CheckResult.objects.none()
        return selectors.check_results(check=selectors.check_get(check_id=self.kwargs["pk"]))


class CheckRunApi(GenericAPIView):
    """POST: probe the check now and return its updated state (409 while a batch is probing it)."""

    queryset = Check.objects.none()  # for the schema's path parameter type

    required_scopes = {"POST": Scope.REGISTRY_WRITE}
    serializer_class = s.CheckSerializer

    @extend_schema(request=None, responses=s.CheckSerializer)
    def post(self, request, pk: int):  # type: ignore[no-untyped-def]
        check = services.check_run_now(check=selectors.check_get(check_id=pk))
        if check is None:
            raise Conflict("A scheduled probe of this check is in progress; try again shortly.")
        return Response(s.CheckSerializer(selectors.check_get(check_id=pk)).data)


@extend_schema(
    parameters=[
        OpenApiParameter(
            "status", str, enum=["", "passing", "warning"], description="only this status (default or empty: both)"
        ),
        OpenApiParameter("tag", str, many=True, description="every given tag"),
        OpenApiParameter("capability", str),
        OpenApiParameter(
            "index",
            {"type": "integer", "minimum": 0, "maximum": INDEX_MAX},
            description="blocking query: answer once the registry index passes this (served by the watch server)",
        ),
        OpenApiParameter(
            "wait",
            {"type": "string", "pattern": WAIT_PATTERN},
            description="longest to block with `index`: seconds, or with ms/s/m, e.g. 30s (default and cap 5m)",
        ),
        OpenApiParameter(
            "X-Registry-Index",
            int,
            OpenApiParameter.HEADER,
            response=True,
            description="the service's registry index, for the next blocking query",
        ),
    ],
    responses=s.DiscoveredInstanceSerializer(many=True),
)
class DiscoverApi(APIView):
    """GET: the instances to send traffic to: passing and warning by default, `?status=passing` for passing only.

    Every answer carries the service's registry index (`X-Registry-Index`). With `?index=N`, a blocking
    query: the watch server blocks until the index passes N (`registry.watch`); here, on the WSGI API, it
    answers at once when the index is already past N (or with `wait=0s`), else 503 naming the watch server.
    """

    required_scopes = {"GET": Scope.REGISTRY_READ}

    def get(self, request, name: str):  # type: ignore[no-untyped-def]
        wanted = _choice_param(request, "status", ["passing", "warning"])
        statuses = (wanted,) if wanted else selectors.DISCOVERABLE_DEFAULT
        blocking = "index" in request.query_params
        index, wait, errors = parse_blocking_params(request.query_params, max_wait=max_wait_seconds())
        # Refused with or without `index`, as the watch server does: the document gives their rules either way.
        if errors:
            raise ValidationError(errors)
        current, instances = selectors.discover_indexed(
            service_name=name,
            statuses=statuses,
            tags=[tag for tag in request.query_params.getlist("tag") if tag],
            capability=request.query_params.get("capability") or None,
        )
        if blocking and current <= index and wait > 0:
            raise ServiceUnavailable(
                "Blocking discovery queries are served by the ASGI watch server; route /api/v1/discover/ with "
                "?index= to it (see docs/registry.md) or pass wait=0s."
            )
        response = Response(s.DiscoveredInstanceSerializer(instances, many=True).data)
        response["X-Registry-Index"] = str(current)
        response["Cache-Control"] = "no-store"
        return response
