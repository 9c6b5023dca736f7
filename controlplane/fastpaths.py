"""Per-request work the API does not need, skipped without changing what any client sees.

- `JsonFirstNegotiation`: DRF's content negotiation parses the query string (for `?format=`) and the
  `Accept` header on every request; most API clients send no `Accept`, `*/*` or `application/json` and no
  query string, and get the first renderer (JSON) anyway. Anything else goes through DRF's negotiation
  unchanged (406 for an unacceptable type, `?format=` overrides).
- `LazyMessageMiddleware`: Django's messages middleware builds a cookie + session message store (with a
  cookie signer) for every request; the API never uses messages. The store is now built when something
  (the admin) first touches it, and responses of requests that never did are left alone.
"""

from __future__ import annotations

from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty
from rest_framework.negotiation import DefaultContentNegotiation

_JSON_ACCEPTS = frozenset({"", "*/*", "application/json"})


class JsonFirstNegotiation(DefaultContentNegotiation):
    """DRF negotiation with a shortcut for the common case: JSON wanted (or anything), no query string."""

    def select_renderer(self, request, renderers, format_suffix=None):  # type: ignore[no-untyped-def]
        meta = request._request.META
        first = renderers[0]
        if (
            format_suffix is None
            and not meta.get("QUERY_STRING")
            and meta.get("HTTP_ACCEPT", "").strip() in _JSON_ACCEPTS
            and first.media_type == "application/json"
        ):
            return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)


class LazyMessageMiddleware(MessageMiddleware):
    """`MessageMiddleware` whose message store is built on first use instead of on every request."""

    def process_request(self, request: HttpRequest) -> None:
        request._messages = SimpleLazyObject(lambda: default_storage(request))  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        messages = getattr(request, "_messages", None)
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response  # never touched: nothing to store
        return super().process_response(request, response)
