"""Source layer kinds: a plain dict from kind to reader class (adding a kind = one module + one entry)."""

from configstore.sources.base import SourceReader, SourceReadError
from configstore.sources.env import EnvSourceReader
from configstore.sources.file import FileSourceReader, resolve_source_path

SOURCE_KINDS: dict[str, type[SourceReader]] = {
    "file": FileSourceReader,
    "env": EnvSourceReader,
}

__all__ = ["SOURCE_KINDS", "SourceReadError", "SourceReader", "resolve_source_path"]
