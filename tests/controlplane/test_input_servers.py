"""The input boundary through real servers: chunked bodies (gunicorn, uvicorn, a server without the end
marker), gunicorn's own errors, the request deadline and a database outage, all as problem+json."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from django.db import connection

from configstore import selectors, services
from controlplane import commandlines
from tests.conftest import subprocess_env
from tests.factories import APIKeyFactory
from tests.processes import free_port, gunicorn

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
PROBLEM = "application/problem+json"


def raw_request(base: str, head: str, body: bytes = b"", *, timeout: float = 30) -> tuple[int, dict, bytes]:
    """Send `head` (request line + headers, no blank line) and `body` as bytes on a fresh socket."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        response = http.client.HTTPResponse(sock, method=head.split(" ", 1)[0])
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def chunked(body: bytes, size: int = 7) -> bytes:
    """`body` in several chunks of `size` bytes (with a chunk extension on the first, as allowed)."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    out = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return out + b"0\r\n\r\n"


def chunked_post(base: str, path: str, key: str, body: bytes, content_type: str = "application/yaml"):  # type: ignore[no-untyped-def]
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key {key}\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close"
    )
    return raw_request(base, head, chunked(body))


def assert_problem(status: int, headers: dict, body: bytes, expected: int) -> dict:
    assert status == expected, body[:500]
    assert headers["content-type"] == PROBLEM
    document = json.loads(body)
    assert document["status"] == expected and {"type", "title", "detail", "request_id"} <= set(document)
    return document


@pytest.fixture
def payments(transactional_db):  # type: ignore[no-untyped-def]
    """Namespace `payments` holding a.x and b, and a config:write key for it."""
    namespace = services.namespace_create(name="payments", description="", actor="test")
    services.config_import(namespace=namespace, text="a: {x: 1}\nb: 2\n", fmt="yaml", actor="test")
    _, raw = APIKeyFactory.create_with_plaintext(scopes=["config:read", "config:write"])
    return raw


def flat() -> dict:
    return selectors.config_snapshot("payments").visible_flat(reveal=False)


def check_chunked_paths(base: str, key: str) -> None:
    """What every server that marks the end of a de-chunked body must do (gunicorn, uvicorn)."""
    path = "/api/v1/config/payments/import/?format=yaml&replace=true"
    status, _, body = chunked_post(base, path, key, b"c: 3\nd:\n  e: four\n")
    assert status == 200, body
    assert json.loads(body)["changed"] is True
    assert flat() == {"c": 3, "d.e": "four"}  # replaced with the body's content, not with nothing

    status, headers, body = chunked_post(
        base, path.replace("yaml", "json"), key, b'{"c": "\\u0000"}', "application/json"
    )
    assert assert_problem(status, headers, body, 400)["errors"] == {"c": ["NUL characters are not allowed."]}
    status, headers, body = chunked_post(base, path, key, b"big: " + b"x" * 5000 + b"\n")
    assert_problem(status, headers, body, 413)
    assert flat() == {"c": 3, "d.e": "four"}


def test_gunicorn_reads_chunked_bodies_to_the_end(payments, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with gunicorn(subprocess_env(API_MAX_BODY_BYTES="4096"), tmp_path, workers=1) as base:
        check_chunked_paths(base, payments)


@contextmanager
def uvicorn(env: dict[str, str], tmp_path):  # type: ignore[no-untyped-def]
    """The embedded mode's web server: uvicorn serving every route through `controlplane.asgi`."""
    port = free_port()
    log_path = tmp_path / "uvicorn.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            commandlines.uvicorn("127.0.0.1", port),  # the command line `serve` runs
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 40
            while not re.search("Uvicorn running", log_path.read_text()):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log_path.read_text()[-2000:])
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def test_uvicorn_reads_chunked_bodies_to_the_end(payments, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with uvicorn(subprocess_env(API_MAX_BODY_BYTES="4096"), tmp_path) as base:
        check_chunked_paths(base, payments)
        # A declared length over the limit is refused before any of the body is read (or spooled to disk).
        head = (
            "POST /api/v1/config/payments/import/?format=yaml HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Api-Key {payments}\r\nContent-Type: application/yaml\r\nContent-Length: 1000000000"
        )
        assert_problem(*raw_request(base, head, b"a: 1\n", timeout=5), 413)
        # An endless chunked body is cut off at the limit.
        parts = urlsplit(base)
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(
                f"POST /api/v1/config/payments/import/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key {payments}"
                "\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            )
            for _ in range(10):
                sock.sendall(b"400\r\n" + b"x" * 1024 + b"\r\n")
            response = http.client.HTTPResponse(sock, method="POST")
            response.begin()
            assert response.status == 413 and response.getheader("content-type") == PROBLEM
        assert flat() == {"c": 3, "d.e": "four"}


def test_uvicorn_protocol_errors_are_problem_json_and_junk_request_ids_are_replaced(transactional_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with uvicorn(subprocess_env(), tmp_path) as base:
        for head in (
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: a\x00b",
            "GET /api/v1/services/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key a\x00b",
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad\x01Name: 1",
        ):
            status, headers, body = raw_request(base, head)
            document = assert_problem(status, headers, body, 400)
            assert document["request_id"] == headers["x-request-id"]
        for junk in ("<script>", "x" * 300, "a b", "é"):
            status, headers, _ = raw_request(
                base, f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: {junk}\r\nConnection: close"
            )
            assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])


def test_a_server_without_the_end_marker_answers_411(payments, live_server) -> None:  # type: ignore[no-untyped-def]
    """Django's development server (wsgiref) passes a chunked body undecoded and unmarked: refuse it."""
    path = "/api/v1/config/payments/import/?format=yaml&replace=true"
    status, headers, body = chunked_post(live_server.url, path, payments, b"c: 3\n")
    assert_problem(status, headers, body, 411)
    assert flat() == {"a.x": 1, "b": 2}


def test_gunicorn_protocol_errors_are_problem_json(transactional_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with gunicorn(subprocess_env(), tmp_path, workers=1) as base:
        for head in (
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: a\x00b",  # NUL in a header value
            "GET /api/v1/services/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key a\x00b",
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad\x01Name: 1",
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + "x" * 10_000,
            "G@T /healthz HTTP/1.1\r\nHost: t",
        ):
            status, headers, body = raw_request(base, head)
            assert status >= 400 and headers["content-type"] == PROBLEM, (head[:60], body[:300])
            document = json.loads(body)
            assert document["request_id"] == headers["x-request-id"] and document["status"] == status
        # the worker still serves
        assert raw_request(base, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close")[0] == 200


def test_requests_past_the_deadline_answer_503_before_gunicorn_kills_the_worker(transactional_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, key = APIKeyFactory.create_with_plaintext(scopes=["events:read"])
    env = subprocess_env(DJANGO_SETTINGS_MODULE="tests.controlplane.settings_slow", GUNICORN_TIMEOUT="4")
    with gunicorn(env, tmp_path, workers=1) as base:
        for path in ("/api/v1/slow/", "/api/plain-slow/"):
            started = time.monotonic()
            status, headers, body = raw_request(
                base, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key {key}\r\nConnection: close"
            )
            assert time.monotonic() - started < 4  # the deadline (3 s) fired, not gunicorn's timeout (4 s)
            assert_problem(status, headers, body, 503)
            assert headers["retry-after"].isdigit()
            assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
            # the recycled worker is replaced and serves the next request
            assert (
                raw_request(base, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close", timeout=20)[0] == 200
            )


def test_a_database_outage_answers_503_with_retry_after(transactional_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The web server's database refuses connections (nothing listens on its port / no such file)."""
    if connection.vendor == "postgresql":
        env = subprocess_env()
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{free_port()}/unreachable"
    else:
        env = subprocess_env(CONTROLPLANE_SQLITE_PATH=str(tmp_path / "missing-dir" / "db.sqlite3"))
    _, key = APIKeyFactory.create_with_plaintext(scopes=["registry:read", "config:read"])
    with gunicorn(env, tmp_path, workers=1) as base:
        for path in ("/api/v1/services/", "/api/v1/config/payments/", "/api/v1/events/"):
            status, headers, body = raw_request(
                base, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key {key}\r\nConnection: close"
            )
            document = assert_problem(status, headers, body, 503)
            assert headers["retry-after"] == "5"
            assert "database" in document["detail"].lower()
            assert "unreachable" not in body.decode() and "missing-dir" not in body.decode()
        # the admin: a sign-in needs the user table
        _, headers, page = raw_request(base, "GET /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close")
        cookie = headers["set-cookie"].split(";", 1)[0]
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = b"csrfmiddlewaretoken=" + token + b"&username=admin&password=secret&next=/admin/"
        status, headers, body = raw_request(
            base,
            "POST /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(form)}\r\nCookie: {cookie}\r\nReferer: http://127.0.0.1/admin/login/\r\n"
            "Connection: close",
            form,
        )
        assert_problem(status, headers, body, 503)


MALFORMED_CHUNKED = {
    "bad size": b"zz\r\nc: 3\r\n0\r\n\r\n",
    "size with junk": b"4 4\r\nc: 3\r\n0\r\n\r\n",
    "missing terminator": b"4\r\nc: 3XX0\r\n\r\n",
    "negative size": b"-4\r\nc: 3\r\n0\r\n\r\n",
    "size then data cut short": b"4\r\nc:",
}


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_a_malformed_chunked_body_is_a_400_and_changes_nothing(payments, tmp_path, server) -> None:  # type: ignore[no-untyped-def]
    """The server's chunk parser fails while the boundary reads the body: 400 problem+json, not a 500."""
    path = "/api/v1/config/payments/import/?format=yaml&replace=true"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key {payments}\r\n"
        "Content-Type: application/yaml\r\nTransfer-Encoding: chunked\r\nConnection: close"
    )
    before = flat()
    serving = (
        gunicorn(subprocess_env(), tmp_path, workers=1) if server == "gunicorn" else uvicorn(subprocess_env(), tmp_path)
    )
    with serving as base:
        for label, body in MALFORMED_CHUNKED.items():
            parts = urlsplit(base)
            with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
                sock.sendall(head.encode() + b"\r\n\r\n" + body)
                if label == "size then data cut short":
                    sock.shutdown(socket.SHUT_WR)  # the client is gone mid-chunk
                response = http.client.HTTPResponse(sock, method="POST")
                try:
                    response.begin()
                except http.client.RemoteDisconnected:
                    # uvicorn drops a client that half-closed mid-chunk without answering; gunicorn answers.
                    assert server == "uvicorn" and label == "size then data cut short"
                    assert flat() == before
                    continue
                status, headers, answer = (
                    response.status,
                    {k.lower(): v for k, v in response.getheaders()},
                    response.read(),
                )
            assert_problem(status, headers, answer, 400), label
            assert flat() == before, label
        # the worker still serves
        assert raw_request(base, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close")[0] == 200
