"""File sources: a YAML/JSON/INI/TOML file under CONFIG_SOURCE_ROOT, size-limited, no escape from the root."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from configstore import conf
from configstore.sources.base import SourceReader, SourceReadError

if TYPE_CHECKING:
    from configstore.models import Source

FORMAT_BY_SUFFIX = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".ini": "ini", ".toml": "toml"}


def resolve_source_path(path: str) -> Path:
    """The absolute path of `path` under the root; `SourceReadError` for absolute paths, `..` or symlink escapes."""
    if not path or "\x00" in path:
        raise SourceReadError("Give a path relative to the source root.")
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts:
        raise SourceReadError("The path must be relative to the source root and must not contain '..'.")
    root = conf.source_root().resolve()
    resolved = (root / relative).resolve()
    if resolved != root and root not in resolved.parents:
        raise SourceReadError("The path leaves the source root (through a symlink).")
    return resolved


def _check_opened_inside_root(fd: int, shown: str) -> None:
    """The file actually opened lies under the root (closes the race of a directory swapped for a symlink
    between the check and the open). Linux tells through /proc; elsewhere the check above stands alone."""
    try:
        opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return
    root = conf.source_root().resolve()
    if root not in opened.parents:
        raise SourceReadError(f"{shown} leaves the source root (through a symlink).")


class FileSourceReader(SourceReader):
    """Reads a file under the source root; the format comes from the source or the file suffix."""

    @classmethod
    def definition_errors(cls, source: Source) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        try:
            resolved = resolve_source_path(source.path)
        except SourceReadError as exc:
            return {"path": [str(exc)]}
        if not source.format and resolved.suffix.lower() not in FORMAT_BY_SUFFIX:
            errors["format"] = ["Give a format (yaml, json, ini, toml): the file name does not tell."]
        if source.prefix:
            errors["prefix"] = ["File sources have no prefix."]
        return errors

    @property
    def format(self) -> str:
        return self.source.format or FORMAT_BY_SUFFIX.get(Path(self.source.path).suffix.lower(), "yaml")

    def read(self) -> bytes:
        path = resolve_source_path(self.source.path)
        limit = conf.source_max_bytes()
        try:
            # O_NOFOLLOW: a symlink swapped in after the check above is refused, not followed; O_NONBLOCK:
            # a FIFO cannot hang the reader (it is refused below as not a regular file).
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            raise SourceReadError(f"Cannot open {self.source.path}: {exc.strerror}.") from None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SourceReadError(f"{self.source.path} is not a regular file.")
            _check_opened_inside_root(fd, self.source.path)
            raw = handle.read(limit + 1)
        if len(raw) > limit:
            raise SourceReadError(f"{self.source.path} is larger than {limit} bytes.")
        return raw

    def parse(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SourceReadError(f"{self.source.path} is not UTF-8 text.") from None
