"""ASGI entry point (uvicorn): the config watch path served natively, every other route by Django.

In embedded mode this one application serves every route on one port, so no proxy is needed; in
production a reverse proxy sends only the watch path here and everything else to gunicorn. The watch
path is answered by `configstore.asgi` without Django's sync middleware, so a waiting watcher holds
neither a thread nor a database connection.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

from configstore.asgi import application as routes  # noqa: E402
from controlplane.asgi_bounds import BodyLimitMiddleware  # noqa: E402

# Oversized bodies are refused before Django's ASGI handler spools them (controlplane/asgi_bounds.py).
application = BodyLimitMiddleware(routes)

__all__ = ["application"]
