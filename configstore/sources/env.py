"""Env sources: variables starting with a prefix (PAYMENTS_DB__PORT -> db.port) of the reading process."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from configstore.formats import env_name_to_key, scalar_from_text
from configstore.sources.base import SourceReader

if TYPE_CHECKING:
    from configstore.models import Source

PREFIX_RE = re.compile(r"^[A-Z][A-Z0-9_]*_$")


class EnvSourceReader(SourceReader):
    """Reads the environment of the process running the reload (the Celery worker or the command)."""

    @classmethod
    def definition_errors(cls, source: Source) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if not PREFIX_RE.match(source.prefix or ""):
            errors["prefix"] = ["An upper-case prefix ending in _, such as PAYMENTS_."]
        if source.path:
            errors["path"] = ["Env sources have no path."]
        return errors

    def _items(self) -> list[tuple[str, str]]:
        prefix = self.source.prefix
        return sorted(
            (name[len(prefix) :], value)
            for name, value in os.environ.items()
            if name.startswith(prefix) and len(name) > len(prefix)
        )

    def read(self) -> bytes:
        return "\n".join(f"{name}={value}" for name, value in self._items()).encode()

    def parse(self, raw: bytes) -> dict[str, Any]:
        return {env_name_to_key(name): scalar_from_text(value) for name, value in self._items()}
