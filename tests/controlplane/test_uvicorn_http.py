"""uvicorn's protocols as `serve` runs them (`controlplane.uvicorn_http`): requests the parser refuses are
problem+json 400s with a request id, the head is bounded, and the connection's server keeps serving."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from controlplane import commandlines
from controlplane.uvicorn_http import CorkedCycle
from tests.conftest import subprocess_env
from tests.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
PROTOCOLS = {"httptools": commandlines.HTTP_PROTOCOL, "h11": commandlines.H11_PROTOCOL}
# What both protocols refuse before the application sees the request.
REFUSED = {
    "NUL in a header value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\x00b\r\n\r\n",
    "control character in a header name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad\x01Name: 1\r\n\r\n",
    "bare CR in a header value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "bad method": b"G@T /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    "no HTTP version (HTTP/0.9)": b"GET /healthz\r\nHost: t\r\n\r\n",
    "space in the target": b"GET /heal thz HTTP/1.1\r\nHost: t\r\n\r\n",
    "NUL in the target": b"GET /heal\x00thz HTTP/1.1\r\nHost: t\r\n\r\n",
    "non-ASCII target": "GET /h\u00e9 HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
    "two content lengths": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "space before the colon": b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
}
# What httptools (llhttp) also refuses, and h11 passes on to the application (which answers 400 too).
REFUSED_BY_HTTPTOOLS = {
    "control character in a header value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "DEL in a header value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n",
    "bare LF line ends": b"GET /healthz HTTP/1.1\nHost: x\n\n",
    "unknown HTTP version": b"GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n",
    "obsolete line folding": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "content length and chunked": (
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "a head over 16 KiB": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"x" * 20_000 + b"\r\n\r\n",
}


@contextmanager
def serving(protocol: str) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        commandlines.uvicorn("127.0.0.1", port, http=protocol),
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read to the end of the answer (status, lower-cased headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        while len(body) < int(headers.get("content-length", "0")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split(" ")[1]), headers, body


def assert_problem_400(answer: tuple[int, dict[str, str], bytes], label: str) -> None:
    status, headers, body = answer
    assert status == 400, (label, body[:200])
    assert headers["content-type"] == "application/problem+json", label
    document = json.loads(body)
    assert document["status"] == 400 and document["title"] == "Bad Request", label
    assert re.fullmatch(r"[0-9a-f]{32}", document["request_id"]) and document["request_id"] == headers["x-request-id"]


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_refused_requests_are_problem_json_and_the_server_keeps_serving(transactional_db, protocol) -> None:
    cases = {**REFUSED, **(REFUSED_BY_HTTPTOOLS if protocol == "httptools" else {})}
    with serving(PROTOCOLS[protocol]) as port:
        for label, data in cases.items():
            assert_problem_400(exchange(port, data), label)
        # obs-text (a byte >= 0x80) is allowed in a header value (RFC 9110 5.5): served
        status, _, body = exchange(
            port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: \xe9\r\nConnection: close\r\n\r\n"
        )
        assert status == 200 and json.loads(body)["status"] == "ok"


def test_the_head_bound_is_the_one_h11_applies(transactional_db) -> None:
    with serving(commandlines.HTTP_PROTOCOL) as port:
        just_under = (
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"x" * 15_000 + b"\r\nConnection: close\r\n\r\n"
        )
        assert exchange(port, just_under)[0] == 200
        status, _, body = exchange(port, b"GET /" + b"a" * 17_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 400 and json.loads(body)["detail"] == "The request line and headers are too large."
        # Many small headers add up: the bound is on the whole head, not on each field.
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(200))
        assert_problem_400(exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n"), "many headers")


def test_a_second_request_on_a_kept_alive_connection_is_refused_the_same_way(transactional_db) -> None:
    """The refusal must not be mistaken for the previous (complete) request's: it is answered, not dropped."""
    with serving(commandlines.HTTP_PROTOCOL) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        while not received.endswith(b"}"):
            received += sock.recv(65536)
        assert received.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: \x00\r\n\r\n")
        second = b""
        while chunk := sock.recv(65536):
            second += chunk
        assert second.startswith(b"HTTP/1.1 400 ") and b"application/problem+json" in second


class _Transport:
    """What a cycle writes, write by write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _cycle(
    transport: _Transport,
    method: str = "GET",
    *,
    keep_alive: bool = True,
    default_headers: list[tuple[bytes, bytes]] | None = None,
    on_response=lambda: None,  # type: ignore[no-untyped-def]
) -> CorkedCycle:
    flow = SimpleNamespace(write_paused=False)
    logger = logging.getLogger("test.uvicorn")
    scope = {"method": method, "http_version": "1.1", "path": "/", "query_string": b"", "client": None}
    return CorkedCycle(
        scope,  # type: ignore[arg-type]
        transport,  # type: ignore[arg-type]
        flow,  # type: ignore[arg-type]
        logger,
        logger,
        False,
        default_headers or [],
        asyncio.Event(),
        False,
        keep_alive,
        on_response,
    )


WHOLE_HEADERS = [(b"content-type", b"application/json"), (b"x-config-index", b"7"), (b"content-length", b"8")]
DEFAULT_HEADERS = [(b"date", b"Tue, 01 Dec 2026 15:00:00 GMT"), (b"server", b"uvicorn")]


@pytest.mark.parametrize(("method", "keep_alive"), [("GET", True), ("GET", False), ("HEAD", True)])
def test_a_whole_response_is_the_bytes_send_writes_in_one_write(method: str, keep_alive: bool) -> None:
    """`send_whole` (the watch server's express answers) writes what uvicorn's own `send` writes, and
    completes the cycle the same way: the connection closed or kept, the protocol told once."""

    async def scenario() -> tuple[_Transport, _Transport, list[str], CorkedCycle]:
        sent, whole, told = _Transport(), _Transport(), []
        cycle = _cycle(sent, method, keep_alive=keep_alive, default_headers=DEFAULT_HEADERS)
        await cycle.send({"type": "http.response.start", "status": 200, "headers": WHOLE_HEADERS})
        await cycle.send({"type": "http.response.body", "body": b"" if method == "HEAD" else b'{"a": 1}'})
        express = _cycle(
            whole,
            method,
            keep_alive=keep_alive,
            default_headers=DEFAULT_HEADERS,
            on_response=lambda: told.append("done"),
        )
        head = b"".join(name + b": " + value + b"\r\n" for name, value in WHOLE_HEADERS)
        assert express.send_whole(200, head, b'{"a": 1}') is True
        return sent, whole, told, express

    sent, whole, told, express = asyncio.run(scenario())
    assert len(whole.writes) == 1 and whole.writes == [b"".join(sent.writes)]
    assert whole.closed is sent.closed is (not keep_alive)
    assert express.response_complete and express.message_event.is_set() and told == ["done"]
    if keep_alive:  # (on a closed connection a late message is dropped, as for any gone client)
        with pytest.raises(RuntimeError, match="after response already completed"):
            asyncio.run(express.send({"type": "http.response.body", "body": b""}))


@pytest.mark.parametrize("state", ["response started", "client gone", "writes paused", "transport closing"])
def test_a_whole_response_is_declined_when_the_cycle_cannot_take_it(state: str) -> None:
    """Then nothing is written and the application's own `send` answers (`watchserver.express` returns False)."""
    transport = _Transport()
    cycle = _cycle(transport)
    if state == "response started":
        cycle.response_started = True
    elif state == "client gone":
        cycle.disconnected = True
    elif state == "writes paused":
        cycle.flow.write_paused = True
    else:
        transport.closed = True
    assert cycle.send_whole(200, b"content-length: 0\r\n", b"") is False
    assert transport.writes == [] and not cycle.response_complete


def test_a_small_answer_is_one_write_and_a_stream_head_is_not_held() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes], list[bytes]]:
        whole, streamed, head_only = _Transport(), _Transport(), _Transport()
        cycle = _cycle(whole)
        await cycle.send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await cycle.send({"type": "http.response.body", "body": b"{}"})
        stream = _cycle(streamed)
        await stream.send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
        )
        await asyncio.sleep(0)  # the next step of the loop: the head is out before any event
        head_written = list(streamed.writes)
        await stream.send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        head = _cycle(head_only, method="HEAD")
        await head.send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await head.send({"type": "http.response.body", "body": b""})
        return whole.writes, head_written, head_only.writes

    whole, head_written, head_only = asyncio.run(scenario())
    assert len(whole) == 1 and whole[0].startswith(b"HTTP/1.1 200 OK\r\n") and whole[0].endswith(b"\r\n\r\n{}")
    assert len(head_written) == 1 and head_written[0].endswith(b"transfer-encoding: chunked\r\n\r\n")
    assert len(head_only) == 1 and head_only[0].endswith(b"content-length: 2\r\n\r\n")


class _ClosedTransport(_Transport):
    """A transport the client has closed, raising on a write as uvloop's does (asyncio's ignores it)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = True

    def write(self, data: bytes) -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>; the handler is closed")


def test_an_answer_to_a_client_that_left_behind_a_pipelined_request_is_dropped_not_raised() -> None:
    """uvicorn marks only a connection's newest cycle disconnected when the client leaves: an older one
    (waiting, with a request pipelined behind it) still sends, and under uvloop the write raised, giving
    an 'Exception in ASGI application' (and skipping what comes after the send)."""

    async def scenario() -> CorkedCycle:
        cycle = _cycle(_ClosedTransport())
        await cycle.send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await cycle.send({"type": "http.response.body", "body": b"{}"})
        await asyncio.sleep(0)  # a held head's flush, had one been held
        return cycle

    cycle = asyncio.run(scenario())
    assert cycle.disconnected and cycle.transport.writes == []


def _answers(port: int, data: bytes) -> list[tuple[int, bytes]]:
    """Send raw bytes at once, read until the server closes: every answer's (status, body), in order."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    answers = []
    while received:
        head, _, rest = received.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
        answers.append((int(head.split(b" ", 2)[1]), rest[:length]))
        received = rest[length:]
    return answers


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.mark.parametrize("malformed", ["NUL in the target", "space before the colon", "a head over 16 KiB"])
def test_a_malformed_request_pipelined_behind_others_is_refused_after_their_answers(transactional_db, malformed):
    """Answers go out in the order of the requests (RFC 9112 9.3.2): the 400 used to be written at once,
    ahead of the answers still owed (a waiting watch), which the client then took for theirs."""
    bad = {**REFUSED, **REFUSED_BY_HTTPTOOLS}[malformed]
    with serving(commandlines.HTTP_PROTOCOL) as port:
        answers = _answers(port, HEALTHZ + HEALTHZ + bad)
    assert [status for status, _ in answers] == [200, 200, 400], malformed
    assert json.loads(answers[2][1])["status"] == 400


def test_requests_pipelined_past_the_limit_are_refused_after_the_ones_before_them(transactional_db) -> None:
    """uvicorn would queue every pipelined request of a write (one 256 KiB write of tiny ones held ~7,700)."""
    from controlplane.uvicorn_http import PIPELINE_LIMIT

    with serving(commandlines.HTTP_PROTOCOL) as port:
        answers = _answers(port, HEALTHZ * (PIPELINE_LIMIT + 10))
        still_serving = exchange(port, HEALTHZ)[0]
    statuses = [status for status, _ in answers]
    assert statuses == [200] * (PIPELINE_LIMIT + 1) + [400]  # the one being answered, the queue, the refusal
    assert "At most" in json.loads(answers[-1][1])["detail"] and still_serving == 200
