"""Python SDK for the controlplane integration control plane: registry, discovery, config, pipelines, events, keys.

`Client` is synchronous, `AsyncClient` has the same methods as coroutines; both default to the
`CONTROLPLANE_URL` and `CONTROLPLANE_API_KEY` environment variables. Nothing here imports the server.
"""

__version__ = "0.1.0"

from controlplane_client.aclient import AsyncClient  # noqa: E402
from controlplane_client.balancer import Balancer  # noqa: E402
from controlplane_client.client import Client  # noqa: E402
from controlplane_client.config import Config  # noqa: E402
from controlplane_client.errors import (  # noqa: E402
    Conflict,
    ConnectionFailed,
    ControlPlaneError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
    Unprocessable,
    ValidationError,
)
from controlplane_client.models import Discovery, Instance, Run  # noqa: E402

__all__ = [
    "AsyncClient",
    "Balancer",
    "Client",
    "Config",
    "Conflict",
    "ConnectionFailed",
    "ControlPlaneError",
    "Discovery",
    "Forbidden",
    "Instance",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "RateLimited",
    "Run",
    "ServerError",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "ValidationError",
    "__version__",
]
