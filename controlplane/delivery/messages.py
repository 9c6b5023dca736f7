"""What one attempt sends and what comes back (no I/O here: models import it in every process)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OutboundRequest:
    """What one attempt sends: a POST (by default) of `body` to `url` with `headers`."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass(frozen=True)
class OutboundResponse:
    """What came back: the status, the headers and at most `max_bytes` of the body."""

    status: int
    headers: dict[str, str]
    body: bytes
