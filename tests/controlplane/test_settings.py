"""Settings from the environment: typed helpers fail loudly, production requires its secrets."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from controlplane import env


def test_typed_helpers_parse_and_reject(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("X_BOOL", "yes")
    assert env.env_bool("X_BOOL", False) is True
    monkeypatch.setenv("X_BOOL", "ture")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL"):
        env.env_bool("X_BOOL", False)
    monkeypatch.setenv("X_INT", "12a")
    with pytest.raises(ImproperlyConfigured, match="integer"):
        env.env_int("X_INT", 1)
    monkeypatch.setenv("X_INT", "0")
    with pytest.raises(ImproperlyConfigured, match=">= 1"):
        env.env_int("X_INT", 1, minimum=1)
    monkeypatch.setenv("X_RATE", "ten per minute")
    with pytest.raises(ImproperlyConfigured, match="rate"):
        env.env_rate("X_RATE", "600/m")
    monkeypatch.setenv("X_NETS", "10.0.0.0/8, not-a-net")
    with pytest.raises(ImproperlyConfigured, match="not-a-net"):
        env.env_networks("X_NETS", [])
    monkeypatch.setenv("X_CHOICE", "xml")
    with pytest.raises(ImproperlyConfigured, match="json, text"):
        env.env_choice("X_CHOICE", "json", ("json", "text"))
    monkeypatch.delenv("X_REQ", raising=False)
    with pytest.raises(ImproperlyConfigured, match="X_REQ is required"):
        env.env_str("X_REQ", required=True)


def _settings_in_child(tmp_path, **variables: str) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    import os

    child_env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "CELERY_BROKER_URL"}
    }
    child_env.update({"CONTROLPLANE_VAR_DIR": str(tmp_path), **variables})
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY[:4])",
        ],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"DEBUG": "ture"}, "DEBUG must be a boolean"),
        ({"RATELIMIT_DEFAULT": "lots"}, "RATELIMIT_DEFAULT"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        (
            {"DATABASE_URL": "postgres://x@127.0.0.1/db", "REDIS_URL": "redis://127.0.0.1:6379/0"},
            "SECRET_KEY is required",
        ),
        ({"DATABASE_URL": "postgres://x@127.0.0.1/db", "SECRET_KEY": "k"}, "REDIS_URL is required"),
        ({"EGRESS_DENY_NETWORKS": "169.254.0.0/16,nonsense"}, "nonsense"),
        ({"PIPELINE_MAX_BATCH": "many"}, "PIPELINE_MAX_BATCH must be an integer"),
        ({"REGISTRY_RESULT_RETENTION_DAYS": "0"}, "REGISTRY_RESULT_RETENTION_DAYS must be >= 1"),
    ],
)
def test_bad_environment_stops_start_up(tmp_path, variables, message) -> None:  # type: ignore[no-untyped-def]
    result = _settings_in_child(tmp_path, **variables)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_embedded_mode_generates_and_keeps_a_secret_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = _settings_in_child(tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert _settings_in_child(tmp_path).stdout == first.stdout


def test_app_tunables_come_from_the_environment_else_the_app_default(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    child_env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    child_env.update({"CONTROLPLANE_VAR_DIR": str(tmp_path), "PIPELINE_MAX_BATCH": "50"})
    child_env.pop("REGISTRY_RESULT_RETENTION_DAYS", None)
    script = (
        "import django; django.setup(); from registry import conf; from pipelines.conf import max_batch_packets; "
        "print(max_batch_packets(), conf.get('REGISTRY_RESULT_RETENTION_DAYS'))"
    )
    result = subprocess.run([sys.executable, "-c", script], env=child_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["50", "1"]


@pytest.mark.django_db
def test_models_and_migrations_agree() -> None:
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out)
    except SystemExit as exc:
        pytest.fail(f"missing migrations:\n{out.getvalue()}\n(exit {exc.code})")
