"""Rejected config writes per namespace as a series: every refusal of a change set (validation, stale
compare-and-swap, authorization), whatever path it took, counted once in `rejected_writes`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from configstore.services import rules as rule_services
from configstore.services.entries import config_entry_set, config_rollback
from monitoring.models import MetricPoint
from monitoring.services import rollups
from tests.configstore.factories import NamespaceFactory
from tests.conftest import key_client

pytestmark = pytest.mark.django_db
SERIES = "/api/v1/metrics/series/"


def series_total(metric: str, namespace: str = "payments") -> float:
    """The sum of the namespace's `metric` over the last hour, read through the series API."""
    start = (timezone.now() - timedelta(minutes=30)).replace(second=0, microsecond=0)
    response = key_client("monitoring:read", "config:read").get(  # namespace series are config metadata
        SERIES,
        {
            "kind": "namespace",
            "target": namespace,
            "metric": metric,
            "from": start.isoformat(),
            "to": (start + timedelta(hours=1)).isoformat(),
        },
    )
    assert response.status_code == 200, response.content
    return sum(p["value"] or 0 for p in response.json()["points"])


def test_rejected_writes_of_every_kind_show_up_in_the_namespace_series() -> None:
    namespace = NamespaceFactory(name="payments")
    NamespaceFactory(name="billing")
    rule_services.rule_create(namespace=namespace, key="db.port", kind="type", params={"type": "integer"}, actor="t")
    writer = key_client("config:read", "config:write")
    entry = "/api/v1/config/payments/"
    assert writer.put(f"{entry}db.port/", {"value": 5432}, format="json").status_code == 201
    # invalid: a rule refuses the value
    assert writer.put(f"{entry}db.port/", {"value": "five"}, format="json").status_code == 400
    # conflict: a stale compare-and-swap
    assert writer.put(f"{entry}db.port/", {"value": 1}, format="json", HTTP_IF_MATCH="0").status_code == 412
    # forbidden: a secret without config:secrets
    assert writer.put(f"{entry}pw/", {"value": "x", "secret": True}, format="json").status_code == 403
    # an import refused by the same rule: counted once, not by each layer it went through
    bad_import = writer.post(f"{entry}import/", "db:\n  port: nope\n", content_type="application/yaml")
    assert bad_import.status_code == 400, bad_import.content
    # an unparsable import document
    assert writer.post(f"{entry}import/", "a: [1,\n", content_type="application/yaml").status_code == 400
    # a dry run that fails is a refused write too (the admin's entry form validates this way)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the ValidationError itself is the service's
        config_entry_set(namespace=namespace, key="db.port", value="x", actor="admin", origin="admin", dry_run=True)
    # a rollback to a revision that does not exist
    with pytest.raises(Exception):  # noqa: B017, PT011
        config_rollback(namespace=namespace, to_revision=99, actor="system")
    # an accepted write, and another namespace's refusal, count nothing here
    assert writer.put(f"{entry}db.port/", {"value": 5433}, format="json").status_code == 200
    assert writer.put("/api/v1/config/billing/x/", {"value": 1}, format="json", HTTP_IF_MATCH="7").status_code == 412

    rollups.rollup_minutes(now=timezone.now() + timedelta(minutes=2))  # the minutes are final: readable
    assert series_total("rejected_writes") == 7
    assert series_total("rejected_invalid") == 5
    assert series_total("rejected_conflicts") == 1
    assert series_total("rejected_forbidden") == 1
    assert series_total("revisions") == 2
    assert series_total("rejected_writes", "billing") == 1
    # A second roll-up run changes nothing (the refusals are not recomputed from source rows).
    before = sorted(MetricPoint.objects.values_list("series__metric", "bucket", "count"))
    rollups.rollup_minutes(now=timezone.now() + timedelta(minutes=2))
    assert sorted(MetricPoint.objects.values_list("series__metric", "bucket", "count")) == before


def test_a_refused_source_reload_is_a_source_failure_not_a_rejected_write() -> None:
    from configstore.services.changes import EntryChange, config_changes_apply

    namespace = NamespaceFactory(name="payments")
    rule_services.rule_create(namespace=namespace, key="port", kind="type", params={"type": "integer"}, actor="t")
    with pytest.raises(Exception):  # noqa: B017, PT011
        config_changes_apply(
            namespace=namespace, changes=[EntryChange(key="port", value="x")], actor="system", origin="source:file"
        )
    assert not MetricPoint.objects.filter(series__metric="rejected_writes").exists()
