"""Every way a key changes x four gunicorn workers and the watch server: refused on the very next request.

The servers start once for the module. For each way of changing a key the test first uses the key on
every worker (so each holds a trusted, cached copy) and opens a long-poll watch with it; then it makes
the change and, as soon as the changing call returns, checks that (1) a burst of requests over the
four workers is refused, (2) a new watch is refused and (3) the watch opened before the change gets a
refusal, not the config change it was waiting for.

Production mode only (PostgreSQL + Redis): that is where key records are cached per process.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from configstore import services as config_services
from controlplane.access.models import APIKey
from controlplane.events.models import Event
from tests.configstore.test_watch import _uvicorn, get
from tests.conftest import subprocess_env
from tests.factories import APIKeyFactory
from tests.processes import gunicorn

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


async def _statuses(url: str, raw_key: str, count: int) -> list[int]:
    """`count` concurrent GETs with the key (spread over the workers): their statuses."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def one() -> int:
            async with session.get(url, headers={"Authorization": f"Api-Key {raw_key}"}) as response:
                await response.read()
                return response.status

        return await asyncio.gather(*(one() for _ in range(count)))


def _burst(url: str, raw_key: str, count: int = 80) -> list[int]:
    return asyncio.run(_statuses(url, raw_key, count))


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker, tmp_path_factory):  # type: ignore[no-untyped-def]
    """gunicorn with 4 workers and the uvicorn watch server, against the test database."""
    if not settings.REDIS_URL:
        pytest.skip("per-process key caches exist only with the shared cache (production-mode pass)")
    tmp = tmp_path_factory.mktemp("matrix")
    # The per-client sign-in limit is raised so that every sign-in from this loopback address (in this
    # run and in runs before it, within the window) cannot trip it: the per-user-name one is under test.
    with gunicorn(subprocess_env(ADMIN_LOGIN_RATE_CLIENT="100000/10m"), tmp, workers=4) as base:
        watch = _uvicorn("controlplane.asgi:application", tmp)
        port = next(watch)
        try:
            yield base, port
        finally:
            watch.close()


@dataclass
class Case:
    """One way a key changes, and what a request with it gets afterwards."""

    change: Callable[[APIKey, dict], None]
    refused: set[int]  # statuses a request with the changed key may get (gunicorn and new watches)
    watch_refused: set[int] | None = None  # what the watch opened before gets; None: not re-checked (rate)
    events: tuple[str, ...] = ()


def _admin_client() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-not-used-here")
    client = Client()
    client.force_login(user)
    return client


def _admin_change(key: APIKey, **fields) -> None:  # type: ignore[no-untyped-def]
    data = {
        "name": key.name,
        "scopes": key.scopes,
        "rate": key.rate,
        "namespaces": ", ".join(key.namespaces),
        "expiry_date_0": "",
        "expiry_date_1": "",
        "_save": "Save",
    }
    data.update(fields)
    response = _admin_client().post(f"/admin/access/apikey/{key.prefix}/change/", data)
    assert response.status_code == 302, response.content.decode()[-3000:]


def _admin_action(action: str, key: APIKey, **extra) -> None:  # type: ignore[no-untyped-def]
    data = {"action": action, "_selected_action": [key.pk], **extra}
    response = _admin_client().post("/admin/access/apikey/", data)
    assert response.status_code == 302, response.content.decode()[-3000:]


def _api_revoke(key: APIKey, ctx: dict) -> None:
    _, admin_raw = APIKeyFactory.create_with_plaintext(scopes=["admin"], rate="1000000/h")
    request = urllib.request.Request(
        f"{ctx['base']}/api/v1/keys/{key.prefix}/revoke/",
        method="POST",
        headers={"Authorization": f"Api-Key {admin_raw}"},
    )
    with urllib.request.urlopen(request) as response:  # noqa: S310 - loopback test server
        assert response.status == 200


def _admin_delete(key: APIKey, ctx: dict) -> None:
    response = _admin_client().post(f"/admin/access/apikey/{key.prefix}/delete/", {"post": "yes"})
    assert response.status_code == 302, response.content.decode()[-3000:]


def _command(*args: str) -> Callable[[APIKey, dict], None]:
    def run(key: APIKey, ctx: dict) -> None:
        done = subprocess.run(
            [sys.executable, "manage.py", *[a.format(prefix=key.prefix) for a in args]],
            env=subprocess_env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-2000:]

    return run


def _queryset_update_elsewhere(key: APIKey, ctx: dict) -> None:
    """A bare ORM update in another process (a shell session, a script): no service, no signal."""
    code = (
        "import django; django.setup(); from controlplane.access.models import APIKey; "
        f"assert APIKey.objects.filter(prefix={key.prefix!r}).update(revoked=True) == 1"
    )
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def _expiry_passes(key: APIKey, ctx: dict) -> None:
    """Nothing writes: the expiry set at creation simply passes."""
    time.sleep(max((key.expiry_date - timezone.now()).total_seconds(), 0) + 0.05)


CASES = {
    "api-revoke": Case(_api_revoke, {401}, {401}, ("apikey.revoked",)),
    "admin-revoke-action": Case(lambda k, c: _admin_action("revoke_keys", k), {401}, {401}, ("apikey.revoked",)),
    "admin-edit-scopes": Case(
        lambda k, c: _admin_change(k, scopes=["registry:read"]), {403}, {403}, ("apikey.updated",)
    ),
    "admin-edit-namespaces": Case(
        lambda k, c: _admin_change(k, namespaces="elsewhere"), {404}, {404}, ("apikey.updated",)
    ),
    "admin-edit-expiry": Case(
        lambda k, c: _admin_change(k, expiry_date_0="2020-01-01", expiry_date_1="00:00:00"),
        {401},
        {401},
        ("apikey.updated",),
    ),
    "admin-edit-rate": Case(lambda k, c: _admin_change(k, rate="1/h"), {429}, None, ("apikey.updated",)),
    "admin-delete": Case(_admin_delete, {401}, {401}, ("apikey.deleted",)),
    "admin-bulk-delete": Case(
        lambda k, c: _admin_action("delete_selected", k, post="yes"), {401}, {401}, ("apikey.deleted",)
    ),
    "command-revoke": Case(_command("revoke_api_key", "{prefix}"), {401}, {401}, ("apikey.revoked",)),
    "command-delete": Case(_command("revoke_api_key", "{prefix}", "--delete"), {401}, {401}, ("apikey.deleted",)),
    "orm-update-in-another-process": Case(_queryset_update_elsewhere, {401}, {401}),
    "expiry-passes": Case(_expiry_passes, {401}, {401}),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("way", list(CASES))
def test_a_changed_key_is_refused_everywhere_on_the_next_request(servers, way: str) -> None:  # type: ignore[no-untyped-def]
    base, watch_port = servers
    case = CASES[way]
    namespace_name = f"m-{way}"
    namespace = config_services.namespace_create(name=namespace_name, actor="t")
    config_services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    expiry = timezone.now() + timedelta(seconds=4) if way == "expiry-passes" else None
    key, raw = APIKeyFactory.create_with_hour_left(
        "1000000/h", scopes=["config:read"], namespaces=[namespace_name], expiry_date=expiry
    )
    url = f"{base}/api/v1/config/{namespace_name}/"
    watch_path = f"/api/v1/config/{namespace_name}/watch/"
    # Every worker serves the key (and caches it, trusting its generation); the watch server too.
    assert set(_burst(url, raw)) == {200}
    assert get(watch_port, f"{watch_path}?index=0&wait=0s", raw)[0] == 200
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(get, watch_port, f"{watch_path}?index=1&wait=25s", raw)
        time.sleep(0.5)
        assert not pending.done()

        case.change(key, {"base": base})

        statuses = _burst(url, raw)
        if case.refused == {429}:  # the new rate (1/h) admits at most one request, whichever worker takes it
            assert statuses.count(200) <= 1 and set(statuses) <= {200, 429}, statuses
        else:
            assert set(statuses) == case.refused, (way, sorted(set(statuses)))
        status, headers, body, _ = get(watch_port, f"{watch_path}?index=0&wait=0s", raw)
        assert status in case.refused | ({200} if case.refused == {429} else set()), (way, status)
        # The watch opened before the change wakes on the next config change: it must not deliver it.
        config_services.config_entry_set(namespace=namespace, key="a", value=2, actor="t")
        status, headers, body, _ = pending.result(timeout=30)
    if case.watch_refused is not None:
        assert status in case.watch_refused, (way, status, body[:300])
        assert headers["content-type"] == "application/problem+json"
        assert b'"a"' not in body
    for kind in case.events:
        assert Event.objects.filter(kind=kind, subject=key.prefix).exists(), (way, kind)


@pytest.mark.django_db(transaction=True)
def test_admin_sign_in_throttle_counts_across_the_four_workers(servers, settings) -> None:  # type: ignore[no-untyped-def]
    """Failed sign-ins spread over the workers add up in the shared cache; the next one is refused."""
    import re
    import urllib.error
    import urllib.parse
    import uuid

    base, _ = servers
    name = f"ops-{uuid.uuid4().hex[:8]}"
    get_user_model().objects.create_superuser(name, "ops@example.com", "right-password")

    def attempt(password: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"{base}/admin/login/") as page:  # noqa: S310 - loopback test server
            html = page.read().decode()
            cookie = page.headers["Set-Cookie"].split(";")[0]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": name, "password": password})
        request = urllib.request.Request(f"{base}/admin/login/?next=/admin/", data=body.encode(), method="POST")
        request.add_header("Cookie", cookie)
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    limit = int(settings.ADMIN_LOGIN_RATE_USER.split("/")[0])
    assert [attempt("wrong")[0] for _ in range(limit)] == [200] * limit
    status, html = attempt("right-password")
    assert status == 429 and "Too many failed sign-in attempts for this user name" in html


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect (a successful sign-in) as its own status instead of following it."""

    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None
