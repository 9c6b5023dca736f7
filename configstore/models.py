"""Config store models: namespaces, layered entries, rules, sources (layers) and revisions."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from configstore.querysets import EntryQuerySet

KEY_PATTERN = r"^[a-z0-9_]+(\.[a-z0-9_]+)*$"
NAMESPACE_PATTERN = r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$"
# One-segment keys that would shadow the API's own sub-paths under /api/v1/config/<ns>/.
RESERVED_KEYS = frozenset({"history", "import", "rollback", "rules", "sources", "watch"})
DATABASE_PRIORITY = 100
MASK = "********"


class Namespace(models.Model):
    """A named config tree (e.g. `payments`) whose `revision` moves on every change in it."""

    name = models.CharField(
        max_length=64,
        unique=True,
        validators=[RegexValidator(NAMESPACE_PATTERN, "Lower-case letters, digits, - and _.")],
    )
    description = models.TextField(blank=True)
    revision = models.PositiveBigIntegerField(default=0, help_text="Moves on every change in the namespace.")
    rules_version = models.PositiveIntegerField(
        default=0, help_text="Moves on every rule change; keys the compiled rules."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SourceKind(models.TextChoices):
    """Where a source layer reads its values."""

    FILE = "file", "File under CONFIG_SOURCE_ROOT"
    ENV = "env", "Environment variables"


class SourceFormat(models.TextChoices):
    """Formats of file sources, imports and exports (env is export/import only)."""

    YAML = "yaml"
    JSON = "json"
    INI = "ini"
    TOML = "toml"


class Source(models.Model):
    """A layer fed from outside the database: a file under the source root or an environment prefix."""

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="sources")
    name = models.SlugField(max_length=64)
    kind = models.CharField(max_length=8, choices=SourceKind.choices)
    path = models.CharField(max_length=500, blank=True, help_text="File path relative to CONFIG_SOURCE_ROOT.")
    format = models.CharField(max_length=8, choices=SourceFormat.choices, blank=True)
    prefix = models.CharField(max_length=100, blank=True, help_text="Env prefix such as PAYMENTS_; __ becomes a dot.")
    priority = models.IntegerField(help_text="Higher wins; the database layer is 100, defaults: file 200, env 300.")
    enabled = models.BooleanField(default=True)
    reload = models.BooleanField(default=True, help_text="Re-read by the periodic reload task.")
    allow_empty = models.BooleanField(
        default=False,
        help_text="Apply an empty document (no keys), removing every key of this layer; off, it is refused.",
    )
    last_hash = models.CharField(max_length=64, blank=True)
    last_loaded_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["namespace__name", "-priority", "name"]
        constraints = [models.UniqueConstraint(fields=["namespace", "name"], name="configstore_source_unique_name")]

    def __str__(self) -> str:
        return f"{self.namespace.name}/{self.name} ({self.kind})"

    @property
    def layer(self) -> str:
        return f"{self.kind}:{self.name}"


class Entry(models.Model):
    """One key's value in one layer (the database layer when `source` is null).

    Secret values are stored only as a Fernet token in `encrypted_value`; `value` is then null.
    """

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="entries")
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.CASCADE, related_name="entries")
    key = models.CharField(
        max_length=255, validators=[RegexValidator(KEY_PATTERN, "Dotted lower-case key like db.port.")]
    )
    value = models.JSONField(null=True, blank=True)
    encrypted_value = models.TextField(blank=True)
    secret = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    revision = models.PositiveBigIntegerField(default=0, help_text="Namespace revision of this entry's last change.")
    updated_by = models.CharField(max_length=150, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EntryQuerySet.as_manager()

    class Meta:
        ordering = ["namespace__name", "key"]
        verbose_name_plural = "entries"
        # Admin staff need this (superusers hold it implicitly) for any change touching a secret entry.
        permissions = [("manage_secrets", "Can create, change and delete secret entries")]
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "key"], condition=Q(source__isnull=True), name="configstore_entry_unique_db_key"
            ),
            models.UniqueConstraint(
                fields=["namespace", "source", "key"],
                condition=Q(source__isnull=False),
                name="configstore_entry_unique_src_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.namespace.name}:{self.key}"

    @property
    def layer(self) -> str:
        return "database" if self.source_id is None else self.source.layer


class RuleKindChoice(models.TextChoices):
    """The rule kinds of `configstore.rules.RULE_KINDS`."""

    TYPE = "type"
    RANGE = "range"
    REQUIRED = "required"
    PATTERN = "pattern"
    CHOICES = "choices"
    LENGTH = "length"
    JSON_SCHEMA = "json_schema"


class Rule(models.Model):
    """A validation rule for keys matching `key` (exact or glob like `db.*`) in one namespace."""

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="rules")
    key = models.CharField(max_length=255, help_text="Exact key or glob such as db.*")
    kind = models.CharField(max_length=16, choices=RuleKindChoice.choices)
    params = models.JSONField(default=dict, blank=True)
    message = models.CharField(max_length=300, blank=True, help_text="Replaces the kind's own error message.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["namespace__name", "key", "id"]

    def __str__(self) -> str:
        return f"{self.key} {self.kind}"


class Revision(models.Model):
    """One applied change set: who, from where, why, and every key change (secret values masked).

    `changes` items are `{key, layer, action, old, new, secret}`; for secret entries `old`/`new` are the
    mask and the encrypted tokens sit in `old_token`/`new_token` so a rollback can restore them.
    """

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveBigIntegerField()
    actor = models.CharField(max_length=150)
    origin = models.CharField(max_length=100, help_text="admin, api, import, source:<name>, rollback ...")
    message = models.CharField(max_length=500, blank=True)
    changes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["namespace__name", "-number"]
        constraints = [models.UniqueConstraint(fields=["namespace", "number"], name="configstore_revision_unique")]

    def __str__(self) -> str:
        return f"{self.namespace.name}@{self.number}"
