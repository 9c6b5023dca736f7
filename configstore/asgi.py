"""ASGI entry kept for deployments that name it: the project's ASGI application (`controlplane.asgi`).

The watch path used to be answered here with its own copy of tracing and headers; it now goes through
`controlplane.watchserver` with the project's middleware, like every other route.

    uvicorn configstore.asgi:application
"""

from controlplane.asgi import application

__all__ = ["application"]
