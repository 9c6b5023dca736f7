"""Serializers of the config API: request bodies are checked here, business rules in the services."""

from __future__ import annotations

from django.core.validators import RegexValidator
from rest_framework import serializers

from configstore.models import MASK, Namespace, Revision, Rule, Source
from configstore.selectors import public_changes


class NamespaceSerializer(serializers.ModelSerializer):
    """A namespace `{name, description, revision}`."""

    class Meta:
        model = Namespace
        fields = ["name", "description", "revision", "created_at", "updated_at"]
        read_only_fields = ["revision", "created_at", "updated_at"]
        # Uniqueness is the service's (full_clean) job; the name pattern stays, so the OpenAPI document has it.
        extra_kwargs = {
            "name": {
                "validators": [v for v in Namespace._meta.get_field("name").validators if isinstance(v, RegexValidator)]
            }
        }


class EntryWriteSerializer(serializers.Serializer):
    """Body of an entry PUT: `{"value": <json>, "secret": false, "description": ""}`."""

    value = serializers.JSONField()
    secret = serializers.BooleanField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class RuleSerializer(serializers.ModelSerializer):
    """A rule `{id, key, kind, params, message}`."""

    params = serializers.JSONField(required=False)

    class Meta:
        model = Rule
        fields = ["id", "key", "kind", "params", "message", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"kind": {"validators": []}}

    def to_internal_value(self, data):  # type: ignore[no-untyped-def]
        # The rule engine reports unknown kinds with the list of known ones; let it.
        # A non-string kind ({} or []) is unhashable: test the type before the lookup, or it is a TypeError (500).
        if (
            isinstance(data, dict)
            and "kind" in data
            and (not isinstance(data["kind"], str) or data["kind"] not in dict(Rule._meta.get_field("kind").choices))
        ):
            raise serializers.ValidationError({"kind": [f"Unknown rule kind {repr(data['kind'])[:100]}."]})
        return super().to_internal_value(data)


class SourceSerializer(serializers.ModelSerializer):
    """A source layer definition plus its load status."""

    layer = serializers.CharField(read_only=True)

    class Meta:
        model = Source
        fields = [
            "id",
            "name",
            "kind",
            "path",
            "format",
            "prefix",
            "priority",
            "enabled",
            "reload",
            "allow_empty",
            "layer",
            "last_hash",
            "last_loaded_at",
            "last_error",
            "created_at",
        ]
        read_only_fields = ["id", "layer", "last_hash", "last_loaded_at", "last_error", "created_at"]
        extra_kwargs = {"priority": {"required": False}}


class RevisionSerializer(serializers.ModelSerializer):
    """A revision with its changes (secret values masked)."""

    changes = serializers.SerializerMethodField()

    class Meta:
        model = Revision
        fields = ["number", "actor", "origin", "message", "created_at", "changes"]

    def get_changes(self, obj: Revision) -> list[dict]:
        return public_changes(obj)


class RollbackSerializer(serializers.Serializer):
    """Body of a rollback: `{"revision": N, "message": ""}`."""

    revision = serializers.IntegerField(min_value=0)
    message = serializers.CharField(required=False, allow_blank=True, max_length=500)


def mask_if(value, secret: bool, reveal: bool):  # type: ignore[no-untyped-def]
    """The value, or the mask for a secret the caller may not see."""
    return MASK if secret and not reveal else value
