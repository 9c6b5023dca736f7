"""Namespace revisions in the shared cache (Redis), so a read does not need a database round trip.

Every read of the effective config first learns the namespace's current revision; the process then
serves its cached snapshot for that revision. In production that lookup is one Redis GET: writers set
`<id>:<revision>` after commit (only ever upward, by a small Lua script), readers fill a missing key
from the database. Web processes that follow the key in their coherence beat
(`controlplane.coherence`) skip even that GET; a writer runs the coherence barrier after storing a
new revision, so a write is visible to every process's reads once it returns. The key expires after `CONFIG_REVISION_CACHE_SECONDS` (default 5), which bounds how
long a lost update to Redis could leave readers behind. Without Redis (embedded mode) the database is
read directly.
"""

from __future__ import annotations

import logging

from django.core.cache import cache

from configstore import conf

logger = logging.getLogger("configstore")
_SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current == 'gone:' .. ARGV[1] then return 0 end
if current then
  local cid, crev = string.match(current, '^(%d+):(%d+)$')
  if cid == ARGV[1] and tonumber(crev) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'EX', ARGV[3])
return 1
"""
_script = None


def enabled() -> bool:
    return bool(conf.redis_url()) and conf.revision_cache_seconds() > 0


def cache_key(namespace: str) -> str:
    """The full (prefixed) cache key of a namespace's revision; the API reads it with the rate limit."""
    return cache.make_key(f"configstore:rev:{namespace}")


def _client():  # type: ignore[no-untyped-def]
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def cached(namespace: str) -> tuple[int, int] | None:
    """`(namespace id, revision)` from Redis, or None when unknown (or Redis is not answering)."""
    try:
        raw = _client().get(cache_key(namespace))
    except Exception:  # noqa: BLE001 - fall back to the database
        logger.warning("Revision cache unavailable; reading from the database", exc_info=True)
        return None
    return parse(raw)


def parse(raw: bytes | None) -> tuple[int, int] | None:
    """`(namespace id, revision)` from a stored `<id>:<revision>` value; None when absent."""
    if not raw or raw.startswith(b"gone:"):
        return None
    namespace_id, _, revision = raw.decode().partition(":")
    return int(namespace_id), int(revision)


def store(namespace: str, namespace_id: int, revision: int) -> None:
    """Record a revision unless a newer one for the same namespace is already there."""
    global _script
    try:
        client = _client()
        if _script is None:
            _script = client.register_script(_SET_IF_NEWER)
        _script(
            keys=[cache_key(namespace)], args=[namespace_id, revision, conf.revision_cache_seconds()], client=client
        )
    except Exception:  # noqa: BLE001 - readers fall back to the database once the key expires
        logger.warning("Could not record revision %s of %s in the cache", revision, namespace, exc_info=True)
        try:  # an old revision must not stay readable until it expires: drop it, readers use the database
            _client().delete(cache_key(namespace))
        except Exception:  # noqa: BLE001 - Redis is down: processes stop trusting it within a beat
            logger.warning("Could not drop the cached revision of %s either", namespace, exc_info=True)


def forget(namespace: str, deleted_id: int | None = None) -> None:
    """Drop a namespace's entry; after a deletion, leave a tombstone for the deleted id.

    The tombstone (`gone:<id>`, same expiry) stops a reader that loaded the row just before the delete
    from storing the deleted namespace's revision again; a namespace created later under the same name
    has another id and replaces it.
    """
    try:
        if deleted_id is None:
            _client().delete(cache_key(namespace))
        else:
            _client().set(cache_key(namespace), f"gone:{deleted_id}", ex=conf.revision_cache_seconds())
        barrier()
    except Exception:  # noqa: BLE001
        logger.warning("Could not drop the cached revision of %s", namespace, exc_info=True)


def barrier() -> None:
    """Wait until every web process has seen the revisions just stored (see `coherence.barrier`)."""
    from controlplane import coherence

    try:
        coherence.barrier()
    except Exception:  # noqa: BLE001 - the write has committed; readers catch up within a beat or TTL
        logger.warning("Coherence barrier after a config write failed", exc_info=True)
