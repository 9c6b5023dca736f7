"""One mechanism for both clients: an operation is a plan (effects out, answers in) that performs no I/O
itself; `Client` and `AsyncClient` only drive it. Here a plan is driven by hand, and the async client is
held to the sync client's retry rules against the same real local HTTP server."""

from __future__ import annotations

import asyncio
import inspect

import httpx
import pytest
from controlplane_client import AsyncClient, Client
from controlplane_client import errors as e
from controlplane_client.api import Api
from controlplane_client.transport import RetryBudget, Send, Sleep

from tests.clients.test_units import Counting


def _answer(effect: Send, status: int, body: object, **headers: str) -> httpx.Response:
    request = httpx.Request(effect.request["method"], effect.request["url"])
    return httpx.Response(status, json=body, headers=headers, request=request)


def test_a_plan_yields_its_requests_and_backoffs_and_returns_the_parsed_answer() -> None:
    client = Client("http://cp.invalid/api/v1", "k.x", retries=2, cache_dir=False)
    plan = Api.service.plan(client, "pay ments")
    first = next(plan)
    assert isinstance(first, Send)
    assert first.request["method"] == "GET" and first.request["url"] == "http://cp.invalid/api/v1/services/pay%20ments/"
    # A 503 with Retry-After: the plan asks to sleep at least that long, then sends the same request again.
    pause = plan.send(_answer(first, 503, {"title": "Unavailable"}, **{"Retry-After": "2"}))
    assert isinstance(pause, Sleep) and pause.seconds >= 2
    again = plan.send(None)
    assert isinstance(again, Send) and again.request == first.request
    with pytest.raises(StopIteration) as done:
        plan.send(_answer(again, 200, {"name": "pay ments"}))
    assert done.value.value == {"name": "pay ments"}
    client.close()


def test_a_plan_turns_a_refused_connection_into_connection_failed_and_a_problem_into_its_error() -> None:
    client = Client("http://cp.invalid", "k.x", retries=0, cache_dir=False)
    plan = Api.config_put.plan(client, "ns", "k", 1, expected_revision=4)
    effect = next(plan)
    assert effect.request["headers"] == {"If-Match": "4"} and effect.request["json"] == {"value": 1}  # type: ignore[union-attr]
    with pytest.raises(e.PreconditionFailed) as lost:
        plan.send(_answer(effect, 412, {"title": "Precondition Failed", "detail": "revision 5", "request_id": "r1"}))  # type: ignore[arg-type]
    assert lost.value.request_id == "r1" and lost.value.detail == "revision 5"
    plan = Api.service.plan(client, "a")
    next(plan)
    with pytest.raises(e.ConnectionFailed):
        plan.throw(httpx.ConnectError("refused"))
    client.close()


def test_both_clients_expose_one_operation_set_with_its_signatures_and_docs() -> None:
    operations = {name for name in dir(Api) if not name.startswith("_")}
    assert {"services", "discover", "config_put", "run", "batch", "events", "key_revoke"} <= operations
    sync, asynchronous = Client("http://a", cache_dir=False), AsyncClient("http://a", cache_dir=False)
    for name in operations:
        assert getattr(sync, name).__doc__ == getattr(asynchronous, name).__doc__
    assert asyncio.iscoroutinefunction(asynchronous.config) and not asyncio.iscoroutinefunction(sync.config)
    assert list(inspect.signature(sync.discover).parameters) == ["name", "tag", "capability", "status"]
    sync.close()
    asyncio.run(asynchronous.aclose())


def test_the_async_client_retries_exactly_like_the_sync_one() -> None:
    async def scenario(url: str) -> None:
        async with AsyncClient(url, "k.x", retries=3, cache_dir=False) as client:
            with pytest.raises(e.Unavailable):
                await client.service("a")  # GET: retried
            with pytest.raises(e.Unavailable):
                await client.config_put("ns", "a", 1, expected_revision=3)  # CAS PUT: retried
            with pytest.raises(e.Unavailable):
                await client.run("p", {})  # POST run: never repeated
            with pytest.raises(e.Unavailable):
                await client.config_rollback("ns", 1)

    with Counting() as server:
        asyncio.run(scenario(server.url))
    assert server.counts == {"GET": 4, "PUT": 4, "POST": 2}  # what the sync client sends (test_units)


def test_the_async_client_spends_the_shared_retry_budget() -> None:
    budget = RetryBudget(capacity=2, ratio=0.1)

    async def scenario(url: str) -> None:
        async with AsyncClient(url, "k.x", retries=5, cache_dir=False, retry_budget=budget) as client:
            for _ in range(3):
                with pytest.raises(e.Unavailable):
                    await client.service("a")

    with Counting() as server:
        asyncio.run(scenario(server.url))
    assert server.counts == {"GET": 5} and budget.tokens < 1  # 3 calls + the 2 retries the budget allowed


def test_environment_defaults_for_both_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_URL", "http://cp.example:8000/api/v1/")
    monkeypatch.setenv("CONTROLPLANE_API_KEY", "ab12.secret")
    monkeypatch.delenv("CONTROLPLANE_WATCH_URL", raising=False)
    for client in (Client(cache_dir=False), AsyncClient(cache_dir=False)):
        assert client.base_url == client.watch_url == "http://cp.example:8000" and client.api_key == "ab12.secret"
        assert client.http.headers["Authorization"] == "Api-Key ab12.secret"
    explicit = Client("http://other:1", "cd34.x", cache_dir=False)
    assert explicit.base_url == "http://other:1" and explicit.api_key == "cd34.x"
