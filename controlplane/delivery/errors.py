"""Typed outcomes of a failed delivery attempt: the type, not the message text, decides what happens next.

`final` errors end the delivery at once (`failed`); the others are retried with backoff until the kind's
`max_attempts` is reached.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """A delivery attempt that did not succeed; `final` says whether another attempt could."""

    final = False
    status_code: int | None = None


class DeliveryDenied(DeliveryError):
    """The egress policy refuses the target (address, host, scheme): retrying would be refused again."""

    final = True


class DeliveryNetworkError(DeliveryError):
    """Connection refused or reset, TLS failure, protocol error: the network may recover."""


class DeliveryDNSError(DeliveryNetworkError):
    """The target's name did not resolve (a DNS outage is often brief): retried, never a policy denial."""


class DeliveryDeadlineExceeded(DeliveryNetworkError):
    """The exchange (connect, request, headers and body) did not finish within the total deadline."""


class DeliveryNoTarget(DeliveryError):
    """There is nothing to send to yet (no passing instance of the service): retried."""


class DeliveryHTTPError(DeliveryError):
    """The target answered, but not with 2xx: retried (the receiver may be deploying)."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
