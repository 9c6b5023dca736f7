"""Env sources: variables starting with a prefix (PAYMENTS_DB__PORT -> db.port) of the reading process.

Operator territory, twice fenced: the prefix must be in the operator's `CONFIG_ENV_PREFIXES` allowlist
(empty by default, so env sources are off), checked when the source is defined and again on every read;
and the control plane's own settings variables are never read, whatever the allowlist says (see
`never_read`).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from configstore import conf
from configstore.formats import env_name_to_key, scalar_from_text
from configstore.sources.base import SourceReader, SourceReadError

if TYPE_CHECKING:
    from configstore.models import Source

PREFIX_RE = re.compile(r"^[A-Z][A-Z0-9_]*_$")
# Settings variables that may be set without going through controlplane/env.py, or are read by libraries.
KNOWN_SETTINGS_NAMES = frozenset(
    {
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "CONFIG_ENCRYPTION_KEY",
        "CONFIG_WATCH_REDIS_URL",
        "METRICS_TOKEN",
        "DJANGO_SETTINGS_MODULE",
    }
)
# Whole families that belong to the control plane, its framework and its database/broker clients.
SETTINGS_PREFIXES = ("CONTROLPLANE_", "DJANGO_", "CELERY_", "DATABASE_", "REDIS_", "PG")
# Name parts that mark a credential: source layers are stored in plain text, so these stay out of them
# (keep such values in the database layer as secret entries).
SENSITIVE_PARTS = frozenset({"PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIALS", "PRIVATE"})


def never_read(name: str) -> bool:
    """Whether an environment variable is off limits to every env source, whatever the allowlist.

    The control plane's own settings: every name its settings read through controlplane/env.py, every
    setting's name, the known ones above and their families; and any name with a credential-like part.
    """
    from django.conf import settings

    from controlplane.env import NAMES_READ

    upper = name.upper()
    if upper in KNOWN_SETTINGS_NAMES or upper in NAMES_READ or upper.startswith(SETTINGS_PREFIXES):
        return True
    if upper.isidentifier() and hasattr(settings, upper):
        return True
    return bool(SENSITIVE_PARTS.intersection(part for part in upper.split("_") if part))


def prefix_allowed(prefix: str) -> bool:
    """Whether the operator's allowlist holds `prefix` or a prefix of it (`PAYMENTS_` allows `PAYMENTS_EU_`)."""
    return any(prefix.startswith(allowed) for allowed in conf.env_prefixes() if allowed)


class EnvSourceReader(SourceReader):
    """Reads the environment of the process running the reload (the Celery worker or the command)."""

    @classmethod
    def definition_errors(cls, source: Source) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if not PREFIX_RE.match(source.prefix or ""):
            errors["prefix"] = ["An upper-case prefix ending in _, such as PAYMENTS_."]
        elif not prefix_allowed(source.prefix):
            allowed = ", ".join(conf.env_prefixes()) or "none: env sources are off"
            errors["prefix"] = [f"The prefix is not in CONFIG_ENV_PREFIXES (allowed: {allowed})."]
        if source.path:
            errors["path"] = ["Env sources have no path."]
        return errors

    def _items(self) -> list[tuple[str, str]]:
        prefix = self.source.prefix
        if not prefix or not prefix_allowed(prefix):
            # The allowlist may have shrunk since the source was defined.
            raise SourceReadError(f"The prefix {prefix!r} is no longer in CONFIG_ENV_PREFIXES.")
        return sorted(
            (name[len(prefix) :], value)
            for name, value in os.environ.items()
            if name.startswith(prefix) and len(name) > len(prefix) and not never_read(name)
        )

    def read(self) -> bytes:
        return "\n".join(f"{name}={value}" for name, value in self._items()).encode()

    def parse(self, raw: bytes) -> dict[str, Any]:
        return {env_name_to_key(name): scalar_from_text(value) for name, value in self._items()}
