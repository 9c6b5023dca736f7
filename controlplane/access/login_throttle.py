"""Brute-force protection for the admin sign-in: failed attempts counted per client and per user name.

Counting is django-ratelimit's (`get_usage`) on the shared cache (`RATELIMIT_USE_CACHE`: Redis in
production), so the limits hold across every web process and host. Only *failed* attempts count;
once either count reaches its limit, every attempt from that client or for that user name is refused
with a clear message — even one with the right password, or guessing could go on behind the refusal
— until the window ends. The client is django-ratelimit's `ip` key (`RATELIMIT_IP_META_KEY`, default
`REMOTE_ADDR`; IPv6 grouped by /64).

Known trade-off: a per-user-name limit lets anyone lock an administrator out of the login form for up
to one window by failing on purpose; the window is short and `manage.py changepassword` / the shell
still work.
"""

from __future__ import annotations

import logging
import math

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import _split_rate, get_usage

logger = logging.getLogger("controlplane.access")
GROUP_CLIENT = "admin-login-client"
GROUP_USER = "admin-login-user"


def _normalized(username: str | None) -> str:
    return (username or "").strip().casefold()[:150]


def _usage(request: HttpRequest, username: str | None, *, increment: bool) -> list[tuple[str, int, int]]:
    """(which, failures so far, seconds left in the window) for the client and, if given, the user name."""
    rates = [(GROUP_CLIENT, "ip", settings.ADMIN_LOGIN_RATE_CLIENT)]
    name = _normalized(username)
    if name:
        rates.append((GROUP_USER, lambda _group, _request: name, settings.ADMIN_LOGIN_RATE_USER))
    found = []
    for group, key, rate in rates:
        usage = get_usage(request, group=group, key=key, rate=rate, method=["POST"], increment=increment)
        if usage is not None:
            found.append((group, int(usage["count"]), max(int(usage["time_left"]), 1)))
    return found


def login_refusal(request: HttpRequest, username: str | None) -> tuple[str, int] | None:
    """`(message, retry after seconds)` when sign-in must be refused for this client or user name, else None.

    Fails closed: when the counters cannot be read (the shared cache is down) sign-in is refused too,
    or guessing would be unlimited exactly while the store is unavailable.
    """
    try:
        found = _usage(request, username, increment=False)
    except Exception:  # noqa: BLE001 - any cache failure: refuse, say why
        logger.warning("Admin sign-in refused: the rate-limit store is unavailable", exc_info=True)
        return "Sign-in is temporarily unavailable (the rate-limit store cannot be reached); try again shortly.", 30
    for group, failures, time_left in found:
        rate = settings.ADMIN_LOGIN_RATE_CLIENT if group == GROUP_CLIENT else settings.ADMIN_LOGIN_RATE_USER
        limit, _period = _split_rate(rate)
        if failures >= limit:
            minutes = math.ceil(time_left / 60)
            whom = "from this address" if group == GROUP_CLIENT else "for this user name"
            return (
                f"Too many failed sign-in attempts {whom}. Sign-in is blocked for about "
                f"{minutes} minute{'s' if minutes != 1 else ''}; try again later.",
                time_left,
            )
    return None


def login_failed(request: HttpRequest, username: str | None) -> None:
    """Count one failed sign-in for the client and the user name."""
    _usage(request, username, increment=True)
