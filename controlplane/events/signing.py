"""Webhook signatures: HMAC-SHA256 over `<timestamp>.<body>`, sent as `X-Controlplane-Signature`.

Header format: `t=<unix seconds>,v1=<hex digest>`. Receivers recompute the digest with their copy of the
secret and reject old timestamps to stop replays (`verify_signature` does both).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Controlplane-Signature"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for `body` at `timestamp` (now by default)."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def verify_signature(secret: str, body: bytes, header: str, *, tolerance_seconds: int = 300) -> bool:
    """True when `header` is a valid, fresh signature of `body` under `secret`."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        ts = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs(time.time() - ts) > tolerance_seconds:
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)
