"""What the 2026-12-01 attack session found in this session's changes, as tests.

The findings (an unterminated header buffered without bound by the watch server's parser, namespace series
read outside a key's namespace limit, a 500 for dates at the calendar's edge, unbounded/duplicate group_by
label names, HTTP/1.1 without Host) are fixed and tested here; the rest are attacks that held, kept so they
keep holding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from uvicorn.config import Config
from uvicorn.server import ServerState

from controlplane.uvicorn_http import HEAD_LIMIT_DEFAULT, ProblemHttpToolsProtocol
from monitoring.models import NotificationChannel
from tests.configstore.factories import NamespaceFactory
from tests.conftest import key_client

SERIES = "/api/v1/metrics/series/"
CHANNELS = "/api/v1/alerts/channels/"


class _Transport:
    """The part of an asyncio transport the protocol uses; records what is written and whether it closed."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 1), "peername": ("127.0.0.1", 2)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _never_called(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - refused before
    raise AssertionError("the application must not see this request")


def _feed_chunks(chunks: Iterable[bytes]) -> _Transport:
    """Feed `chunks` to a fresh protocol until it closes the connection; the transport afterwards."""

    async def scenario() -> _Transport:
        config = Config(app=_never_called, http=ProblemHttpToolsProtocol, lifespan="off", log_config=None)
        protocol = ProblemHttpToolsProtocol(config, ServerState(), app_state={}, _loop=asyncio.get_running_loop())
        transport = _Transport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        for chunk in chunks:
            if transport.closed:
                break
            protocol.data_received(chunk)
        refused_before_the_end = transport.closed
        protocol.connection_lost(None)  # the client gives up: the protocol may close now, too late to count
        transport.closed = refused_before_the_end
        return transport

    return asyncio.run(scenario())


def _feed_unterminated(start: bytes, total: int) -> _Transport:
    """Feed `start` then `total` bytes of one header that never ends; the transport afterwards."""
    return _feed_chunks([start, *(b"a" * 8192 for _ in range(0, total, 8192))])


@pytest.mark.parametrize(
    "start",
    [b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", b"GET / HTTP/1.1\r\nHost: x\r\nX-"],
    ids=["header value", "header name"],
)
def test_an_unterminated_header_is_refused_at_the_head_bound(start: bytes) -> None:
    transport = _feed_unterminated(start, 4 * HEAD_LIMIT_DEFAULT)
    assert transport.closed
    assert b"".join(transport.written).startswith(b"HTTP/1.1 400 ")


def test_an_unterminated_request_target_is_refused_at_the_head_bound() -> None:
    """Held: llhttp streams the target to on_url in pieces, and the pieces are counted."""
    transport = _feed_unterminated(b"GET /", 4 * HEAD_LIMIT_DEFAULT)
    assert transport.closed
    assert b"".join(transport.written).startswith(b"HTTP/1.1 400 ")


def _rejected_writes(client: Any, namespace: str) -> Any:
    start = (timezone.now() - timedelta(minutes=30)).replace(second=0, microsecond=0)
    return client.get(
        SERIES,
        {
            "kind": "namespace",
            "target": namespace,
            "metric": "rejected_writes",
            "from": start.isoformat(),
            "to": (start + timedelta(hours=1)).isoformat(),
        },
    )


@pytest.mark.django_db
def test_a_namespace_limited_key_reads_no_series_of_a_namespace_outside_its_limit() -> None:
    NamespaceFactory(name="demo")
    NamespaceFactory(name="hidden")
    writer = key_client("config:read", "config:write")
    refused = writer.put("/api/v1/config/hidden/pw/", {"value": "x", "secret": True}, format="json")
    assert refused.status_code == 403
    limited = key_client("monitoring:read", "config:read", namespaces=["demo"])
    assert _rejected_writes(limited, "demo").status_code == 200
    assert _rejected_writes(limited, "hidden").status_code == 404
    # Without config:read a namespace's series look absent too: the same answer for one that exists.
    monitor_only = key_client("monitoring:read")
    assert _rejected_writes(monitor_only, "hidden").status_code == 404
    assert _rejected_writes(monitor_only, "no-such-namespace").status_code == 404
    assert _rejected_writes(key_client("monitoring:read", "config:read"), "hidden").json()["points"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields",
    [
        {"group_by": ["team", "..."]},
        {"group_by": ["a-b"]},
        {"group_by": ["a\x00b"]},
        {"group_by": [["team"]]},
        {"group_by": "team"},
        {"group_by": [f"l{i}" for i in range(10_000)]},
        {"group_by": ["a" * 101]},
        {"group_by": ["team", "team"]},
        {"group_by": ["team\n"]},
        {"group_wait_seconds": -1},
        {"group_interval_seconds": 2**63},
        {"repeat_interval_seconds": "10s"},
        {"group_interval_seconds": 600, "repeat_interval_seconds": 60},
        {"send_resolved": "maybe"},
        {"name": "demo\x00"},
    ],
)
def test_a_bad_channel_is_a_problem_400_and_nothing_is_saved(fields: dict[str, Any]) -> None:
    """Held: every one of these is refused through the API, with nothing created."""
    admin = key_client("admin")
    body = {"name": "attack", "kind": "webhook", "url": "https://93.184.216.34/hook", "enabled": False, **fields}
    response = admin.post(CHANNELS, body, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert not NotificationChannel.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("edge", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"])
def test_a_datetime_at_the_calendar_edge_is_a_400_not_a_500(edge: str) -> None:
    reader = key_client("monitoring:read", "monitoring:write")
    series = reader.get(SERIES, {"kind": "service", "target": "nosuch", "metric": "status", "from": edge})
    assert series.status_code == 400, series.content
    window = {"name": "edge", "scope": "everything", "starts_at": edge, "ends_at": "2026-12-02T00:00:00Z"}
    created = reader.post("/api/v1/maintenance/", window, format="json")
    assert created.status_code == 400, created.content


def _feed(data: bytes) -> _Transport:
    return _feed_chunks([data])


@pytest.mark.parametrize(
    "head",
    [b"GET / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"],
    ids=["no Host", "two Hosts"],
)
def test_an_http_1_1_request_without_exactly_one_host_is_a_problem_400(head: bytes) -> None:
    """h11 refused these; llhttp does not check, so the protocol does (RFC 9112 3.2)."""
    written = b"".join(_feed(head).written)
    assert written.startswith(b"HTTP/1.1 400 ")
    assert b"application/problem+json" in written and b"Host header" in written
