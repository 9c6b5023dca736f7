"""A JSON parser with a nesting-depth bound, so hostile bodies get a 400 instead of a RecursionError."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from controlplane.jsonbounds import loads_bounded


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with a depth limit and a clear message for malformed bodies."""

    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        raw = stream.read() if stream is not None else b""
        if not raw:
            return {}
        try:
            return loads_bounded(raw)
        except ValueError as exc:
            raise ParseError(str(exc)) from None
