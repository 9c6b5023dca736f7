"""Serializers for the API-key endpoints."""

from __future__ import annotations

from rest_framework import serializers

from controlplane.access.models import APIKey
from controlplane.access.scopes import ALL_SCOPES


class APIKeySerializer(serializers.ModelSerializer):
    """A key as listed: never its secret or hash."""

    expires_at = serializers.DateTimeField(source="expiry_date", read_only=True, allow_null=True)  # null: never
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = APIKey
        fields = [
            "prefix",
            "name",
            "scopes",
            "rate",
            "namespaces",
            "created",
            "expires_at",
            "revoked",
            "revoked_at",
            "last_used_at",
            "created_by",
        ]
        read_only_fields = fields

    def get_created_by(self, obj: APIKey) -> str | None:
        return obj.created_by.get_username() if obj.created_by else None


class APIKeyCreateSerializer(serializers.Serializer):
    """Input for creating a key."""

    name = serializers.CharField(max_length=50)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ALL_SCOPES), min_length=1)
    rate = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    namespaces = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class APIKeyCreatedSerializer(APIKeySerializer):
    """A key just created: the only response that ever carries the plaintext `key`."""

    key = serializers.CharField(read_only=True)

    class Meta(APIKeySerializer.Meta):
        fields = [*APIKeySerializer.Meta.fields, "key"]
        read_only_fields = fields
