"""Pipelines: definitions (pipeline + ordered steps + immutable versions), runs, deliveries and step stats."""

from __future__ import annotations

import json
from typing import Any

from django.db import models

from controlplane.delivery.messages import OutboundRequest
from controlplane.delivery.models import DeliveryStatus, OutboundDelivery
from controlplane.egress import Purpose
from pipelines.querysets import DeliveryQuerySet, RunQuerySet

__all__ = [
    "Delivery",
    "DeliveryStatus",
    "ErrorPolicy",
    "OnError",
    "Pipeline",
    "PipelineVersion",
    "Run",
    "RunMode",
    "RunStatus",
    "Step",
    "StepStats",
]


class ErrorPolicy(models.TextChoices):
    """What a failing step (with on_error=fail) does to the rest of the run."""

    STOP = "stop", "stop at the failing step"
    CONTINUE = "continue", "run the remaining steps, status failed"


class OnError(models.TextChoices):
    """What a step's own failure means."""

    FAIL = "fail", "fail the packet"
    SKIP = "skip", "ignore the failure, keep the packet as before the step"


class Pipeline(models.Model):
    """A named chain of steps; `version` is bumped by every change to it or its steps."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1, editable=False)
    error_policy = models.CharField(max_length=10, choices=ErrorPolicy.choices, default=ErrorPolicy.STOP)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Step(models.Model):
    """One step of a pipeline; lower priority runs first, ties by creation."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=100)
    # No `choices`: the kinds are the plain dict `pipelines.steps.STEP_KINDS` (a new kind needs no migration);
    # the services refuse unknown kinds.
    kind = models.CharField(max_length=20, help_text="transform, validate, route, filter or enrich.")
    priority = models.IntegerField(default=100, help_text="Lower runs first; ties run in creation order.")
    enabled = models.BooleanField(default=True)
    condition = models.TextField(
        blank=True, help_text="Optional JMESPath over the packet; the step runs only when truthy."
    )
    config = models.JSONField(default=dict, blank=True, help_text="The kind's configuration (see docs/pipelines.md).")
    on_error = models.CharField(max_length=10, choices=OnError.choices, default=OnError.FAIL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["priority", "id"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "name"], name="pipelines_step_unique_name")]

    def __str__(self) -> str:
        return f"{self.pipeline_id}:{self.name}"


class PipelineVersion(models.Model):
    """An immutable snapshot of a pipeline's definition; runs execute exactly one of these."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    definition = models.JSONField()
    actor = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "version"], name="pipelines_version_unique")]

    def __str__(self) -> str:
        return f"{self.pipeline_id}@{self.version}"


class RunStatus(models.TextChoices):
    """Where a run is: pending (async, queued), running (claimed by a worker) or its outcome."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DROPPED = "dropped"


class RunMode(models.TextChoices):
    """How a run was asked for."""

    SYNC = "sync"
    ASYNC = "async"
    BATCH = "batch"


class Run(models.Model):
    """A recorded run: every async run, every failed run, and sync runs asked to be recorded."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="runs")
    version = models.PositiveIntegerField()
    mode = models.CharField(max_length=10, choices=RunMode.choices, default=RunMode.SYNC)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING)
    input = models.JSONField()
    output = models.JSONField(null=True, blank=True)
    routes = models.JSONField(default=list, blank=True)
    trace = models.JSONField(default=list, blank=True)
    chained = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    request_id = models.CharField(max_length=100, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    # The config namespaces an async run was authorized to read when it was submitted (`pipelines.access`);
    # null: any (the trusted system, or a run submitted before runs carried their authorization).
    config_namespaces = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Async bookkeeping for crash recovery (`services.runs_recover`): when its task message was last sent,
    # when a worker claimed it, and how many claims it has had.
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["pipeline", "-id"], name="pipelines_run_recent")]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"


class Delivery(OutboundDelivery):
    """A packet routed to a registered service, sent by the delivery engine (`controlplane.delivery`).

    Each attempt POSTs the packet to a passing instance of the service, rotating through them on retries.
    """

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="deliveries")
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
    service = models.CharField(max_length=100)
    packet = models.JSONField()
    instance_url = models.CharField(max_length=500, blank=True)
    request_id = models.CharField(max_length=100, blank=True)

    objects = DeliveryQuerySet.as_manager()

    delivery_kind = "pipeline"
    egress_purpose = Purpose.DELIVERY
    failed_event_kind = "pipeline.delivery_failed"
    attempt_related = ("pipeline",)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"delivery {self.pk} to {self.service} ({self.status})"

    @classmethod
    def deadline_seconds(cls) -> float:
        from pipelines.conf import delivery_timeout_seconds

        return delivery_timeout_seconds()

    @classmethod
    def max_attempts(cls) -> int:
        from pipelines.conf import delivery_max_attempts

        return delivery_max_attempts()

    @classmethod
    def backoff_base_seconds(cls) -> float:
        from pipelines.conf import delivery_backoff_seconds

        return delivery_backoff_seconds()

    def outbound_request(self) -> OutboundRequest:
        """The packet as JSON to the next passing instance (the URL is kept in `instance_url`)."""
        from controlplane.delivery.errors import DeliveryNoTarget
        from registry.selectors import instances_for_delivery

        self.instance_url = ""
        instances = instances_for_delivery(self.service)
        if not instances:
            raise DeliveryNoTarget(f"no passing instance of service {self.service!r}")
        instance = instances[self.attempts % len(instances)]  # rotate through instances on retries
        url = instance.url + str((instance.metadata or {}).get("pipeline_path") or "/")
        self.instance_url = url[:500]
        body = json.dumps(self.packet, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "controlplane-pipelines/1",
            "X-Controlplane-Pipeline": self.pipeline.slug,
            "X-Controlplane-Delivery": str(self.pk),
            "X-Request-ID": self.request_id,
        }
        return OutboundRequest(url, body, headers)

    def attempt_fields(self) -> dict[str, Any]:
        return {"instance_url": self.instance_url}

    def failed_event(self) -> tuple[str, dict[str, Any]] | None:
        return self.pipeline.slug, {"service": self.service}

    def attempt_recorded(self, *, retrying: bool) -> None:
        from pipelines import metrics

        outcome = "delivered" if self.status == DeliveryStatus.DELIVERED else "retry" if retrying else "failed"
        metrics.DELIVERIES.labels(self.pipeline.slug, outcome).inc()

    def target_label(self) -> str:
        return self.service


class StepStats(models.Model):
    """Per pipeline and step counters, folded in from each process's memory every few seconds.

    `step` is empty for the pipeline as a whole. Latency buckets are cumulative counts per upper bound
    (seconds), as in Prometheus.
    """

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="stats")
    step = models.CharField(max_length=100, blank=True)
    received = models.BigIntegerField(default=0)
    sent = models.BigIntegerField(default=0)
    dropped = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    skipped = models.BigIntegerField(default=0)
    latency_sum_ms = models.FloatField(default=0)
    latency_count = models.BigIntegerField(default=0)
    latency_buckets = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pipeline", "step"]
        verbose_name_plural = "step stats"
        constraints = [models.UniqueConstraint(fields=["pipeline", "step"], name="pipelines_stats_unique")]

    def __str__(self) -> str:
        return f"{self.pipeline_id}:{self.step or '(pipeline)'}"
