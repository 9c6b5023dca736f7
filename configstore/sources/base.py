"""Base class of source readers: read raw content (hashed for change detection), then parse it."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from configstore.models import Source


class SourceReadError(Exception):
    """A source cannot be read or parsed (missing file, too large, outside the root, bad syntax)."""


class SourceReader:
    """Reads one kind of source; subclasses implement `read` and `parse`."""

    def __init__(self, source: Source) -> None:
        self.source = source

    @classmethod
    def definition_errors(cls, source: Source) -> dict[str, list[str]]:
        """Problems with a source definition (path, format, prefix), by field."""
        return {}

    def read(self) -> bytes:
        """The raw content; raise `SourceReadError` when it cannot be read."""
        raise NotImplementedError

    def parse(self, raw: bytes) -> dict[str, Any] | str:
        """A nested document (dict) or, for formats parsed by the store, the text to parse."""
        raise NotImplementedError

    @staticmethod
    def digest(raw: bytes) -> str:
        return hashlib.sha256(raw).hexdigest()
