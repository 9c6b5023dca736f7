"""Concurrency on PostgreSQL: concurrent edits get distinct consecutive versions; migrations are in sync."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from pipelines.models import Pipeline, PipelineVersion
from tests.pipelines.factories import PipelineFactory, transform_step


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_updates_serialize_into_consecutive_versions() -> None:
    from pipelines.services import pipeline_update

    pipeline = PipelineFactory(slug="busy", steps=[transform_step("a")])
    errors: list[BaseException] = []

    def edit(n: int) -> None:
        try:
            pipeline_update(
                Pipeline.objects.get(pk=pipeline.pk), description=f"edit {n}", steps=[transform_step(f"s{n}")]
            )
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=edit, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    pipeline.refresh_from_db()
    assert pipeline.version == 9
    versions = list(
        PipelineVersion.objects.filter(pipeline=pipeline).order_by("version").values_list("version", "definition")
    )
    assert [v for v, _ in versions] == list(range(1, 10))
    # Each snapshot holds exactly the steps of its own edit: no interleaving.
    for version, definition in versions[1:]:
        assert len(definition["steps"]) == 1 and definition["version"] == version


@pytest.mark.django_db
def test_models_and_migrations_agree() -> None:
    out = StringIO()
    call_command("makemigrations", "pipelines", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
