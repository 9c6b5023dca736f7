"""OpenAPI schema helpers: every operation documents its problem+json error responses and real string rules."""

from __future__ import annotations

import copy

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ProblemSerializer = inline_serializer(
    name="Problem",
    fields={
        # Read-only: an answer's fields, never input (so no request-side string rules apply to them).
        "type": serializers.CharField(read_only=True),
        "title": serializers.CharField(read_only=True),
        "status": serializers.IntegerField(read_only=True),
        "detail": serializers.CharField(read_only=True),
        "request_id": serializers.CharField(read_only=True),
        "errors": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField(read_only=True)), required=False
        ),
    },
)

# Answers any operation can give, all application/problem+json (controlplane/errors.py). Documented on every
# operation, so a client (and schemathesis' status-code and content-type checks) knows every status it may meet.
_ERRORS = {
    400: "Invalid request: a parameter, header or body field breaks the contract (details in `errors`).",
    401: "Missing, malformed, unknown, expired or revoked API key.",
    403: "The API key lacks the scope (or namespace) this route needs.",
    404: "Not found (also: outside the namespaces the key may see).",
    409: "The resource is in a state that refuses the request (e.g. a disabled pipeline, a probe in progress).",
    411: "A body sent without a length the server can read to its end.",
    412: "An `If-Match` precondition did not hold (compare-and-swap lost).",
    413: "The request body (or a document, packet or batch in it) exceeds its size limit.",
    415: "The request body's Content-Type is not one this operation reads.",
    422: "Well-formed but over a run budget (packet size after a step, chained runs, wall clock).",
    429: "Rate limit exceeded; see `Retry-After` and the `RateLimit-*` headers.",
    503: "A backing service (database, cache, broker) is unavailable; retry after `Retry-After`.",
}
# Answered by the HTTP server in front of the application (gunicorn's request-line limit) before any view runs,
# so the body is that server's (HTML) or ours when the application answers.
_URI_TOO_LONG = "414"
_URI_TOO_LONG_RESPONSE = {
    "description": "The request line (path and query string) is longer than the server accepts.",
    "content": {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}},
        "text/html": {"schema": {"type": "string"}},
    },
}


class ProblemAutoSchema(AutoSchema):
    """AutoSchema that documents the shared error responses and the string rules DRF enforces.

    - every operation lists the problem+json answers in `_ERRORS` (and 414);
    - a serializer with `additional_properties = False` (its view refuses unknown fields) says so, one with
      `body_required = True` makes its request body required;
    - a `JSONField` that refuses null is documented as any JSON value but null;
    - a writable `CharField` that refuses blank values (DRF's default, `allow_blank=False`) gets
      `minLength: 1`, and, since DRF trims whitespace before that check, `pattern: "\\S"` (at least one
      non-space character) when it has no pattern of its own — otherwise the document allows `""` and
      `"  "`, which the server refuses.
    """

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
        responses.setdefault(_URI_TOO_LONG, copy.deepcopy(_URI_TOO_LONG_RESPONSE))
        return responses

    def _map_basic_serializer(self, serializer, direction):  # type: ignore[no-untyped-def]
        # Which way the fields being mapped go: the string rules describe input, so they apply to requests only
        # (COMPONENT_SPLIT_REQUEST gives requests their own components, so a response never inherits them).
        outer, self._direction = getattr(self, "_direction", None), direction
        try:
            schema = super()._map_basic_serializer(serializer, direction)
        finally:
            self._direction = outer
        # A serializer whose view refuses unknown fields says so (`additional_properties = False`).
        if getattr(serializer, "additional_properties", True) is False:
            schema["additionalProperties"] = False
        return schema

    def _get_request_for_media_type(self, serializer, direction="request"):  # type: ignore[no-untyped-def]
        schema, required = super()._get_request_for_media_type(serializer, direction)
        # A body the view cannot do without even when every field is optional (a packet: `{}` is fine, no body is not).
        # A raw schema given to extend_schema (e.g. the batch array) describes a body the view needs, too.
        if getattr(serializer, "body_required", False) or isinstance(serializer, dict):
            required = True
        return schema, required

    def _map_serializer_field(self, field, direction, bypass_extensions=False):  # type: ignore[no-untyped-def]
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # drf-spectacular documents a JSONField as `{}` (any value, null included); one that refuses null takes any
        # JSON value but null (OpenAPI 3.0 has no null type: a schema with a `type` excludes null unless nullable).
        if (
            direction == "request"
            and isinstance(field, serializers.JSONField)
            and not field.read_only
            and not field.allow_null
            and set(schema) <= {"description", "title"}
        ):
            kinds = [{"type": "object"}, {"type": "array", "items": {}}, {"type": "string"}, {"type": "number"}]
            schema = {**schema, "anyOf": [*kinds, {"type": "boolean"}]}
        return schema

    def _insert_field_validators(self, field, schema):  # type: ignore[no-untyped-def]
        super()._insert_field_validators(field, schema)  # the field's own validators first (RegexValidator...)
        if (
            getattr(self, "_direction", None) == "request"
            and isinstance(field, serializers.CharField)
            and not field.read_only
            and not field.allow_blank
            and schema.get("type") == "string"
            and "enum" not in schema
        ):
            schema["minLength"] = max(1, schema.get("minLength", 0))
            if field.trim_whitespace and "pattern" not in schema:
                schema["pattern"] = r"\S"


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


def boolean_param(request, name: str) -> bool:  # type: ignore[no-untyped-def]
    """A boolean query parameter as documented (`"type": "boolean"`): absent, `true` or `false`; else 400.

    Views used to read anything but a few true-ish words as false, so `?async=null` or `?replace=maybe`
    was accepted and quietly meant false.
    """
    from rest_framework.exceptions import ValidationError

    values = request.query_params.getlist(name)
    if not values:
        return False
    if len(values) == 1 and values[0].lower() in ("true", "false"):
        return values[0].lower() == "true"
    raise ValidationError({name: ["Give true or false, once."]})
