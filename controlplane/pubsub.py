"""Redis pub/sub channel names of this deployment.

Redis keeps one pub/sub namespace per server, whatever the database number: two control planes on one
Redis server (each with its own `REDIS_URL` database, or its own `CACHE_KEY_PREFIX`) would otherwise
hear each other's messages. For the watch hubs that meant a change to namespace `payments` in one
deployment woke the `payments` watchers of the other, which took its revision and id for their own
(CI saw a watch answered before any change of its own while another stack ran beside it). Every channel
the project publishes or subscribes to is named through `channel`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from django.conf import settings
from redis.connection import parse_url


@lru_cache(maxsize=16)
def db_of(url: str) -> int:
    """The database number a Redis URL selects (0 when it names none)."""
    return int(parse_url(url).get("db", 0) or 0)


def channel(name: str, db: int) -> str:
    """`name` scoped to this deployment: its cache key prefix and the Redis database it uses."""
    prefix = settings.CACHES.get("default", {}).get("KEY_PREFIX", "")
    return f"{prefix}:{db}:{name}"


def pattern(prefix: str) -> str:
    """A `PSUBSCRIBE` pattern matching every channel that starts with `prefix` (glob characters escaped)."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", prefix) + "*"
