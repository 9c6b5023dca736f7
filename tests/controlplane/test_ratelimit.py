"""Rate limits: headers on every limited response, exact counts across gunicorn workers, fail closed."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings

from tests.conftest import key_client, subprocess_env
from tests.factories import APIKeyFactory
from tests.processes import gunicorn

DEAD_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    }
}


@pytest.mark.django_db
def test_limited_responses_carry_ratelimit_headers_and_429_has_retry_after() -> None:
    client = key_client("events:read", rate="3/m")
    statuses = []
    for _ in range(4):
        response = client.get("/api/v1/events/")
        statuses.append(response.status_code)
        assert response["RateLimit-Limit"] == "3"
        assert 0 < int(response["RateLimit-Reset"]) <= 60
    assert statuses == [200, 200, 200, 429]
    assert response["RateLimit-Remaining"] == "0"
    assert int(response["Retry-After"]) >= 1
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 429


@pytest.mark.django_db
def test_cache_down_fails_closed_and_readyz_reports_it() -> None:
    client = key_client("events:read")
    # One request first, so the key and the counting connection are warm in this process.
    assert client.get("/api/v1/events/").status_code == 200
    with override_settings(CACHES=DEAD_REDIS):
        caches._settings = None  # noqa: SLF001 - rebuild handlers from the overridden setting
        try:
            response = client.get("/api/v1/events/")
            assert response.status_code == 503
            assert response["Content-Type"] == "application/problem+json"
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["components"]["cache"]["status"] == "down"
        finally:
            caches._settings = None  # noqa: SLF001


@pytest.mark.redis
@pytest.mark.django_db
def test_counting_survives_redis_forgetting_its_scripts() -> None:
    """A Redis restart (or SCRIPT FLUSH) drops the counting script; the next request loads it again."""
    if not settings.REDIS_URL:
        pytest.skip("the Redis counting path runs in production mode (production-mode pass)")
    client = key_client("events:read", rate="5/m")
    assert client.get("/api/v1/events/")["RateLimit-Remaining"] == "4"
    caches["default"].client.get_client(write=True).script_flush()
    response = client.get("/api/v1/events/")
    assert response.status_code == 200 and response["RateLimit-Remaining"] == "3"


async def _burst(url: str, raw_key: str, count: int) -> list[int]:
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            async with session.get(url, headers={"Authorization": f"Api-Key {raw_key}"}) as response:
                await response.read()
                if response.status != 401:
                    assert "RateLimit-Limit" in response.headers
                return response.status

        return await asyncio.gather(*(one() for _ in range(count)))


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_exactly_100_of_500_concurrent_requests_pass_under_4_gunicorn_workers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with gunicorn(subprocess_env(), tmp_path, workers=4) as base:
        url = f"{base}/api/v1/events/"
        for repetition in range(5):
            _, raw = APIKeyFactory.create_with_hour_left("100/h")
            statuses = asyncio.run(_burst(url, raw, 500))
            assert statuses.count(200) == 100, (repetition, sorted(set(statuses)))
            assert statuses.count(429) == 400
        _, other = APIKeyFactory.create_with_plaintext(scopes=["events:read"], rate="100/h")
        assert asyncio.run(_burst(url, other, 5)) == [200] * 5


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_revocation_reaches_every_gunicorn_worker_on_the_next_request(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Workers cache key records; a revocation made through one worker must bind all of them at once."""
    with gunicorn(subprocess_env(), tmp_path, workers=4) as base:
        key, raw = APIKeyFactory.create_with_plaintext(scopes=["events:read"])
        _, admin_raw = APIKeyFactory.create_with_plaintext(scopes=["admin"])
        url = f"{base}/api/v1/events/"
        assert set(asyncio.run(_burst(url, raw, 40))) == {200}  # every worker has now cached the key
        revoke = asyncio.run(_post(f"{base}/api/v1/keys/{key.prefix}/revoke/", admin_raw))
        assert revoke == 200
        assert set(asyncio.run(_burst(url, raw, 40))) == {401}


async def _post(url: str, raw_key: str) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, headers={"Authorization": f"Api-Key {raw_key}"}) as response:
            return response.status
