"""Pagination shared by every list endpoint: `?limit=&offset=` with a hard cap.

DRF's `LimitOffsetPagination` quietly falls back to its defaults on `?offset=null`, `?limit=-3` or
`?limit=1.5` and clamps a limit above the cap. The OpenAPI document promises integers (`limit` 1..cap,
`offset` >= 0), so a value outside that contract is refused with 400 problem+json instead: a client that
sends a broken page request learns about it rather than silently reading the first page again.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

# What a page parameter must look like: ASCII digits only ("+1", " 1", "1.0", "1e3" and "١" are refused,
# although int() would take some of them).
_DIGITS = frozenset("0123456789")
# Databases take a 64-bit OFFSET; a larger one would be a database error (500) instead of a 400.
OFFSET_MAX = 2**63 - 1


class CappedLimitOffsetPagination(LimitOffsetPagination):
    """Limit/offset pagination whose `limit` is 1..`API_PAGE_SIZE_MAX` and `offset` >= 0; anything else is a 400."""

    default_limit = 50

    @property
    def max_limit(self) -> int:  # type: ignore[override]
        return settings.API_PAGE_SIZE_MAX

    def _integer_param(self, request: Request, name: str, *, minimum: int, maximum: int) -> int | None:
        """The parameter as an int, None when absent; 400 naming the parameter when it breaks the contract."""
        values = request.query_params.getlist(name)
        if not values:
            return None
        if len(values) > 1:
            raise ValidationError({name: ["Give this parameter once."]})
        raw = values[0]
        bound = f"between {minimum} and {maximum}"
        if not raw or len(raw) > 20 or not _DIGITS.issuperset(raw):
            raise ValidationError({name: [f"An integer {bound}."]})
        value = int(raw)
        if not minimum <= value <= maximum:
            raise ValidationError({name: [f"An integer {bound}."]})
        return value

    def get_limit(self, request: Request) -> int:
        value = self._integer_param(request, self.limit_query_param, minimum=1, maximum=self.max_limit)
        return self.default_limit if value is None else value

    def get_offset(self, request: Request) -> int:
        value = self._integer_param(request, self.offset_query_param, minimum=0, maximum=OFFSET_MAX)
        return 0 if value is None else value

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """The same contract in the OpenAPI document (drf-spectacular reads this)."""
        return [
            {
                "name": self.limit_query_param,
                "required": False,
                "in": "query",
                "description": f"Number of results to return per page (default {self.default_limit}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_limit},
            },
            {
                "name": self.offset_query_param,
                "required": False,
                "in": "query",
                "description": "The initial index from which to return the results.",
                "schema": {"type": "integer", "minimum": 0, "maximum": OFFSET_MAX},
            },
        ]
