"""The per-request shortcuts change nothing a client or operator sees (controlplane.fastpaths)."""

from __future__ import annotations

import pytest
from django.contrib.messages import INFO, add_message
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpResponse
from django.utils.functional import empty

from controlplane.fastpaths import LazyMessageMiddleware
from tests.conftest import key_client


def _with_session(request):  # type: ignore[no-untyped-def]
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    return request


def test_messages_are_stored_when_a_view_adds_one(rf) -> None:  # type: ignore[no-untyped-def]
    def view(request):  # type: ignore[no-untyped-def]
        add_message(request, INFO, "Key revoked.")
        return HttpResponse("ok")

    response = LazyMessageMiddleware(view)(_with_session(rf.get("/admin/")))
    assert "messages" in response.cookies and response.cookies["messages"].value


def test_a_request_that_never_touches_messages_builds_no_message_store(rf) -> None:  # type: ignore[no-untyped-def]
    request = _with_session(rf.get("/api/v1/events/"))
    response = LazyMessageMiddleware(lambda r: HttpResponse("ok"))(request)
    assert request._messages._wrapped is empty and not response.cookies


@pytest.mark.django_db
def test_negotiation_shortcut_keeps_drf_behaviour_for_everything_else() -> None:
    client = key_client("events:read")
    plain = client.get("/api/v1/events/")
    assert plain.status_code == 200 and plain["Content-Type"] == "application/json"
    assert client.get("/api/v1/events/", HTTP_ACCEPT="*/*").status_code == 200
    refused = client.get("/api/v1/events/", HTTP_ACCEPT="application/xml")
    assert refused.status_code == 406 and refused["Content-Type"] == "application/problem+json"
    assert client.get("/api/v1/events/?format=json").status_code == 200
    unknown = client.get("/api/v1/events/?format=xml")  # DRF: an unknown format override is a 404
    assert unknown.status_code == 404 and unknown["Content-Type"] == "application/problem+json"


def test_json_log_time_matches_iso_8601_with_milliseconds() -> None:
    from datetime import UTC, datetime

    from controlplane.observability.logging import JsonFormatter

    formatter = JsonFormatter()
    for created in (1764131260.4239, 1764131260.0, 1764131261.999, 1764131261.5):
        expected = datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds")
        assert formatter._time(created) == expected


def test_generated_request_ids_are_32_hex_chars_and_differ() -> None:
    from controlplane.observability.context import sane_request_id

    ids = {sane_request_id(None) for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert sane_request_id("bad id!") in ids or len(sane_request_id("bad id!")) == 32
