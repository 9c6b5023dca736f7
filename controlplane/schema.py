"""OpenAPI schema helpers: every operation documents its problem+json error responses."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ProblemSerializer = inline_serializer(
    name="Problem",
    fields={
        "type": serializers.CharField(),
        "title": serializers.CharField(),
        "status": serializers.IntegerField(),
        "detail": serializers.CharField(),
        "request_id": serializers.CharField(),
        "errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False),
    },
)

_ERRORS = {
    400: "Invalid request (validation errors in `errors`).",
    401: "Missing, malformed, unknown, expired or revoked API key.",
    403: "The API key lacks the scope this route needs.",
    404: "Not found.",
    429: "Rate limit exceeded; see Retry-After.",
}


class ProblemAutoSchema(AutoSchema):
    """AutoSchema that adds the shared problem+json error responses to every operation."""

    def _get_response_bodies(self, direction="response"):  # type: ignore[no-untyped-def]
        responses = super()._get_response_bodies(direction)
        for status, description in _ERRORS.items():
            key = str(status)
            if key not in responses:
                responses[key] = self._get_response_for_code(
                    OpenApiResponse(response=ProblemSerializer, description=description), key, direction=direction
                )
                content = responses[key].get("content", {})
                if "application/json" in content:
                    content["application/problem+json"] = content.pop("application/json")
        return responses


try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
        """Documents `Authorization: Api-Key <key>` for every operation."""

        target_class = "controlplane.access.authentication.ApiKeyAuthentication"
        name = "ApiKeyAuth"

        def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
            return {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`Api-Key <prefix>.<secret>` (or the X-Api-Key header).",
            }
except ImportError:  # pragma: no cover
    pass
