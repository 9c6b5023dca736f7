"""ASGI entry point (uvicorn): blocking queries by the watch server, every other route by Django.

In embedded mode this one application serves every route on one port, so no proxy is needed; in
production a reverse proxy sends the blocking queries (the config watch path, and discovery with
`?index=`) here and everything else to gunicorn. Blocking queries are answered by
`controlplane.watchserver` — Django's request handling with the project's middleware, all of it in the
event loop — so a waiting watcher holds neither a thread nor a database connection.
"""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()

from controlplane import watchserver  # noqa: E402
from controlplane.asgi_bounds import BodyLimitMiddleware  # noqa: E402
from monitoring import live  # noqa: E402

LIVE_PATH = "/dashboard/live/"


async def routes(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    """Blocking queries to the watch server, lifespan answered here, the rest to Django."""
    if scope["type"] == "http" and watchserver.is_watch(scope):
        await watchserver.serve(scope, receive, send)
        return
    if scope["type"] == "http" and scope.get("path") == LIVE_PATH:
        await live.asgi_stream(scope, receive, send)  # dashboard SSE: no thread or DB connection per viewer
        return
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await django_application(scope, receive, send)


async def _lifespan(receive, send) -> None:  # type: ignore[no-untyped-def]
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# Oversized bodies are refused before anything spools them (controlplane/asgi_bounds.py).
application = BodyLimitMiddleware(routes)

# What is loaded by now lives as long as the process: out of the cyclic collector's reach, as in
# controlplane/wsgi.py (full collections walked it on a request's time). The watch hub's burst freeze thaws
# everything after a fan-out (`watchhub._unfreeze`), this set included: only a cost, never a leak.
gc.freeze()

__all__ = ["application"]
