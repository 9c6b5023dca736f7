"""Every task of the project is routed to one of the three queues and has soft and hard time limits."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import settings

from controlplane import commandlines
from controlplane.celery import app


def _project_tasks() -> dict:
    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def test_every_task_is_routed_explicitly_to_a_known_queue() -> None:
    tasks = _project_tasks()
    assert len(tasks) >= 13  # the two delivery engines' four tasks are now one engine's two
    listed = {task: queue for queue, names in settings.TASK_QUEUE_TASKS.items() for task in names}
    assert set(settings.TASK_QUEUE_TASKS) == set(commandlines.QUEUES)
    missing = sorted(set(tasks) - set(listed))
    assert not missing, f"tasks without an explicit queue in settings.TASK_QUEUE_TASKS: {missing}"
    for name in tasks:
        route = app.amqp.router.route({}, name)
        assert route["queue"].name == listed[name], name


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("registry.tasks.run_probe_batch", "probes"),
        ("registry.tasks.dispatch_due_checks", "probes"),
        ("controlplane.delivery.deliver", "deliveries"),
        ("pipelines.run_execute", "deliveries"),
        ("controlplane.delivery.deliveries_sweep", "housekeeping"),
        ("registry.tasks.prune_check_results", "housekeeping"),
    ],
)
def test_probes_deliveries_and_housekeeping_do_not_share_a_queue(task: str, queue: str) -> None:
    assert app.amqp.router.route({}, task)["queue"].name == queue


def test_every_task_has_soft_and_hard_time_limits() -> None:
    for name, task in _project_tasks().items():
        queue = app.amqp.router.route({}, name)["queue"].name
        soft, hard = settings.TASK_TIME_LIMITS[queue]
        assert (task.soft_time_limit, task.time_limit) == (soft, hard), name
        assert 0 < task.soft_time_limit < task.time_limit, name
    # A task nobody listed still gets limits (the defaults are housekeeping's).
    assert (app.conf.task_soft_time_limit, app.conf.task_time_limit) == settings.TASK_TIME_LIMITS["housekeeping"]
    assert app.conf.task_default_queue == "housekeeping"


def _settings_in_child(env: dict[str, str], expression: str) -> subprocess.CompletedProcess:
    code = f"import django; django.setup(); from django.conf import settings as s; print({expression})"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_time_limits_and_pool_sizes_come_from_the_environment() -> None:
    from tests.conftest import subprocess_env

    env = subprocess_env(
        TASK_SOFT_TIME_LIMIT_DELIVERIES="7", TASK_TIME_LIMIT_DELIVERIES="9", WORKER_CONCURRENCY_PROBES="5"
    )
    result = _settings_in_child(env, "s.TASK_TIME_LIMITS['deliveries'], s.WORKER_CONCURRENCY['probes']")
    assert result.stdout.strip() == "(7, 9) 5", result.stderr[-2000:]
    # A hard limit that does not exceed the soft one is refused at start, loudly.
    bad = _settings_in_child(subprocess_env(TASK_SOFT_TIME_LIMIT_PROBES="30", TASK_TIME_LIMIT_PROBES="30"), "1")
    assert bad.returncode != 0 and "TASK_TIME_LIMIT_PROBES must be greater" in bad.stderr


def test_the_worker_command_line_names_its_queues() -> None:
    argv = commandlines.celery_worker(["probes"], concurrency=3, name="probes")
    assert argv[argv.index("-Q") + 1] == "probes" and argv[argv.index("-c") + 1] == "3"
    everything = commandlines.celery_worker(concurrency=1, name="all")
    assert everything[everything.index("-Q") + 1] == "probes,deliveries,housekeeping"
    with pytest.raises(ValueError, match="unknown queue"):
        commandlines.celery_worker(["celery"], concurrency=1, name="x")
