"""Prometheus: alert states by rule and severity (read at scrape time) and notifications sent."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

NOTIFICATIONS = Counter(
    "monitoring_notifications_total", "Alert notification attempts by channel kind and outcome.", ["kind", "outcome"]
)
STATES = ("inactive", "pending", "firing", "resolved", "flapping")


class AlertStatesCollector(Collector):
    """`monitoring_alerts{rule, severity, state}`: alerts per rule in each state; `flapping` counted apart."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from django.db.models import Count, Q

        from monitoring.models import AlertRule

        family = GaugeMetricFamily(
            "monitoring_alerts",
            "Alerts by rule, severity and state (flapping: also in their own state).",
            labels=["rule", "severity", "state"],
        )
        try:
            rows = list(
                AlertRule.objects.values("name", "severity").annotate(
                    **{state: Count("states", filter=Q(states__status=state)) for state in STATES[:4]},
                    flapping=Count("states", filter=Q(states__flapping=True)),
                )
            )
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is briefly away
            return
        for row in rows:
            for state in STATES:
                family.add_metric([row["name"], row["severity"], state], row[state])
        yield family


COLLECTOR = AlertStatesCollector()
