"""Typed readers for environment variables that fail loudly on bad values.

Every setting that comes from the environment goes through one of these, so a typo in a deployment
(`DEBUG=ture`, `RATELIMIT_DEFAULT=ten`) stops the process at start-up with `ImproperlyConfigured`
instead of silently running with a default.
"""

from __future__ import annotations

import ipaddress
import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
RATE_RE = re.compile(r"^(\d+)/(\d*)([smhd])$")
# Every variable name a helper here was asked for: the settings' own variables, which config env sources
# must never read (configstore/sources/env.py).
NAMES_READ: set[str] = set()


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    """A string, or the default; `required` raises when it is missing or empty."""
    NAMES_READ.add(name)
    value = os.environ.get(name)
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(f"The environment variable {name} is required.")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    """A boolean from 1/0, true/false, yes/no, on/off (case-insensitive)."""
    NAMES_READ.add(name)
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}.")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer within optional bounds."""
    NAMES_READ.add(name)
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be <= {maximum}, got {value}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; blanks are dropped."""
    NAMES_READ.add(name)
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of a fixed set of strings."""
    NAMES_READ.add(name)
    value = (os.environ.get(name) or default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
    return value


def env_rate(name: str, default: str) -> str:
    """A django-ratelimit rate such as `600/m` or `100/h`."""
    NAMES_READ.add(name)
    value = (os.environ.get(name) or default).strip()
    if not RATE_RE.match(value):
        raise ImproperlyConfigured(f"{name} must be a rate like 600/m or 100/h, got {value!r}.")
    return value


def env_networks(name: str, default: list[str]) -> list[str]:
    """A comma-separated list of CIDR networks; each is parsed so a bad one fails at start-up."""
    items = env_list(name, default)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not a network (CIDR).") from None
    return items
