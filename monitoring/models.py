"""Monitoring: metric series and their points, maintenance windows, alert rules and states, notification
channels, silences, incidents and the public status-page flag.

Nothing outside this app imports it: other apps are read (registry results, pipeline stats, events), never
written.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from monitoring.querysets import AlertStateQuerySet, MaintenanceWindowQuerySet, MetricPointQuerySet, SilenceQuerySet


class SeriesKind(models.TextChoices):
    """What a series is about; `target` is read in that kind's namespace (see docs/monitoring.md)."""

    CHECK = "check"  # target: the check's id
    INSTANCE = "instance"  # target: the instance's id
    SERVICE = "service"  # target: the service's id
    ROUTE = "route"  # target: "<METHOD> <route pattern>"
    PIPELINE = "pipeline"  # target: the pipeline's slug
    STEP = "step"  # target: "<pipeline slug>/<step name>"
    NAMESPACE = "namespace"  # target: the config namespace's name
    DELIVERY = "delivery"  # target: a delivery kind of controlplane.delivery ("webhook", "pipeline", …)
    CELERY = "celery"  # target: a queue name
    SYSTEM = "system"  # target: "" — the platform as a whole


class Resolution(models.IntegerChoices):
    """A roll-up level, as its bucket width in seconds."""

    MINUTE = 60, "1 minute"
    HOUR = 3600, "1 hour"
    DAY = 86400, "1 day"


class MetricSeries(models.Model):
    """One time series: (kind, target, metric). Its points live in `MetricPoint`, one row per bucket."""

    kind = models.CharField(max_length=20, choices=SeriesKind.choices)
    target = models.CharField(max_length=300, blank=True)
    metric = models.CharField(max_length=64)
    # Last cumulative counter values seen, for series derived from counters another app keeps
    # (pipelines' StepStats): the next sample stores only the difference, so nothing is counted twice.
    cursor = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "metric series"
        ordering = ["kind", "target", "metric"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "target", "metric"], name="monitoring_series_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}:{self.metric}"


class MetricPoint(models.Model):
    """The aggregate of one series over one bucket [bucket, bucket + resolution).

    Mergeable by design, so a coarser level is computed exactly from the finer one: `count` samples with
    sum `total`, `min`/`max`, a latency `histogram` (counts per bound of `monitoring.conf.LATENCY_BOUNDS_MS`,
    the last counting values above every bound, stored as sparse text "index:count,…", see
    `monitoring.points.sparse`) and a `breakdown` (label -> number, e.g. seconds spent in each status).
    """

    series = models.ForeignKey(MetricSeries, on_delete=models.CASCADE, related_name="points", db_index=False)
    resolution = models.PositiveIntegerField(choices=Resolution.choices)
    bucket = models.DateTimeField()
    count = models.BigIntegerField(default=0)
    total = models.FloatField(default=0)
    min = models.FloatField(null=True, blank=True)
    max = models.FloatField(null=True, blank=True)
    histogram = models.JSONField(null=True, blank=True)
    breakdown = models.JSONField(null=True, blank=True)

    objects = MetricPointQuerySet.as_manager()

    class Meta:
        ordering = ["series", "resolution", "bucket"]
        constraints = [
            # Also the read index: every read is one series, one level, a range of buckets.
            models.UniqueConstraint(fields=["series", "resolution", "bucket"], name="monitoring_point_unique"),
        ]
        indexes = [models.Index(fields=["resolution", "bucket"], name="monitoring_point_level_time")]

    def __str__(self) -> str:
        return f"{self.series_id}@{self.resolution}s {self.bucket:%Y-%m-%d %H:%M}"


class RollupWatermark(models.Model):
    """How far one roll-up has completed: every bucket before `position` is final for that source and level."""

    name = models.CharField(max_length=100, unique=True)
    position = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} @ {self.position:%Y-%m-%d %H:%M}"


class MaintenanceScope(models.TextChoices):
    """What a maintenance window covers."""

    SERVICE = "service"
    INSTANCE = "instance"
    EVERYTHING = "everything"


class MaintenanceKind(models.TextChoices):
    """A single interval, or a weekly repetition."""

    ONE_OFF = "one_off", "one-off"
    RECURRING = "recurring"


class MaintenanceOrigin(models.TextChoices):
    """Who made the window: an operator, or the registry's per-instance maintenance flag."""

    MANUAL = "manual"
    REGISTRY_FLAG = "registry_flag", "registry maintenance flag"


class MaintenanceWindow(models.Model):
    """Time during which targets are in maintenance: excluded from uptime, notifications suppressed.

    One-off: [starts_at, ends_at) (ends_at empty = open-ended, as the registry flag while it is set).
    Recurring: on `weekdays` (0 = Monday) at `start_time` for `duration_minutes`, wall-clock in `timezone`,
    between the optional `starts_at` and `ends_at`.
    """

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    scope = models.CharField(max_length=12, choices=MaintenanceScope.choices)
    service = models.ForeignKey("registry.Service", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey("registry.Instance", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=MaintenanceKind.choices, default=MaintenanceKind.ONE_OFF)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    weekdays = models.JSONField(default=list, blank=True, help_text="Recurring: weekdays, 0 = Monday … 6 = Sunday.")
    start_time = models.TimeField(null=True, blank=True, help_text="Recurring: local start time.")
    duration_minutes = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)]
    )
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA time zone, e.g. Europe/Paris.")
    origin = models.CharField(max_length=20, choices=MaintenanceOrigin.choices, default=MaintenanceOrigin.MANUAL)
    enabled = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MaintenanceWindowQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at", "-id"]
        indexes = [models.Index(fields=["enabled", "kind", "ends_at"], name="monitoring_maint_lookup")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Cross-field rules shared by admin, API and the registry-flag sync (see `monitoring.validation`)."""
        from monitoring.validation import maintenance_window_errors

        errors = maintenance_window_errors(self)
        if errors:
            raise ValidationError(errors)


class AlertTargetKind(models.TextChoices):
    """What an alert rule watches."""

    SERVICE = "service"
    INSTANCE = "instance"
    CHECK = "check"
    PIPELINE = "pipeline"
    ROUTE = "route"
    NAMESPACE = "namespace"
    SYSTEM = "system"
    LABELS = "labels", "every target matching labels/tags"


class Comparison(models.TextChoices):
    """How a value is compared with the threshold."""

    GT = "gt", ">"
    GE = "ge", ">="
    LT = "lt", "<"
    LE = "le", "<="
    EQ = "eq", "=="
    NE = "ne", "!="


class Severity(models.TextChoices):
    """How urgent an alert is."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


def default_group_by() -> list[str]:
    """One group per alert name (= per rule) unless the channel says otherwise (Alertmanager's usual route)."""
    return ["alertname"]


class NotificationChannel(models.Model):
    """Where notifications go, and how: an Alertmanager receiver together with the route that leads to it.

    `kind` names a module of `monitoring.channels` (webhook, email, slack). The alerts of every rule that
    notifies this channel are grouped by the values of `group_by` (`[]`: one group for the whole channel;
    `["..."]`: every label, i.e. one group per alert), and each group is one notification stream with
    Alertmanager's timing (defaults 30 s, 5 min, 4 h) and `send_resolved` (see `monitoring.alerting.grouping`).
    """

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20)
    url = models.URLField(max_length=500, blank=True)
    secret = models.CharField(max_length=128, blank=True, help_text="HMAC-SHA256 signing secret (webhook).")
    recipients = models.JSONField(default=list, blank=True, help_text="Email addresses (email).")
    enabled = models.BooleanField(default=True)
    group_by = models.JSONField(
        default=default_group_by,
        blank=True,
        help_text='Label names whose values make a group, across rules; [] = one group; ["..."] = every label.',
    )
    group_wait_seconds = models.PositiveIntegerField(default=30, help_text="A new group waits this long.")
    group_interval_seconds = models.PositiveIntegerField(
        default=300, help_text="Wait before notifying about alerts new to (or resolved in) a notified group."
    )
    repeat_interval_seconds = models.PositiveIntegerField(
        default=4 * 3600, help_text="Re-send a group whose alerts are still firing, unchanged."
    )
    send_resolved = models.BooleanField(default=True)
    # One flusher at a time: a worker claims the channel's groups until `flushing_until` (conditional UPDATE).
    flushing_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AlertRule(models.Model):
    """A condition on a metric of a target (or of every target matching labels), Prometheus semantics."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    target_kind = models.CharField(max_length=12, choices=AlertTargetKind.choices)
    target = models.CharField(max_length=300, blank=True)
    match_labels = models.JSONField(default=dict, blank=True, help_text="Target kind `labels`: label -> value.")
    metric = models.CharField(max_length=30)
    comparison = models.CharField(max_length=2, choices=Comparison.choices, default=Comparison.GT)
    threshold = models.FloatField(default=0)
    for_seconds = models.PositiveIntegerField(default=0)
    keep_firing_for_seconds = models.PositiveIntegerField(default=0)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    # Grouping and its timing belong to the channel (Alertmanager's route + receiver), so the alerts of
    # several rules sharing group labels go out as one message.
    channels = models.ManyToManyField(NotificationChannel, blank=True, related_name="rules")
    # Flapping: more than `flap_threshold` state changes in `flap_window_seconds`; quiet for `flap_quiet_seconds`
    # to leave it.
    flap_threshold = models.PositiveSmallIntegerField(default=5)
    flap_window_seconds = models.PositiveIntegerField(default=600)
    flap_quiet_seconds = models.PositiveIntegerField(default=600)
    # One evaluator at a time: a worker claims the rule until `evaluating_until` by a conditional UPDATE.
    evaluating_until = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AlertStatus(models.TextChoices):
    """Where an alert instance is (Prometheus: inactive -> pending -> firing -> resolved)."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class AlertState(models.Model):
    """The current state of one rule on one target."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="states")
    target_key = models.CharField(max_length=300)
    labels = models.JSONField(default=dict, blank=True)
    fingerprint = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=10, choices=AlertStatus.choices, default=AlertStatus.INACTIVE)
    value = models.FloatField(null=True, blank=True)
    active_since = models.DateTimeField(null=True, blank=True)
    firing_since = models.DateTimeField(null=True, blank=True)
    keep_firing_until = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    flapping = models.BooleanField(default=False)
    flapping_since = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AlertStateQuerySet.as_manager()

    class Meta:
        ordering = ["rule", "target_key"]
        constraints = [models.UniqueConstraint(fields=["rule", "target_key"], name="monitoring_alert_state_unique")]
        indexes = [models.Index(fields=["status"], name="monitoring_alert_status")]

    def __str__(self) -> str:
        return f"{self.rule_id}:{self.target_key} {self.status}"


class AlertTransition(models.Model):
    """One stored state change of an alert (also emitted as `alert.<status>`); rows are appended."""

    alert = models.ForeignKey(AlertState, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=10, choices=AlertStatus.choices)
    to_status = models.CharField(max_length=10, choices=AlertStatus.choices)
    value = models.FloatField(null=True, blank=True)
    flapping = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["alert", "-created_at"], name="monitoring_transition_recent")]

    def __str__(self) -> str:
        return f"{self.alert_id}: {self.from_status} -> {self.to_status}"


class Silence(models.Model):
    """Suppresses notifications of alerts whose labels match every matcher, between starts_at and ends_at.

    `matchers`: a list of {"name": label, "op": "=" | "!=" | "=~" | "!~", "value": str} (Alertmanager).
    """

    matchers = models.JSONField(default=list)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    author = models.CharField(max_length=150)
    comment = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SilenceQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at", "-id"]
        indexes = [models.Index(fields=["ends_at", "starts_at"], name="monitoring_silence_time")]

    def __str__(self) -> str:
        return f"silence {self.pk} by {self.author}"


class StatusPageService(models.Model):
    """A service's presence on the public status page (registry knows nothing of it)."""

    service = models.OneToOneField("registry.Service", on_delete=models.CASCADE, related_name="+")
    public = models.BooleanField(default=False)
    display_name = models.CharField(max_length=200, blank=True, help_text="Shown instead of the service name.")
    description = models.CharField(max_length=500, blank=True)
    position = models.PositiveIntegerField(default=100)

    class Meta:
        ordering = ["position", "service_id"]
        indexes = [models.Index(fields=["public", "position"], name="monitoring_status_public")]

    def __str__(self) -> str:
        return f"{self.service_id} ({'public' if self.public else 'private'})"


class IncidentStatus(models.TextChoices):
    """Stage of an incident (Statuspage vocabulary)."""

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class Incident(models.Model):
    """An incident written by an admin for the status page."""

    title = models.CharField(max_length=200)
    status = models.CharField(max_length=15, choices=IncidentStatus.choices, default=IncidentStatus.INVESTIGATING)
    services = models.ManyToManyField("registry.Service", blank=True, related_name="+")
    started_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return self.title


class IncidentUpdate(models.Model):
    """One update of an incident, with the status it moved to."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="updates")
    status = models.CharField(max_length=15, choices=IncidentStatus.choices)
    message = models.TextField()
    author = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.incident_id}: {self.status}"


# Alerting's own tables (groups, notification outbox) live in their module; imported here so they are models
# of this app.
from monitoring.alerting.models import AlertGroup, Notification  # noqa: E402,F401
