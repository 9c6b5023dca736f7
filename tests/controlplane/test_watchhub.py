"""The watch hub in one event loop: wake-ups, the burst GC freeze, and when the cached key re-check may be trusted."""

from __future__ import annotations

import asyncio
import gc
import threading
from types import SimpleNamespace

import pytest
from django.http import HttpRequest
from django.test import override_settings

from controlplane import watchauth, watchhub


class _Topic(watchhub.Topic):
    """A topic without Redis whose poller never finds anything (changes come from `wake`)."""

    name = "test-topic"

    def redis_url(self) -> None:
        return None

    def poll_seconds(self) -> float:
        return 3600

    def fetch(self, names: list[str]) -> dict[str, tuple[int, int]]:
        return {}


def _run(coroutine):  # type: ignore[no-untyped-def]
    try:
        return asyncio.run(coroutine)
    finally:
        watchhub.WatchHub._instances.pop(_Topic.name, None)  # noqa: SLF001 - a hub per test loop
        gc.unfreeze()


def test_a_wake_resolves_only_waiters_below_the_index_and_a_timeout_reports_no_change() -> None:
    async def scenario() -> tuple[list[bool], bool]:
        hub = watchhub.WatchHub.for_running_loop(_Topic())
        hub.wake("ns", 5, 1)
        low = [asyncio.create_task(hub.wait("ns", 5, 5)) for _ in range(3)]
        high = asyncio.create_task(hub.wait("ns", 7, 0.3))
        await asyncio.sleep(0.05)
        hub.wake("ns", 6, 1)
        woken = await asyncio.gather(*low)
        return woken, await high

    woken, high = _run(scenario())
    assert woken == [True, True, True] and high is False


@pytest.mark.parametrize(("waiters", "frozen"), [(watchhub.FREEZE_AT, True), (watchhub.FREEZE_AT - 1, False)])
def test_a_large_burst_freezes_the_collectors_view_and_gives_it_back(monkeypatch, waiters, frozen) -> None:
    monkeypatch.setattr(watchhub, "FREEZE_SECONDS", 0.2)

    async def scenario() -> tuple[int, int]:
        hub = watchhub.WatchHub.for_running_loop(_Topic())
        hub.wake("ns", 1, 1)
        tasks = [asyncio.create_task(hub.wait("ns", 1, 5)) for _ in range(waiters)]
        await asyncio.sleep(0.05)
        gc.unfreeze()
        hub.wake("ns", 2, 1)
        during = gc.get_freeze_count()
        await asyncio.gather(*tasks)
        await asyncio.sleep(0.4)
        return during, gc.get_freeze_count()

    during, after = _run(scenario())
    assert (during > 0) is frozen
    assert after == 0  # nothing stays frozen: cyclic garbage of the burst is collected again


class _Answer(SimpleNamespace):
    index: int


def test_a_wake_up_loads_the_answers_before_resolving_the_waiters_and_loads_them_once() -> None:
    """Waiters resumed before their answer is loaded would each suspend again on the load."""
    release = threading.Event()
    loads: list[int] = []

    def loader() -> _Answer:
        loads.append(1)
        release.wait(10)
        return _Answer(index=2)

    async def scenario() -> tuple[bool, list]:
        hub = watchhub.WatchHub.for_running_loop(_Topic())
        hub.wake("ns", 1, 1)
        hub._answers[("ns", None)] = _Answer(index=1)  # noqa: SLF001 - answered once at index 1 ...
        await hub.answer("ns", 1, loader)  # ... which registers how "ns" is loaded (from the cache here)
        waiters = [asyncio.create_task(hub.wait("ns", 1, 5)) for _ in range(20)]
        await asyncio.sleep(0.05)
        hub.wake("ns", 2, 1)
        await asyncio.sleep(0.2)
        resolved_during_the_load = any(waiter.done() for waiter in waiters)
        release.set()
        await asyncio.gather(*waiters)
        answers = [await hub.answer("ns", 2, loader) for _ in waiters]
        return resolved_during_the_load, answers

    resolved_during_the_load, answers = _run(scenario())
    assert resolved_during_the_load is False
    assert len(loads) == 1 and {answer.index for answer in answers} == {2}


def test_a_failed_load_still_resolves_the_waiters() -> None:
    def loader() -> _Answer:
        raise LookupError("gone")

    async def scenario() -> list[bool]:
        hub = watchhub.WatchHub.for_running_loop(_Topic())
        hub.wake("ns", 1, 1)
        hub._answers[("ns", None)] = _Answer(index=1)  # noqa: SLF001
        await hub.answer("ns", 1, loader)
        waiters = [asyncio.create_task(hub.wait("ns", 1, 5)) for _ in range(3)]
        await asyncio.sleep(0.05)
        hub.wake("ns", 2, 1)
        return await asyncio.gather(*waiters)

    assert _run(scenario()) == [True, True, True]  # each then asks `answer` and gets the error itself


def _request_with_key(generation: int, *, revoked: bool = False, scopes: tuple[str, ...] = ("config:read",)):  # type: ignore[no-untyped-def]
    request = HttpRequest()
    request.watch_key = SimpleNamespace(  # type: ignore[attr-defined]
        cached_generation=generation, revoked=revoked, is_expired=False, scopes=list(scopes)
    )
    return request


@pytest.mark.parametrize(
    ("case", "trusted"),
    [
        ("fresh", True),
        ("timed out", False),
        ("memo older than the wait", False),
        ("generation moved", False),
        ("no trusted generation", False),
        ("revoked copy", False),
    ],
)
def test_the_cached_recheck_is_used_only_when_it_provably_holds(monkeypatch, case, trusted) -> None:
    from controlplane.access import keycache

    monkeypatch.setattr(keycache, "enabled", lambda: True)
    generation = None if case == "no trusted generation" else (8 if case == "generation moved" else 7)
    monkeypatch.setattr(keycache, "trusted_generation", lambda: generation)
    request = _request_with_key(7, revoked=case == "revoked copy")
    hub = SimpleNamespace(wake_memo={"at": 100.0})
    waited_since = {"timed out": None, "memo older than the wait": 150.0}.get(case, 50.0)
    key = watchauth.recheck_cached(request, hub, waited_since, "config:read")  # type: ignore[arg-type]
    assert (key is not None) is trusted


def test_the_cached_recheck_still_enforces_the_scope(monkeypatch) -> None:
    from rest_framework import exceptions

    from controlplane.access import keycache

    monkeypatch.setattr(keycache, "enabled", lambda: True)
    monkeypatch.setattr(keycache, "trusted_generation", lambda: 7)
    request = _request_with_key(7, scopes=("registry:read",))
    with pytest.raises(exceptions.PermissionDenied):
        watchauth.recheck_cached(request, SimpleNamespace(wake_memo={"at": 100.0}), 50.0, "config:read")  # type: ignore[arg-type]


def test_the_generation_is_read_once_per_wake_up(monkeypatch) -> None:
    from controlplane.access import keycache

    reads: list[int] = []
    monkeypatch.setattr(keycache, "enabled", lambda: True)
    monkeypatch.setattr(keycache, "trusted_generation", lambda: reads.append(1) or 7)
    hub = SimpleNamespace(wake_memo={"at": 100.0})
    for _ in range(50):
        assert watchauth.recheck_cached(_request_with_key(7), hub, 50.0, "config:read") is not None  # type: ignore[arg-type]
    assert len(reads) == 1


def test_answers_and_recordings_per_name_are_bounded_whatever_filters_clients_send() -> None:
    """Each distinct discovery filter is a variant: a client sending endless distinct ones (any
    `registry:read` key can) keeps at most `MAX_PRELOADED_VARIANTS` answers and `MAX_RECORDINGS`
    recordings of a name in this process, the most recent ones (found by the attack: 2,001 kept)."""

    async def scenario() -> tuple[int, int, bool, bool]:
        hub = watchhub.WatchHub.for_running_loop(_Topic())
        hub.wake("svc", 1, 1)
        for variant in range(watchhub.MAX_PRELOADED_VARIANTS * 3):
            await hub.answer("svc", 1, lambda: _Answer(index=1), variant)
        heads = hub.heads_for("svc")
        for key in range(watchhub.MAX_RECORDINGS * 3):
            heads.record(key, object())
        answers = [slot for slot in hub._answers if slot[0] == "svc"]  # noqa: SLF001
        newest = ("svc", watchhub.MAX_PRELOADED_VARIANTS * 3 - 1) in hub._answers  # noqa: SLF001
        return len(answers), len(heads), newest, watchhub.MAX_RECORDINGS * 3 - 1 in heads

    answers, recordings, newest_answer_kept, newest_recording_kept = _run(scenario())
    assert answers == watchhub.MAX_PRELOADED_VARIANTS and recordings == watchhub.MAX_RECORDINGS
    assert newest_answer_kept and newest_recording_kept


class _RedisTopic(_Topic):
    """A topic on one database of the test Redis server."""

    name = "test-redis-topic"
    channel_prefix = "test:changed:"

    def __init__(self, db: int, name: str = "test-redis-topic") -> None:
        self.db = db
        self.name = name  # another process's hub: `publish` must reach this one over Redis only

    def redis_url(self) -> str:
        from tests.conftest import REDIS_URL

        return f"{REDIS_URL.rsplit('/', 1)[0]}/{self.db}"


@pytest.mark.redis
def test_a_deployment_on_another_database_of_the_same_redis_is_not_heard(settings) -> None:
    """Pub/sub channels are per Redis server, not per database: a change published by a control plane
    on database 14 must not wake the watchers of one on database 13 (CI: a watch answered early while
    another stack ran beside it); nor one with another cache key prefix on the same database."""

    async def scenario() -> tuple[bool, bool, bool]:
        mine = _RedisTopic(13)
        hub = watchhub.WatchHub.for_running_loop(mine)
        try:
            await asyncio.sleep(0.5)  # subscribed
            hub.wake("payments", 1, 1)
            waiter = asyncio.ensure_future(hub.wait("payments", 1, 5))
            await asyncio.sleep(0.05)
            await asyncio.to_thread(watchhub.publish, _RedisTopic(14, "elsewhere"), "payments", 7, 2)
            with override_settings(CACHES={"default": {**settings.CACHES["default"], "KEY_PREFIX": "other"}}):
                await asyncio.to_thread(watchhub.publish, _RedisTopic(13, "elsewhere"), "payments", 8, 2)
            await asyncio.sleep(0.5)
            heard_other = waiter.done()
            await asyncio.to_thread(watchhub.publish, _RedisTopic(13, "elsewhere"), "payments", 2, 1)
            changed = await asyncio.wait_for(waiter, 5)
            return heard_other, changed, hub.known_index("payments") == 2
        finally:
            for task in hub.tasks:
                task.cancel()

    heard_other, changed, index_is_ours = _run(scenario())
    assert heard_other is False and changed is True and index_is_ours
