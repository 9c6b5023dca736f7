"""The outage cache: the last good config and discovery answers, on disk, for when the control plane is down.

One directory per (server, key): a key that may not read secrets only ever stores the masked values the
server gave it, and a second key on the same machine never reads the first one's copy. Directories are
0700 and files 0600; every write goes to a temporary file in the same directory, is fsynced and renamed
over the old one, so a reader (or a crash) never sees half a file. A read that returns what the file
already holds (same index, same data) only touches its modification time, which is what `age` is
measured from: the hot path of a service reading its config pays no write and no fsync.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import platformdirs


def default_cache_dir() -> Path:
    """The platform's user cache directory for this package (e.g. ~/.cache/controlplane-client)."""
    return Path(platformdirs.user_cache_dir("controlplane-client", appauthor=False))


def _key_id(api_key: str | None) -> str:
    # The prefix names a key; hashing the whole key as well means a reissued key with the same prefix
    # (bootstrap --reset-credentials) starts with an empty cache instead of inheriting the old one's.
    return hashlib.sha256((api_key or "").encode()).hexdigest()[:16]


class OutageCache:
    """Atomic JSON files under `<root>/<server+key hash>/<kind>/<name>.json`."""

    def __init__(self, root: Path | str, base_url: str, api_key: str | None, *, max_age: float | None = None) -> None:
        digest = hashlib.sha256(f"{base_url}\0{_key_id(api_key)}".encode()).hexdigest()[:24]
        self.root = Path(root)
        self.dir = self.root / digest
        self.max_age = max_age  # older copies are not answered (None: any age)
        self._saved: dict[tuple[str, str], tuple[int, Any]] = {}
        self._confirmed: dict[tuple[str, str], float] = {}
        self._paths: dict[tuple[str, str], Path] = {}

    def path(self, kind: str, name: str) -> Path:
        path = self._paths.get((kind, name))
        if path is None:  # built once per name: this runs on every config read
            safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "_"
            path = self._paths[(kind, name)] = self.dir / kind / f"{safe}.json"
        return path

    def save(self, kind: str, name: str, data: Any, *, index: int = 0) -> None:
        """Write atomically; a failing disk never fails the read that produced the data."""
        path = self.path(kind, name)
        if self._saved.get((kind, name)) == (index, data):
            now = time.monotonic()
            if now - self._confirmed.get((kind, name), 0.0) < 1.0:
                return  # confirmed within the last second: `age` is whole seconds anyway
            with contextlib.suppress(OSError):
                os.utime(path)  # still the last good answer, confirmed now
                self._confirmed[(kind, name)] = now
                return
        try:
            # parents: the user cache directory itself may not exist yet (a fresh account, a new
            # $XDG_CACHE_HOME); without it every save failed silently and an outage found no copy.
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            for directory in (self.dir, path.parent):
                directory.mkdir(mode=0o700, exist_ok=True)
            body = json.dumps({"saved_at": time.time(), "index": index, "data": data}, separators=(",", ":"))
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")  # created 0600
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(body)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(tmp, 0o600)  # whatever the umask
                os.replace(tmp, path)
                self._saved[(kind, name)] = (index, data)
                self._confirmed[(kind, name)] = time.monotonic()
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            return

    def load(self, kind: str, name: str) -> tuple[Any, int, float] | None:
        """`(data, index, age seconds)` or None when nothing usable is stored."""
        try:
            path = self.path(kind, name)
            stored = json.loads(path.read_text())
            confirmed = max(float(stored["saved_at"]), path.stat().st_mtime)
            age = max(0.0, time.time() - confirmed)
            if self.max_age is not None and age > self.max_age:
                return None
            return stored["data"], int(stored.get("index", 0)), age
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def drop(self, kind: str, name: str) -> None:
        """Forget a copy the key may no longer read (the server answered 401/403/404 for it)."""
        self._saved.pop((kind, name), None)
        with contextlib.suppress(OSError):
            self.path(kind, name).unlink()


class NoCache:
    """`cache_dir=False`: nothing is stored, nothing answers an outage."""

    def save(self, kind: str, name: str, data: Any, *, index: int = 0) -> None:
        return None

    def load(self, kind: str, name: str) -> tuple[Any, int, float] | None:
        return None

    def drop(self, kind: str, name: str) -> None:
        return None
