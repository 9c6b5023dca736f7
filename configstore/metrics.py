"""Prometheus metrics of the config store."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONFIG_REVISIONS = Counter(
    "controlplane_config_revisions_total", "Config revisions applied, by origin kind.", ["origin"]
)
CONFIG_REJECTED = Counter(
    "controlplane_config_changes_rejected_total",
    "Config change sets refused by validation, by origin kind.",
    ["origin"],
)


def origin_kind(origin: str) -> str:
    """Bounded label: `source:<name>` -> `source`."""
    return origin.split(":", 1)[0][:20]


class ConfigStoreCollector(Collector):
    """Scrape-time gauges: namespaces, entries, sources in error, watchers in this process."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from configstore.models import Entry, Namespace, Source
        from configstore.notify import WatchHub

        yield GaugeMetricFamily("controlplane_config_namespaces", "Config namespaces.", value=Namespace.objects.count())
        yield GaugeMetricFamily(
            "controlplane_config_entries", "Config entries over all layers.", value=Entry.objects.count()
        )
        yield GaugeMetricFamily(
            "controlplane_config_sources_failing",
            "Enabled config sources whose last load failed.",
            value=Source.objects.filter(enabled=True).exclude(last_error="").count(),
        )
        hub = WatchHub.current()
        yield GaugeMetricFamily(
            "controlplane_config_watchers",
            "Watch requests waiting in this process.",
            value=hub.watcher_count() if hub else 0,
        )
