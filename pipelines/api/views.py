"""Pipeline API: definitions (CRUD with ordered steps), run / batch / dry run, metrics, runs.

Views are thin: bodies of run endpoints are read raw (so that size and depth limits apply before
anything else), packets are checked by the executor's `prepare_packet`, and services do the rest.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ParseError, ValidationError
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.access.scopes import Scope
from controlplane.actors import actor_from_request
from controlplane.errors import Conflict, PayloadTooLarge
from controlplane.jsonbounds import loads_bounded
from controlplane.schema import boolean_param
from pipelines import selectors, services
from pipelines.access import ConfigReader
from pipelines.api.serializers import (
    PacketSerializer,
    PipelineInputSerializer,
    PipelineSerializer,
    RunAcceptedSerializer,
    RunResultSerializer,
    RunSerializer,
)
from pipelines.conf import max_batch_packets, max_packet_bytes
from pipelines.executor import PacketError, prepare_packet
from pipelines.models import Run
from pipelines.selectors import PipelineRef


def _flag(request: Request, name: str) -> bool:
    return boolean_param(request, name)  # true/false as the OpenAPI document says; anything else is a 400


class PipelineListCreateApi(ListAPIView):
    """List pipelines with their steps; create one (`pipeline.changed`)."""

    required_scopes = {"GET": Scope.PIPELINES_READ, "POST": Scope.PIPELINES_WRITE}
    serializer_class = PipelineSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.pipeline_list()

    @extend_schema(request=PipelineInputSerializer, responses={201: PipelineSerializer})
    def post(self, request: Request) -> Response:
        data = PipelineInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        pipeline = services.pipeline_create(
            **fields, actor=actor_from_request(request), reader=ConfigReader.from_request(request)
        )
        return Response(PipelineSerializer(selectors.pipeline_get(pipeline.slug)).data, status=status.HTTP_201_CREATED)


class PipelineDetailApi(GenericAPIView):
    """One pipeline: read, replace (PUT, steps replaced), change (PATCH), delete."""

    required_scopes = {
        "GET": Scope.PIPELINES_READ,
        "PUT": Scope.PIPELINES_WRITE,
        "PATCH": Scope.PIPELINES_WRITE,
        "DELETE": Scope.PIPELINES_WRITE,
    }
    serializer_class = PipelineSerializer

    def get(self, request: Request, slug: str) -> Response:
        return Response(PipelineSerializer(selectors.pipeline_get(slug)).data)

    @extend_schema(request=PipelineInputSerializer, responses=PipelineSerializer)
    def put(self, request: Request, slug: str) -> Response:
        return self._update(request, slug, partial=False)

    @extend_schema(request=PipelineInputSerializer, responses=PipelineSerializer)
    def patch(self, request: Request, slug: str) -> Response:
        return self._update(request, slug, partial=True)

    def _update(self, request: Request, slug: str, *, partial: bool) -> Response:
        pipeline = selectors.pipeline_get(slug)
        data = PipelineInputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        if partial:
            fields = {k: v for k, v in fields.items() if k in request.data}
        steps = fields.pop("steps", None)
        updated = services.pipeline_update(
            pipeline,
            steps=steps,
            actor=actor_from_request(request),
            reader=ConfigReader.from_request(request),
            **fields,
        )
        return Response(PipelineSerializer(selectors.pipeline_get(updated.slug)).data)

    def delete(self, request: Request, slug: str) -> Response:
        services.pipeline_delete(selectors.pipeline_get(slug), actor=actor_from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _ref(slug: str) -> PipelineRef:
    ref = selectors.pipeline_ref(slug)
    if ref is None:
        raise NotFound(f"No pipeline {slug!r}.")
    if not ref.enabled:
        raise Conflict(f"The pipeline {slug!r} is disabled.")
    return ref


def _body(request: Request, limit: int) -> Any:
    """The JSON body, with the size limit (413) checked before parsing and depth/syntax (400) while parsing."""
    length = request.META.get("CONTENT_LENGTH")
    if length and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
    try:
        raw = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge("The body is larger than the server accepts.") from None
    if len(raw) > limit:
        raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
    if not raw.strip():
        raise ParseError("The body is empty; send a JSON packet.")
    try:
        return loads_bounded(raw)
    except ValueError as exc:
        raise ParseError(str(exc)) from None


def _packet(raw: Any, prefix: str = "") -> dict:
    try:
        return prepare_packet(raw)
    except PacketError as exc:
        raise ValidationError({f"{prefix}{k}" if prefix else k: v for k, v in exc.errors.items()}) from None


def _packet_size(packet: Any) -> int:
    import json

    return len(json.dumps(packet, separators=(",", ":"), ensure_ascii=False).encode())


class PipelineRunApi(APIView):
    """Run one packet: the result synchronously, or `?async=true` -> 202 with a run id to poll."""

    required_scopes = {"POST": Scope.PIPELINES_RUN}

    @extend_schema(
        request=PacketSerializer,
        responses={200: RunResultSerializer, 202: RunAcceptedSerializer},
        parameters=[
            OpenApiParameter("async", bool, description="Queue the run; poll /api/v1/runs/{id}/."),
            OpenApiParameter("record", bool, description="Keep a sync run as a Run (failed runs are always kept)."),
        ],
    )
    def post(self, request: Request, slug: str) -> Response:
        raw = _body(request, max_packet_bytes())
        packet = _packet(raw)
        ref = _ref(slug)
        actor = actor_from_request(request)
        reader = ConfigReader.from_request(request)
        # Both flags are read first, so `?record=` breaking its documented type is a 400 on an async run too.
        record = _flag(request, "record")
        if _flag(request, "async"):
            run = services.run_submit_async(ref, [packet], actor=actor, reader=reader)[0]
            body = {
                "run_id": run.pk,
                "status": run.status,
                "pipeline_version": run.version,
                "url": f"/api/v1/runs/{run.pk}/",
            }
            return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})
        return Response(services.pipeline_run(ref, packet, record=record, actor=actor, reader=reader))


class PipelineBatchApi(APIView):
    """Run up to PIPELINE_MAX_BATCH packets (`[...]` or `{"packets": [...]}`); one result per packet."""

    required_scopes = {"POST": Scope.PIPELINES_RUN}

    @extend_schema(
        # An array of packets (at least one; the PacketRequest component comes from the run operation).
        request={
            "application/json": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/PacketRequest"}}
        },
        responses={200: OpenApiTypes.OBJECT, 202: OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter("trace", bool, description="Include each packet's per-step trace."),
            OpenApiParameter("async", bool, description="Queue every packet as an async run; 202 with run ids."),
        ],
    )
    def post(self, request: Request, slug: str) -> Response:
        limit, per_packet = max_batch_packets(), max_packet_bytes()
        raw = _body(request, max(per_packet * 4, per_packet * limit // 8))
        items = raw.get("packets") if isinstance(raw, dict) else raw
        if not isinstance(items, list):
            raise ValidationError({"packets": ['Send a JSON array of packets, or {"packets": [...]}.']})
        if len(items) > limit:
            raise PayloadTooLarge(f"A batch holds at most {limit} packets; this one has {len(items)}.")
        if not items:
            raise ValidationError({"packets": ["The batch is empty."]})
        packets = []
        # A packet cannot be larger than the whole body, so sizes need measuring only for big bodies.
        measure = len(request.body) > per_packet
        for index, item in enumerate(items):
            if measure and _packet_size(item) > per_packet:
                raise PayloadTooLarge(f"Packet {index} is larger than {per_packet} bytes.")
            packets.append(_packet(item, prefix=f"packets.{index}."))
        ref = _ref(slug)
        actor = actor_from_request(request)
        reader = ConfigReader.from_request(request)
        trace = _flag(request, "trace")  # checked on an async batch too (400 for a non-boolean)
        if _flag(request, "async"):
            runs = services.run_submit_async(ref, packets, actor=actor, reader=reader)
            return Response(
                {
                    "pipeline_version": ref.version,
                    "runs": [{"run_id": r.pk, "url": f"/api/v1/runs/{r.pk}/"} for r in runs],
                },
                status=status.HTTP_202_ACCEPTED,
            )
        return Response(services.pipeline_run_batch(ref, packets, trace=trace, actor=actor, reader=reader))


class PipelineDryRunApi(APIView):
    """Run one packet with a before/after trace per step; nothing is recorded, counted or delivered.

    Authorized like a run (403 for config the key may not read); a result over budget answers 422.
    """

    required_scopes = {"POST": Scope.PIPELINES_RUN}

    @extend_schema(request=PacketSerializer, responses=RunResultSerializer)
    def post(self, request: Request, slug: str) -> Response:
        packet = _packet(_body(request, max_packet_bytes()))
        ref = selectors.pipeline_ref(slug)
        if ref is None:
            raise NotFound(f"No pipeline {slug!r}.")
        return Response(services.pipeline_dry_run(ref, packet, reader=ConfigReader.from_request(request)))


class PipelineMetricsApi(APIView):
    """Per pipeline and per step: received, sent, dropped, errors, skipped and latency."""

    required_scopes = {"GET": Scope.PIPELINES_READ}

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, slug: str) -> Response:
        from pipelines.stats import stats_flush_quietly

        pipeline = selectors.pipeline_get(slug)
        stats_flush_quietly(force=True)
        return Response(selectors.pipeline_metrics(pipeline))


class PipelineRunsApi(ListAPIView):
    """The pipeline's recorded runs, newest first."""

    required_scopes = {"GET": Scope.PIPELINES_READ}
    serializer_class = RunSerializer

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "reader": ConfigReader.from_request(self.request)}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Run.objects.none()
        pipeline = selectors.pipeline_get(self.kwargs["slug"])
        return pipeline.runs.select_related("pipeline").prefetch_related("deliveries").order_by("-id")


class RunDetailApi(APIView):
    """One recorded run (poll an async run here until its status is no longer pending)."""

    required_scopes = {"GET": Scope.PIPELINES_RUN}

    @extend_schema(responses=RunSerializer)
    def get(self, request: Request, pk: int) -> Response:
        try:
            run = selectors.run_get(pk)
        except Http404:
            raise NotFound(f"No run {pk}.") from None
        return Response(RunSerializer(run, context={"reader": ConfigReader.from_request(request)}).data)
