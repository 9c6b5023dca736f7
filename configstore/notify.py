"""Change notification for config watches: publish on commit, one async hub per watch-server process.

Writers call `publish(namespace, revision, namespace_id)` after commit: it wakes watchers in the same
process and, in production, publishes on Redis (`configstore:changed:<namespace>`). The hub itself
(`controlplane.watchhub`) is shared with the registry's discovery watches; this module says what a
config watch follows: namespace revisions, read every `CONFIG_WATCH_POLL_SECONDS` by the poller (the only
path in embedded mode, where writes can happen in the Celery worker; a safety net in production).
"""

from __future__ import annotations

from typing import Any

from configstore import conf
from controlplane import watchhub

CHANNEL_PREFIX = "configstore:changed:"


class ConfigTopic(watchhub.Topic):
    """Config namespaces: index = the namespace revision, id = the namespace id."""

    name = "config"
    channel_prefix = CHANNEL_PREFIX

    def redis_url(self) -> str | None:
        return conf.redis_url()

    def poll_seconds(self) -> float:
        return conf.watch_poll_seconds()

    def fetch(self, names: list[str]) -> dict[str, tuple[int, int]]:
        from configstore.models import Namespace

        return {
            name: (pk, revision)
            for name, pk, revision in Namespace.objects.filter(name__in=names).values_list("name", "id", "revision")
        }

    def index_of(self, answer: Any) -> int:
        return answer.revision


TOPIC = ConfigTopic()


def publish(namespace: str, revision: int, namespace_id: int) -> None:
    """Tell watchers everywhere that `namespace` reached `revision` (call after commit); -1 = deleted."""
    watchhub.publish(TOPIC, namespace, revision, namespace_id)


class WatchHub:
    """The config topic's hub in this process (for metrics: `WatchHub.current().watcher_count()`)."""

    @staticmethod
    def current() -> watchhub.WatchHub | None:
        return watchhub.WatchHub.current(TOPIC)

    @staticmethod
    def for_running_loop() -> watchhub.WatchHub:
        return watchhub.WatchHub.for_running_loop(TOPIC)
