"""Fixtures for pipeline tests: fresh per-process caches, a scripted HTTP receiver, a registered service."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines.enrichment import enrichment_cache
from pipelines.executor import compile_pipeline, compiled_pipelines, prepare_packet
from pipelines.stats import accumulator


@pytest.fixture(autouse=True)
def _fresh_process_state():  # type: ignore[no-untyped-def]
    """Compiled pipelines, enrichment values and unflushed counters must not leak between tests."""
    from django.core.cache import cache

    compiled_pipelines.clear()
    enrichment_cache.invalidate()
    cache.clear()  # the run_failed rate limit lives here (a Redis DB of its own in the production pass)
    accumulator.drain()
    yield
    accumulator.drain()


@pytest.fixture(autouse=True)
def _loopback_delivery_targets_allowed(settings):  # type: ignore[no-untyped-def]
    """Delivery targets here listen on 127.0.0.1: allow-listed explicitly (workers inherit it through
    subprocess_env); the production default refuses loopback for deliveries (tests/controlplane/test_egress.py)."""
    settings.EGRESS_ALLOW_NETWORKS = ["127.0.0.0/8"]


def run_steps(steps: list[dict], packet: dict, *, lookup=None, error_policy: str = "stop", capture: bool = False):  # type: ignore[no-untyped-def]
    """Compile `steps` as a throwaway pipeline and run one packet through it (pure, no database)."""
    compiled = compile_pipeline({"id": 1, "slug": "t", "version": 1, "error_policy": error_policy, "steps": steps})
    kwargs = {"lookup": lookup} if lookup else {}
    return compiled.run(prepare_packet(packet), capture=capture, **kwargs)


def transform(*operations: dict) -> dict:
    return {"name": "t", "kind": "transform", "config": {"operations": list(operations)}}


class ScriptedReceiver:
    """A real local HTTP server that answers POSTs with the next status of a script (then the last one)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    index = len(receiver.requests)
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                    )
                    status = receiver.statuses[min(index, len(receiver.statuses) - 1)]
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.requests) < count:
            time.sleep(0.05)
        return self.requests


@pytest.fixture
def scripted_receiver():  # type: ignore[no-untyped-def]
    """Factory: `scripted_receiver([500, 200])` -> a started ScriptedReceiver, closed after the test."""
    made: list[ScriptedReceiver] = []

    def make(statuses: list[int]) -> ScriptedReceiver:
        receiver = ScriptedReceiver(statuses)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


def register_service(name: str, port: int, *, pipeline_path: str = "/ingest") -> None:
    """Register `name` with one passing instance on 127.0.0.1:`port` (through the registry's services)."""
    from registry.services import instance_register, service_create

    service = service_create(name=name, actor="test")
    instance_register(
        service=service,
        instance_id=f"{name}-1",
        address="127.0.0.1",
        port=port,
        metadata={"pipeline_path": pipeline_path},
        actor="test",
    )
