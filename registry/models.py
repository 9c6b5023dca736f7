"""Catalog and health-check models: services, their instances, checks and check results."""

from __future__ import annotations

import ipaddress
import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from registry import conf
from registry.querysets import CheckQuerySet, InstanceQuerySet, ServiceQuerySet

HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)*\.?$"
)
ONE_DAY = 86400
# Service names, instance ids and check names appear as URL path segments: ASCII letters, digits and
# `._-`, starting with a letter or digit (so never `.` or `..`, no `/`, no look-alike or bidi characters).
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
validate_url_safe_name = RegexValidator(
    rf"\A{NAME_PATTERN}\Z",
    "Use ASCII letters, digits, '.', '_' and '-', starting with a letter or digit.",
    code="invalid_name",
)


class ServiceType(models.TextChoices):
    """What kind of thing a service is."""

    HTTP_API = "http_api", "HTTP API"
    GRPC = "grpc", "gRPC"
    DATABASE = "database", "Database"
    CACHE = "cache", "Cache"
    QUEUE = "queue", "Queue"
    WORKER = "worker", "Worker"
    EXTERNAL = "external", "External"
    OTHER = "other", "Other"


class CheckStatus(models.TextChoices):
    """A check's state: `unknown` until a result reaches a threshold."""

    UNKNOWN = "unknown"
    PASSING = "passing"
    WARNING = "warning"
    CRITICAL = "critical"


class InstanceStatus(models.TextChoices):
    """An instance's aggregate: the worst of its checks, or `maintenance` while in maintenance."""

    UNKNOWN = "unknown"
    PASSING = "passing"
    WARNING = "warning"
    CRITICAL = "critical"
    MAINTENANCE = "maintenance"


class Scheme(models.TextChoices):
    """How an instance is spoken to."""

    HTTP = "http"
    HTTPS = "https"
    TCP = "tcp"
    GRPC = "grpc"
    REDIS = "redis"
    POSTGRES = "postgres"


class CheckKind(models.TextChoices):
    """How a check gets its results."""

    HTTP = "http"
    TCP = "tcp"
    TTL = "ttl"
    CUSTOM = "custom"


def validate_address(value: str) -> None:
    """A host name or an IPv4/IPv6 address."""
    try:
        ipaddress.ip_address(value.strip("[]"))
        return
    except ValueError:
        pass
    if not HOSTNAME_RE.match(value) or value.replace(".", "").isdigit():
        raise ValidationError("Enter a host name or an IP address.")


def validate_string_list(value: object) -> None:
    """A JSON list of non-empty strings."""
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ValidationError("Give a list of non-empty strings.")


def validate_object(value: object) -> None:
    """A JSON object."""
    if not isinstance(value, dict):
        raise ValidationError("Give a JSON object.")


class Service(models.Model):
    """A named service in the catalog; its instances are what discovery returns."""

    name = models.CharField(max_length=100, unique=True, validators=[validate_url_safe_name])
    display_name = models.CharField(max_length=200, blank=True)
    type = models.CharField(max_length=20, choices=ServiceType.choices, default=ServiceType.OTHER)
    description = models.TextField(blank=True)
    owner = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=list, blank=True, validators=[validate_string_list])
    capabilities = models.JSONField(default=list, blank=True, validators=[validate_string_list])
    metadata = models.JSONField(default=dict, blank=True, validators=[validate_object])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ServiceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Instance(models.Model):
    """One running copy of a service at an address and port."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="instances")
    instance_id = models.CharField(max_length=200, validators=[validate_url_safe_name])
    address = models.CharField(max_length=253, validators=[validate_address])
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)])
    scheme = models.CharField(max_length=10, choices=Scheme.choices, default=Scheme.HTTP)
    tags = models.JSONField(default=list, blank=True, validators=[validate_string_list])
    metadata = models.JSONField(default=dict, blank=True, validators=[validate_object])
    status = models.CharField(
        max_length=12, choices=InstanceStatus.choices, default=InstanceStatus.PASSING, db_index=True
    )
    maintenance = models.BooleanField(default=False)
    maintenance_reason = models.CharField(max_length=500, blank=True)
    deregister_critical_after = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(60)], help_text="Seconds; at least 60."
    )
    critical_since = models.DateTimeField(null=True, blank=True, db_index=True)
    registered_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    objects = InstanceQuerySet.as_manager()

    class Meta:
        ordering = ["service__name", "instance_id"]
        constraints = [models.UniqueConstraint(fields=["service", "instance_id"], name="registry_instance_unique_id")]

    def __str__(self) -> str:
        return f"{self.service.name}/{self.instance_id}"

    @property
    def host(self) -> str:
        return f"[{self.address}]" if ":" in self.address else self.address

    @property
    def url(self) -> str:
        """`scheme://address:port` (IPv6 addresses bracketed)."""
        return f"{self.scheme}://{self.host}:{self.port}"


#: A check's configuration, in API order: what a registration sets and what a re-registration compares.
#: The one list of these names; the catalog service, the API serializers and the admin are built from it.
CHECK_CONFIG_FIELDS: tuple[str, ...] = (
    "kind",
    "interval",
    "timeout",
    "enabled",
    "method",
    "path",
    "headers",
    "expected_statuses",
    "body_contains",
    "store_body",
    "tls_verify",
    "follow_redirects",
    "warn_latency_ms",
    "ttl",
    "probe",
    "params",
    "successes_before_passing",
    "failures_before_warning",
    "failures_before_critical",
)
#: Configuration that can carry credentials (an Authorization header, a password param): shown masked.
CHECK_MASKED_FIELDS: frozenset[str] = frozenset({"headers", "params"})
#: A check's current state, written by results and the scheduler; read-only in the API and the admin.
CHECK_STATE_FIELDS: tuple[str, ...] = (
    "status",
    "consecutive_successes",
    "consecutive_failures",
    "last_result_at",
    "last_latency_ms",
    "output",
    "status_changed_at",
    "next_run_at",
)
# Anti-flap thresholds: a streak longer than this is a misconfiguration, not a policy.
MAX_THRESHOLD = 100


class Check(models.Model):
    """A health check on one instance, with its schedule and current state.

    Its rules live on the fields (validators, lengths, choices), so the API's registration body, which is
    built from them, and the services' `full_clean` apply the same ones.
    """

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="checks")
    name = models.CharField(max_length=100, validators=[validate_url_safe_name])
    kind = models.CharField(max_length=10, choices=CheckKind.choices)
    interval = models.FloatField(default=10, validators=[MinValueValidator(1), MaxValueValidator(ONE_DAY)])
    timeout = models.FloatField(default=5, validators=[MinValueValidator(0.1)])
    enabled = models.BooleanField(default=True)
    # http
    method = models.CharField(max_length=10, default="GET")
    path = models.CharField(max_length=2000, default="/", help_text="A path on the instance or a full URL.")
    headers = models.JSONField(default=dict, blank=True, validators=[validate_object])
    expected_statuses = models.CharField(max_length=200, default="200-299")
    body_contains = models.CharField(max_length=500, blank=True)
    # Off by default: the output is readable with registry:read, and a probe may reach internal services.
    store_body = models.BooleanField(default=False, help_text="Keep the start of the response body in the output.")
    tls_verify = models.BooleanField(default=True)
    follow_redirects = models.BooleanField(default=False)
    warn_latency_ms = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    # ttl
    ttl = models.FloatField(null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(ONE_DAY)])
    # custom (and tcp overrides: params host/port)
    probe = models.CharField(max_length=50, blank=True)
    params = models.JSONField(default=dict, blank=True, validators=[validate_object])
    # anti-flap thresholds (Consul semantics)
    successes_before_passing = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_THRESHOLD)]
    )
    failures_before_warning = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_THRESHOLD)]
    )
    failures_before_critical = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_THRESHOLD)]
    )
    # state
    # Not indexed: every result rewrites the row, and an index here would only add write cost.
    status = models.CharField(max_length=10, choices=CheckStatus.choices, default=CheckStatus.UNKNOWN)
    consecutive_successes = models.PositiveIntegerField(default=0)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_result_at = models.DateTimeField(null=True, blank=True)
    last_latency_ms = models.FloatField(null=True, blank=True)
    output = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # scheduling: when due (for ttl: when the TTL lapses); a claim is held until `claimed_until`.
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CheckQuerySet.as_manager()

    class Meta:
        ordering = ["instance_id", "name"]
        constraints = [models.UniqueConstraint(fields=["instance", "name"], name="registry_check_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def clean(self) -> None:
        """Cross-field rules shared by admin, API and demo data (kind-specific details are in services)."""
        errors: dict[str, list[str]] = {}
        max_timeout = conf.get("REGISTRY_PROBE_MAX_TIMEOUT_SECONDS")
        if self.timeout is not None and self.interval is not None and self.timeout > self.interval:
            errors.setdefault("timeout", []).append("The timeout must not exceed the interval.")
        if self.timeout is not None and self.timeout > max_timeout:
            errors.setdefault("timeout", []).append(f"The timeout must be at most {max_timeout} seconds.")
        if self.kind == CheckKind.TTL and not self.ttl:
            errors.setdefault("ttl", []).append("A ttl check needs `ttl` (seconds).")
        if errors:
            raise ValidationError(errors)


class CheckResult(models.Model):
    """One probe outcome (or TTL update) kept for history."""

    health_check = models.ForeignKey(Check, on_delete=models.CASCADE, related_name="results")
    created_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=CheckStatus.choices)
    latency_ms = models.FloatField(null=True, blank=True)
    output = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["health_check", "-created_at"], name="registry_result_check_time"),
            models.Index(fields=["created_at"], name="registry_result_time"),
        ]

    def __str__(self) -> str:
        return f"{self.status} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class ServiceIndex(models.Model):
    """Discovery's blocking-query index of one service (`X-Registry-Index`), in a row of its own.

    +1 on every change of what discovery answers (registration, deregistration, status transition,
    capabilities). Only `registry.services.index` writes it — never a save of the service, which could
    write back a stale copy — so it never goes backwards; a recreated service has a new id and starts
    over (clients reset when the index goes backwards). No row yet means 0.
    """

    service = models.OneToOneField(Service, on_delete=models.CASCADE, primary_key=True, related_name="discovery_index")
    value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.service_id}@{self.value}"
