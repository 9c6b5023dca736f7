"""Every API operation as a `Call` builder plus the parser of its answer, shared by `Client` and `AsyncClient`.

Builders say whether a retry is safe: reads, PUT/DELETE (idempotent), registration (an upsert by instance
id), revocation, dry runs and compare-and-swap writes are; runs, imports, rollbacks and creations are not.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote

import httpx

from controlplane_client.models import Discovery, Instance, Run
from controlplane_client.transport import Call

EXPORT_FORMATS = ("json", "yaml", "toml", "ini", "env")


@functools.lru_cache(maxsize=4096)
def seg(value: str | int) -> str:
    """One path segment, percent-encoded (names are URL-safe by the server's rule; this keeps it so)."""
    return quote(str(value), safe="")


def _clean(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def flag(value: bool) -> str:
    return "true" if value else "false"


def wait_param(seconds: float) -> str:
    return f"{max(0, int(seconds * 1000))}ms"


def if_match(expected_revision: int | None) -> dict[str, str]:
    return {} if expected_revision is None else {"If-Match": str(int(expected_revision))}


# Registry ------------------------------------------------------------------------------------------------
def services_list(**filters: Any) -> Call:
    return Call("GET", "/services/", params=_clean(**filters), retry=True)


def service_get(name: str) -> Call:
    return Call("GET", f"/services/{seg(name)}/", retry=True)


def service_create(name: str, fields: dict[str, Any]) -> Call:
    return Call("POST", "/services/", json={"name": name, **fields})


def service_update(name: str, fields: dict[str, Any]) -> Call:
    return Call("PATCH", f"/services/{seg(name)}/", json=fields, retry=True)


def service_delete(name: str) -> Call:
    return Call("DELETE", f"/services/{seg(name)}/", retry=True)


def instances_list(service: str) -> Call:
    return Call("GET", f"/services/{seg(service)}/instances/", retry=True)


def instance_get(service: str, instance_id: str) -> Call:
    return Call("GET", f"/services/{seg(service)}/instances/{seg(instance_id)}/", retry=True)


def instance_register(service: str, body: dict[str, Any]) -> Call:
    # An upsert by instance_id: sending it twice leaves one instance, so it may be retried.
    return Call("POST", f"/services/{seg(service)}/instances/", json=body, retry=True)


def instance_deregister(service: str, instance_id: str) -> Call:
    return Call("DELETE", f"/services/{seg(service)}/instances/{seg(instance_id)}/", retry=True)


def heartbeat(service: str, instance_id: str, status: str, output: str, check: str | None) -> Call:
    body: dict[str, Any] = {"status": status, "output": output}
    if check:
        body["check"] = check
    return Call("PUT", f"/services/{seg(service)}/instances/{seg(instance_id)}/heartbeat/", json=body, retry=True)


def maintenance(service: str, instance_id: str, enabled: bool, reason: str) -> Call:
    return Call(
        "PUT",
        f"/services/{seg(service)}/instances/{seg(instance_id)}/maintenance/",
        json={"enabled": enabled, "reason": reason},
        retry=True,
    )


def discover(
    name: str,
    *,
    tag: str | list[str] | None,
    capability: str | None,
    status: str | None,
    index: int | None = None,
    wait: float | None = None,
) -> Call:
    params: list[tuple[str, str]] = []
    for t in [tag] if isinstance(tag, str) else (tag or []):
        params.append(("tag", t))
    if capability:
        params.append(("capability", capability))
    if status:
        params.append(("status", status))
    blocking = index is not None and wait is not None
    if blocking:
        params += [("index", str(index)), ("wait", wait_param(wait or 0))]
    return Call(
        "GET",
        f"/discover/{seg(name)}/",
        params=params,
        retry=True,
        watch=blocking,
        timeout=(wait or 0) + 15 if blocking else None,
    )


def discovery_key(name: str, tag: str | list[str] | None, capability: str | None, status: str | None) -> str:
    tags = sorted([tag] if isinstance(tag, str) else (tag or []))
    return "|".join([name, ",".join(tags), capability or "", status or ""])


def parse_discovery(name: str, response: httpx.Response) -> tuple[Discovery, list[dict[str, Any]]]:
    body = response.json()
    index = response.headers.get("X-Registry-Index")
    found = Discovery(name, [Instance.from_json(i) for i in body], index=int(index) if index is not None else None)
    return found, body


# Config ------------------------------------------------------------------------------------------------
def namespaces_list() -> Call:
    return Call("GET", "/config/", retry=True)


def namespace_create(name: str, description: str) -> Call:
    return Call("POST", "/config/", json={"name": name, "description": description})


def config_read(namespace: str) -> Call:
    return Call("GET", f"/config/{seg(namespace)}/", retry=True)


def config_watch(namespace: str, index: int, wait: float) -> Call:
    return Call(
        "GET",
        f"/config/{seg(namespace)}/watch/",
        params={"index": index, "wait": wait_param(wait)},
        watch=True,
        timeout=wait + 15,
    )


def config_index(response: httpx.Response) -> int:
    value = response.headers.get("X-Config-Index") or response.headers.get("ETag", "").strip('W/"')
    return int(value) if value and value.isdigit() else 0


def entry_get(namespace: str, key: str) -> Call:
    return Call("GET", f"/config/{seg(namespace)}/{seg(key)}/", retry=True)


def entry_put(
    namespace: str, key: str, value: Any, *, secret: bool | None, description: str | None, expected_revision: int | None
) -> Call:
    body: dict[str, Any] = {"value": value}
    if secret is not None:
        body["secret"] = secret
    if description is not None:
        body["description"] = description
    # PUT sets a value (idempotent); with If-Match it is a compare-and-swap that cannot apply twice.
    return Call(
        "PUT", f"/config/{seg(namespace)}/{seg(key)}/", json=body, headers=if_match(expected_revision), retry=True
    )


def entry_delete(namespace: str, key: str, *, expected_revision: int | None) -> Call:
    return Call("DELETE", f"/config/{seg(namespace)}/{seg(key)}/", headers=if_match(expected_revision), retry=True)


def config_export(namespace: str, fmt: str, prefix: str | None) -> Call:
    return Call(
        "GET",
        f"/config/{seg(namespace)}/",
        params=_clean(format=fmt, prefix=prefix),
        retry=True,
        headers={"Accept": "*/*"},
    )


_IMPORT_TYPES = {
    "json": "application/json",
    "yaml": "application/yaml",
    "toml": "application/toml",
    "ini": "text/plain",
    "env": "text/plain",
}


def config_import(
    namespace: str, document: str | bytes, fmt: str, *, replace: bool, allow_empty: bool, message: str | None
) -> Call:
    params = _clean(
        format=fmt, replace=flag(replace), allow_empty=flag(allow_empty) if allow_empty else None, message=message
    )
    return Call(
        "POST",
        f"/config/{seg(namespace)}/import/",
        params=params,
        content=document,
        headers={"Content-Type": _IMPORT_TYPES.get(fmt, "text/plain")},
    )


def config_history(namespace: str, limit: int | None, offset: int | None) -> Call:
    return Call("GET", f"/config/{seg(namespace)}/history/", params=_clean(limit=limit, offset=offset), retry=True)


def config_revision(namespace: str, number: int) -> Call:
    return Call("GET", f"/config/{seg(namespace)}/history/{int(number)}/", retry=True)


def config_rollback(namespace: str, revision: int) -> Call:
    return Call("POST", f"/config/{seg(namespace)}/rollback/", json={"revision": int(revision)})


# Pipelines ---------------------------------------------------------------------------------------------
def packet(
    payload: Any, metadata: dict[str, Any] | None, tags: list[str] | None, id: str | None = None
) -> dict[str, Any]:  # noqa: A002
    return _clean(payload=payload, metadata=metadata, tags=tags, id=id)


def pipelines_list() -> Call:
    return Call("GET", "/pipelines/", retry=True)


def pipeline_get(slug: str) -> Call:
    return Call("GET", f"/pipelines/{seg(slug)}/", retry=True)


def pipeline_create(definition: dict[str, Any]) -> Call:
    return Call("POST", "/pipelines/", json=definition)


def pipeline_run(slug: str, body: dict[str, Any], *, run_async: bool = False, trace: bool = False) -> Call:
    params = _clean(**{"async": "true" if run_async else None, "trace": "true" if trace else None})
    return Call("POST", f"/pipelines/{seg(slug)}/run/", params=params, json=body)


def pipeline_batch(slug: str, packets: list[dict[str, Any]], *, run_async: bool = False) -> Call:
    params = {"async": "true"} if run_async else None
    return Call("POST", f"/pipelines/{seg(slug)}/batch/", params=params, json={"packets": packets})


def pipeline_dry_run(slug: str, body: dict[str, Any]) -> Call:
    return Call("POST", f"/pipelines/{seg(slug)}/dry-run/", json=body, retry=True)  # nothing is kept


def run_get(run_id: int) -> Call:
    return Call("GET", f"/runs/{int(run_id)}/", retry=True)


def parse_run(body: dict[str, Any]) -> Run:
    return Run(id=int(body.get("id") or body.get("run_id") or 0), status=str(body.get("status", "")), data=body)


# Events and keys ---------------------------------------------------------------------------------------
def events_list(*, kind: str | None, since: int | None, subject: str | None, limit: int | None) -> Call:
    return Call("GET", "/events/", params=_clean(kind=kind, since=since, subject=subject, limit=limit), retry=True)


def keys_list() -> Call:
    return Call("GET", "/keys/", retry=True)


def key_create(body: dict[str, Any]) -> Call:
    return Call("POST", "/keys/", json=body)


def key_revoke(prefix: str) -> Call:
    return Call("POST", f"/keys/{seg(prefix)}/revoke/", retry=True)  # revoking twice is still revoked


def results(body: Any) -> list[Any]:
    """A paginated list's `results`, or the list itself for unpaginated answers."""
    if isinstance(body, dict) and "results" in body:
        return list(body["results"])
    return list(body)
