"""File and env sources: precedence, all-or-nothing reloads, limits, the beat task and the command."""

from __future__ import annotations

import time

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.test import override_settings

from configstore import selectors, services
from configstore.models import Entry, Revision
from controlplane.events.models import Event


def file_source(namespace, path="app.yaml", **kwargs):  # type: ignore[no-untyped-def]
    return services.source_create(
        namespace=namespace, name=kwargs.pop("name", "app"), kind="file", path=path, actor="t", **kwargs
    )


@override_settings(CONFIG_ENV_PREFIXES=["PAYMENTS_"])
def test_precedence_env_over_file_over_database(namespace, source_root, monkeypatch):
    services.config_entry_set(namespace=namespace, key="db.host", value="from-db", actor="t")
    services.config_entry_set(namespace=namespace, key="db.port", value=1, actor="t")
    services.config_entry_set(namespace=namespace, key="only_db", value=True, actor="t")
    (source_root / "app.yaml").write_text("db:\n  host: from-file\n  port: 2\n")
    services.source_reload(source=file_source(namespace), actor="t")
    monkeypatch.setenv("PAYMENTS_DB__PORT", "3")
    env = services.source_create(namespace=namespace, name="env", kind="env", prefix="PAYMENTS_", actor="t")
    assert services.source_reload(source=env, actor="t").status == "applied"
    assert selectors.config_effective("payments") == {"db": {"host": "from-file", "port": 3}, "only_db": True}
    assert selectors.config_snapshot("payments").winners == {
        "db.host": "file:app",
        "db.port": "env:env",
        "only_db": "database",
    }
    assert [e.layer for e in selectors.entry_layers(namespace, "db.port")] == ["env:env", "file:app", "database"]
    # A database layer with a higher priority than a file wins: priority, not kind, decides.
    services.source_update(source=namespace.sources.get(name="app"), priority=50, actor="t")
    assert selectors.config_value("payments", "db.host") == "from-db"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("app.json", '{"db": {"port": 5432}, "flags": [1, 2]}', {"db": {"port": 5432}, "flags": [1, 2]}),
        ("app.ini", "top = 1\n[db]\nport = 5432\nhost = h\n", {"top": 1, "db": {"port": 5432, "host": "h"}}),
        ("app.toml", '[db]\nport = 5432\nhost = "h"\n', {"db": {"port": 5432, "host": "h"}}),
        ("app.yml", "db:\n  port: 5432\n", {"db": {"port": 5432}}),
    ],
)
def test_file_formats(namespace, source_root, name, text, expected):
    (source_root / name).write_text(text)
    assert services.source_reload(source=file_source(namespace, path=name), actor="t").status == "applied"
    assert selectors.config_effective("payments") == expected


def test_a_500_entry_file_with_one_bad_value_applies_nothing_then_the_fix_is_one_revision(
    namespace, source_root, add_rule
):
    add_rule("svc.*.port", "range", min=1, max=65535)
    values = {f"svc{i}": {"port": 1000 + i, "host": f"h{i}"} for i in range(250)}
    values["svc123"]["port"] = 70000
    (source_root / "app.yaml").write_text(yaml.safe_dump({"svc": values}))
    source = file_source(namespace)
    result = services.source_reload(source=source, actor="t")
    assert result.status == "failed" and "svc.svc123.port" in result.error
    assert not Entry.objects.exists() and Revision.objects.count() == 0
    source.refresh_from_db()
    assert "svc.svc123.port" in source.last_error
    assert Event.objects.filter(kind="config.source_failed", data__source="app").count() == 1
    assert (
        services.source_reload(source=source, actor="t").status == "unchanged"
    )  # same bad content: no retry storm
    values["svc123"]["port"] = 8123
    (source_root / "app.yaml").write_text(yaml.safe_dump({"svc": values}))
    result = services.source_reload(source=source, actor="t")
    assert result.status == "applied" and result.revision == 1
    assert Entry.objects.count() == 500 and Revision.objects.count() == 1
    source.refresh_from_db()
    assert source.last_error == "" and source.last_loaded_at is not None


@pytest.mark.parametrize(
    "truncated",
    ['db:\n  host: "db.inter', "db:\n  hosts: [a, b\n", "db:\n  host: h\n  port: {a: 1,\n"],
)
def test_truncated_yaml_applies_nothing_and_keeps_old_values(namespace, source_root, truncated):
    (source_root / "app.yaml").write_text("db:\n  host: h\n  port: 5432\n")
    source = file_source(namespace)
    services.source_reload(source=source, actor="t")
    (source_root / "app.yaml").write_text(truncated)
    result = services.source_reload(source=source, actor="t")
    assert result.status == "failed" and "Invalid YAML" in result.error
    assert selectors.config_effective("payments") == {"db": {"host": "h", "port": 5432}}


def test_a_file_truncated_at_a_line_boundary_is_caught_by_required_rules(namespace, source_root, add_rule):
    (source_root / "app.yaml").write_text("db:\n  host: h\n  port: 5432\n")
    source = file_source(namespace)
    services.source_reload(source=source, actor="t")
    add_rule("db.port", "required")
    (source_root / "app.yaml").write_text("db:\n  host: h\n")
    assert services.source_reload(source=source, actor="t").status == "failed"
    assert selectors.config_value("payments", "db.port") == 5432


def test_too_large_missing_and_escaping_files_fail_without_applying(namespace, source_root, tmp_path):
    (source_root / "app.yaml").write_text("a: 1\n")
    source = file_source(namespace)
    services.source_reload(source=source, actor="t")
    (source_root / "app.yaml").write_text("a: 2\npadding: " + "x" * 200 + "\n")
    with override_settings(CONFIG_SOURCE_MAX_BYTES=100):
        assert "larger than 100 bytes" in services.source_reload(source=source, actor="t").error
    (source_root / "app.yaml").unlink()
    (tmp_path / "evil.yaml").write_text("a: 3\n")
    (source_root / "app.yaml").symlink_to(tmp_path / "evil.yaml")
    assert "leaves the source root" in services.source_reload(source=source, actor="t").error
    (source_root / "app.yaml").unlink()
    assert "Cannot open" in services.source_reload(source=source, actor="t").error
    assert selectors.config_effective("payments") == {"a": 1}


def test_source_definitions_are_validated(namespace, source_root):
    from django.core.exceptions import ValidationError

    for kwargs in (
        {"path": "../x.yaml"},
        {"path": "/abs.yaml"},
        {"path": "noext"},
        {"path": "a.yaml", "priority": 100},
    ):
        with pytest.raises(ValidationError):
            file_source(namespace, **kwargs)
    with pytest.raises(ValidationError):
        services.source_create(namespace=namespace, name="e", kind="env", prefix="no_trailing", actor="t")


def test_config_reload_command(namespace, source_root):
    (source_root / "app.yaml").write_text("a: 1\n")
    file_source(namespace)
    call_command("config_reload", "--namespace", "payments")
    assert selectors.config_effective("payments") == {"a": 1}
    (source_root / "app.yaml").write_text("a: [\n")
    with pytest.raises(CommandError):
        call_command("config_reload")
    assert selectors.config_effective("payments") == {"a": 1}


def test_pending_diff(namespace, source_root):
    (source_root / "app.yaml").write_text("a: 1\nb: 2\n")
    source = file_source(namespace)
    services.source_reload(source=source, actor="t")
    (source_root / "app.yaml").write_text("a: 1\nb: 3\nc: 4\n")
    diff, error = selectors.source_pending_diff(source)
    assert error == "" and diff == [
        {"key": "b", "action": "update", "old": 2, "new": 3},
        {"key": "c", "action": "create", "old": None, "new": 4},
    ]
    (source_root / "app.yaml").write_text("a: [\n")
    assert "Invalid YAML" in selectors.source_pending_diff(source)[1]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_reload_task_applies_a_dropped_file_in_the_worker(celery_worker_process, tmp_path):
    from django.conf import settings

    from configstore.tasks import reload_sources

    root = settings.CONFIG_SOURCE_ROOT  # the worker reads the same setting
    root.mkdir(parents=True, exist_ok=True)
    namespace = services.namespace_create(name="workerns", actor="t")
    path = root / "workerns-test.yaml"
    path.write_text("feature:\n  enabled: true\n")
    try:
        services.source_create(namespace=namespace, name="app", kind="file", path=path.name, actor="t")
        reload_sources.delay()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and selectors.namespace_revision("workerns") == 0:
            time.sleep(0.2)
        assert selectors.config_effective("workerns") == {"feature": {"enabled": True}}
        assert Revision.objects.get(namespace=namespace).actor == "system:reload"
    finally:
        path.unlink(missing_ok=True)


def test_the_reload_schedule_exists_after_migrate(db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="configstore.tasks.reload_sources")
    assert task.interval.every == 5 and task.enabled
