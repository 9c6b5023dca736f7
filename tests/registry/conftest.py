"""Real probe targets for the registry tests: an aiohttp server and TCP listeners on ephemeral ports."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web


@dataclass
class HttpTarget:
    """A live HTTP server; `state` changes what `/toggle` answers while tests run."""

    host: str
    port: int
    state: dict[str, Any] = field(default_factory=lambda: {"status": 200, "hits": 0})

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"


def _app(target: HttpTarget) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text='{"status":"ok"}', content_type="application/json")

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status page")

    async def toggle(request: web.Request) -> web.Response:
        target.state["hits"] += 1
        return web.Response(status=target.state["status"], text=f"toggle {target.state['status']}")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("delay", "0.3")))
        return web.Response(text="slow ok")

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(60):
            await response.write(b"x")
            await asyncio.sleep(1)
        return response

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"y" * 65536
        try:
            for _ in range(10 * 1024 // 64):  # 10 MB
                await response.write(chunk)
        except (ConnectionResetError, RuntimeError):
            target.state["huge_aborted"] = True
        return response

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(60)
        return web.Response(text="late")

    async def maybe_hang(request: web.Request) -> web.Response:
        target.state["hits"] += 1
        if target.state.get("hang"):
            await asyncio.sleep(60)
        return web.Response(text="answered")

    async def redirect(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        location = "/ok" if left <= 1 else f"/redirect/{left - 1}"
        raise web.HTTPFound(location)

    async def redirect_to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    app = web.Application()
    app.add_routes(
        [
            web.get("/ok", ok),
            web.get("/healthz", ok),
            web.get("/status/{code}", status),
            web.get("/toggle", toggle),
            web.get("/slow", slow),
            web.get("/drip", drip),
            web.get("/huge", huge),
            web.get("/hang", hang),
            web.get("/maybe-hang", maybe_hang),
            web.get("/redirect/{n}", redirect),
            web.get("/redirect-to", redirect_to),
        ]
    )
    return app


@pytest.fixture(scope="session")
def http_target() -> Iterator[HttpTarget]:
    """One aiohttp server for the session, on its own event loop thread."""
    loop = asyncio.new_event_loop()
    target = HttpTarget("127.0.0.1", 0)
    started = threading.Event()
    runner_box: dict[str, web.AppRunner] = {}

    async def start() -> None:
        runner = web.AppRunner(_app(target), access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        target.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        runner_box["runner"] = runner
        started.set()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    yield target

    async def stop() -> None:
        await runner_box["runner"].cleanup()
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current:
                task.cancel()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture(autouse=True)
def _reset_target_state(request: pytest.FixtureRequest) -> None:
    if "http_target" in request.fixturenames:
        request.getfixturevalue("http_target").state.update(status=200, hits=0, hang=False)


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    """A listening TCP socket (connections complete in the backlog); close it to make the port refuse."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock
    sock.close()


@pytest.fixture
def closed_port() -> int:
    """A port with nothing listening on it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
