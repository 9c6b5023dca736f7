"""The input boundary (controlplane.inputs): hostile input is a 400/411/413 problem+json on every route,
before any service runs, and nothing in the database changes.

Runs in both passes; in the production pass the database is PostgreSQL, which refuses NUL in text and
jsonb (the 500s of issue #9 point 7), so these are the PostgreSQL variants too.
"""

from __future__ import annotations

import io
import json

import pytest
from django.apps import apps
from django.test import override_settings

from configstore import selectors
from configstore import services as config_services
from tests.configstore.factories import NamespaceFactory
from tests.pipelines.factories import PipelineFactory
from tests.registry.factories import InstanceFactory, ServiceFactory

PROBLEM = "application/problem+json"
APPS = ("registry", "configstore", "pipelines", "events", "access")


def fingerprint() -> dict[str, int]:
    """Row counts of every model of the domain apps (events included): any write shows up here."""
    counts = {}
    for label in APPS:
        for model in apps.get_app_config(label).get_models():
            counts[model._meta.label] = model._default_manager.count()
    return counts


@pytest.fixture
def world(db):  # type: ignore[no-untyped-def]
    """A service with an instance, a namespace with one entry and a pipeline, created through services."""
    service = ServiceFactory(name="billing")
    InstanceFactory(service=service, instance_id="b-1")
    namespace = NamespaceFactory(name="payments")
    config_services.config_import(namespace=namespace, text="db:\n  host: x\n", fmt="yaml", actor="test")
    PipelineFactory(slug="enrich")
    return {"service": service, "namespace": namespace}


# Body routes: a JSON template with a key position (@K@) and a value position (@V@) that reach a
# text or jsonb column (or the pipeline executor) when not refused at the boundary.
BODY_ROUTES: dict[str, tuple[str, str, str]] = {
    "service-create": (
        "post",
        "/api/v1/services/",
        '{"name": "s-new", "type": "http_api", "metadata": {"@K@": "@V@"}}',
    ),
    "service-patch": ("patch", "/api/v1/services/billing/", '{"metadata": {"@K@": "@V@"}}'),
    "service-description": ("patch", "/api/v1/services/billing/", '{"description": "@V@", "@K@": 1}'),
    "instance-register": (
        "post",
        "/api/v1/services/billing/instances/",
        '{"instance_id": "b-2", "address": "127.0.0.1", "port": 80, "metadata": {"@K@": "@V@"}}',
    ),
    "config-value": ("put", "/api/v1/config/payments/db.host/", '{"value": {"@K@": "@V@"}}'),
    "config-json-import": ("post", "/api/v1/config/payments/import/?format=json", '{"db": {"@K@": "@V@"}}'),
    "rule-params": (
        "post",
        "/api/v1/config/payments/rules/",
        '{"key": "db.host", "kind": "enum", "params": {"values": ["@V@"], "@K@": 1}}',
    ),
    "pipeline-step-config": (
        "post",
        "/api/v1/pipelines/",
        '{"slug": "p-new", "name": "P", "steps": [{"name": "t", "kind": "transform",'
        ' "config": {"operations": [{"op": "add_tag", "value": "@V@"}], "@K@": 1}}]}',
    ),
    "run-payload": ("post", "/api/v1/pipelines/enrich/run/?record=true", '{"payload": {"@K@": "@V@"}}'),
    "run-async": ("post", "/api/v1/pipelines/enrich/run/?async=true", '{"payload": {"@K@": "@V@"}}'),
    "batch-payload": ("post", "/api/v1/pipelines/enrich/batch/", '[{"payload": {"@K@": "@V@"}}]'),
    "webhook-create": (
        "post",
        "/api/v1/webhooks/",
        '{"url": "https://hooks.example.test/x", "events": ["@V@"], "@K@": 1}',
    ),
}

# (value text, key text) as they appear in the JSON document: NUL escaped in a value, in a key, alone,
# in the middle, and as a raw byte (invalid JSON, but a body no parser should get to see).
NUL_VARIANTS: dict[str, tuple[bytes, bytes]] = {
    "value-escaped": (b'"a\\u0000b"', b'"k"'),
    "value-only-nul": (b'"\\u0000"', b'"k"'),
    "key-escaped": (b'"v"', b'"k\\u0000"'),
    "raw-byte": (b'"a\x00b"', b'"k"'),
}


def _body(template: str, value: bytes, key: bytes) -> bytes:
    return template.encode().replace(b'"@V@"', value).replace(b'"@K@"', key)


def _assert_problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "request_id"} <= set(body)
    assert body["request_id"] == response["X-Request-ID"]
    return body


@pytest.mark.parametrize("variant", sorted(NUL_VARIANTS))
@pytest.mark.parametrize("route", sorted(BODY_ROUTES))
def test_nul_in_a_body_is_refused_before_any_write(admin_api, world, route: str, variant: str) -> None:
    method, url, template = BODY_ROUTES[route]
    value, key = NUL_VARIANTS[variant]
    before = fingerprint()
    response = getattr(admin_api, method)(url, _body(template, value, key), content_type="application/json")
    body = _assert_problem(response, 400)
    assert "NUL" in json.dumps(body["errors"])
    assert fingerprint() == before


def test_a_nul_is_named_by_its_json_path(admin_api, world) -> None:
    response = admin_api.post(
        "/api/v1/services/billing/instances/",
        b'{"instance_id": "b-2", "address": "h", "port": 80, "metadata": {"a": [1, {"b\\u0000": 2}]}}',
        content_type="application/json",
    )
    assert _assert_problem(response, 400)["errors"] == {"metadata.a.1.b\\u0000": ["NUL characters are not allowed."]}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_nul_is_refused_whatever_content_type_an_api_client_claims(admin_api, world, content_type: str) -> None:
    """The pipeline routes read the body as JSON whatever the Content-Type says; the boundary does too."""
    before = fingerprint()
    response = admin_api.generic(
        "POST", "/api/v1/pipelines/enrich/run/?record=true", b'{"payload": {"a": "\\u0000"}}', content_type
    )
    _assert_problem(response, 400)
    assert fingerprint() == before


QUERY_ROUTES = [
    "/api/v1/services/?search=@",
    "/api/v1/services/?tag=@",
    "/api/v1/services/?capability=@",
    "/api/v1/services/?type=@",
    "/api/v1/discover/billing/?tag=@",
    "/api/v1/events/?kind=@",
    "/api/v1/events/?subject=@",
    "/api/v1/config/?search=@",
    "/api/v1/config/payments/?format=@",
    "/api/v1/config/payments/history/?limit=@",
    "/api/v1/pipelines/?search=@",
]


@pytest.mark.parametrize("hostile", ["a%00b", "%00", "x&tag=%00"])
@pytest.mark.parametrize("url", QUERY_ROUTES)
def test_nul_in_a_query_parameter_is_a_400(admin_api, world, url: str, hostile: str) -> None:
    body = _assert_problem(admin_api.get(url.replace("@", hostile)), 400)
    assert all(messages == ["NUL characters are not allowed."] for messages in body["errors"].values())


def test_nul_in_a_query_parameter_name_and_in_the_path(admin_api, world) -> None:
    assert _assert_problem(admin_api.get("/api/v1/services/?se%00arch=x"), 400)["errors"] == {
        "se\\u0000arch": ["NUL characters are not allowed."]
    }
    before = fingerprint()
    assert _assert_problem(admin_api.delete("/api/v1/services/bil%00ling/"), 400)["errors"] == {
        "path": ["NUL characters are not allowed."]
    }
    _assert_problem(admin_api.put("/api/v1/config/payments/db%00x/", {"value": 1}, format="json"), 400)
    assert fingerprint() == before


def test_nul_in_a_header_is_a_400_except_the_request_id_which_is_replaced(admin_api, world) -> None:
    before = fingerprint()
    response = admin_api.put("/api/v1/config/payments/db.host/", {"value": "y"}, format="json", HTTP_IF_MATCH='"1\x00"')
    assert _assert_problem(response, 400)["errors"] == {"headers.If-Match": ["NUL characters are not allowed."]}
    assert fingerprint() == before
    for junk in ("a\x00b", "<script>", "x" * 500, "../../etc"):
        response = admin_api.get("/api/v1/services/", HTTP_X_REQUEST_ID=junk)
        assert response.status_code == 200
        assert response["X-Request-ID"] != junk and len(response["X-Request-ID"]) == 32


DEEP = 100_000


@pytest.mark.parametrize(
    ("url", "body", "content_type"),
    [
        ("/api/v1/services/", '{"name": "x", "metadata": ' + "[" * DEEP + "]" * DEEP + "}", "application/json"),
        ("/api/v1/pipelines/enrich/run/", '{"payload": ' + '{"a":' * 5000 + "1" + "}" * 5000 + "}", "application/json"),
        ("/api/v1/config/payments/db.host/", '{"value": ' + "[" * 70 + "]" * 70 + "}", "application/json"),
        ("/api/v1/config/payments/import/?format=json", '{"a": ' + "[" * DEEP + "]" * DEEP + "}", "application/json"),
        ("/api/v1/config/payments/import/?format=yaml", "a: " + "[" * DEEP + "]" * DEEP, "application/yaml"),
        ("/api/v1/config/payments/import/?format=toml", "a = " + "[" * DEEP + "]" * DEEP, "application/toml"),
        ("/api/v1/config/payments/import/?format=toml", "a = " + "{b=" * DEEP + "1" + "}" * DEEP, "application/toml"),
    ],
    ids=["service-json", "run-json", "entry-70", "import-json", "import-yaml", "import-toml", "import-toml-inline"],
)
def test_deep_documents_are_a_400(admin_api, world, url: str, body: str, content_type: str) -> None:
    before = fingerprint()
    method = admin_api.put if "db.host" in url else admin_api.post
    _assert_problem(method(url, body.encode(), content_type=content_type), 400)
    assert fingerprint() == before


BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
MERGE_BOMB = "m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}\n" + "".join(
    f"m{n}: &m{n} {{<<: *m{n - 1}, {', '.join(f'k{k}: *m{n - 1}' for k in range(9))}}}\n" for n in range(1, 8)
)


@pytest.mark.parametrize("document", [BOMB, MERGE_BOMB, "a: &a [*a]\n", 'a: "\\0"\n', '"k\\x00": 1\n'])
@pytest.mark.parametrize("replace", ["false", "true"])
def test_hostile_yaml_imports_are_a_400_and_change_nothing(admin_api, world, document: str, replace: str) -> None:
    before, revision = fingerprint(), selectors.namespace_get("payments").revision
    response = admin_api.post(
        f"/api/v1/config/payments/import/?format=yaml&replace={replace}",
        document.encode(),
        content_type="application/yaml",
    )
    _assert_problem(response, 400)
    assert fingerprint() == before
    assert selectors.namespace_get("payments").revision == revision


@pytest.mark.parametrize(
    ("url", "method"),
    [
        ("/api/v1/services/", "post"),
        ("/api/v1/pipelines/enrich/run/", "post"),
        ("/api/v1/config/payments/import/?format=yaml", "post"),
        ("/api/v1/config/payments/db.host/", "put"),
    ],
)
def test_huge_bodies_are_a_413(admin_api, world, url: str, method: str) -> None:
    before = fingerprint()
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=4096):
        payload = b'{"value": "' + b"x" * 10_000 + b'"}'
        response = getattr(admin_api, method)(url, payload, content_type="application/json")
    _assert_problem(response, 413)
    assert fingerprint() == before


def _unsized(client, url: str, body: bytes, **extra: str):  # type: ignore[no-untyped-def]
    """A request as a server delivers a chunked body: Transfer-Encoding set, no Content-Length, and a
    de-chunked stream that ends where the body ends (`wsgi.input` of gunicorn)."""
    return client.generic(
        "POST",
        url,
        body,
        "application/yaml",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
        **{"wsgi.input": io.BytesIO(body)},
        **extra,
    )


def test_a_chunked_body_without_the_end_marker_is_a_411(admin_api, world) -> None:
    """A WSGI server that does not mark the de-chunked stream's end (`wsgi.input_terminated`): 411."""
    before = fingerprint()
    response = _unsized(admin_api, "/api/v1/config/payments/import/?format=yaml&replace=true", b"other: 1\n")
    _assert_problem(response, 411)
    assert fingerprint() == before


def test_a_chunked_body_with_the_end_marker_is_read_in_full(admin_api, world) -> None:
    response = _unsized(
        admin_api,
        "/api/v1/config/payments/import/?format=yaml&replace=true",
        b"other: 1\n",
        **{"wsgi.input_terminated": True},
    )
    assert response.status_code == 200, response.content
    assert selectors.config_snapshot("payments").visible_flat(reveal=False) == {"other": 1}


def test_a_chunked_body_over_the_limit_is_a_413(admin_api, world) -> None:
    before = fingerprint()
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2048):
        response = _unsized(
            admin_api,
            "/api/v1/config/payments/import/?format=yaml&replace=true",
            b"a: " + b"x" * 5000 + b"\n",
            **{"wsgi.input_terminated": True},
        )
    _assert_problem(response, 413)
    assert fingerprint() == before


def test_legitimate_input_still_passes(admin_api, world) -> None:
    """Escaped backslashes that only look like a NUL escape, and non-JSON bodies mentioning it, pass."""
    response = admin_api.patch(
        "/api/v1/services/billing/",
        b'{"metadata": {"note": "\\\\u0000 is how JSON spells NUL"}}',
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["metadata"] == {"note": "\\u0000 is how JSON spells NUL"}
    response = admin_api.post(
        "/api/v1/config/payments/import/?format=yaml",
        b"doc: '\\u0000 in single quotes is text'\n",
        content_type="application/yaml",
    )
    assert response.status_code == 200, response.content


def _admin_forms(world) -> dict[str, tuple[str, dict]]:  # type: ignore[no-untyped-def]
    """Admin form posts (url, fields) with a NUL in a JSON field (escaped) or a text field (raw)."""
    from configstore.models import Entry

    entry = Entry.objects.get(key="db.host")
    namespace = world["namespace"]
    return {
        "entry-value": (
            f"/admin/configstore/entry/{entry.pk}/change/",
            {"value": '"a\\u0000b"', "description": "", "expected_revision": namespace.revision or 1},
        ),
        "entry-value-key": (
            f"/admin/configstore/entry/{entry.pk}/change/",
            {"value": '{"k\\u0000": 1}', "description": "", "expected_revision": 1},
        ),
        "service-metadata": (
            "/admin/registry/service/add/",
            {"name": "s-admin", "type": "http_api", "tags": "[]", "capabilities": "[]", "metadata": '{"a": "\\u0000"}'},
        ),
        "service-tags": (
            "/admin/registry/service/add/",
            {"name": "s-admin", "type": "http_api", "tags": '["\\u0000"]', "capabilities": "[]", "metadata": "{}"},
        ),
        "service-description-raw": (
            "/admin/registry/service/add/",
            {"name": "s-admin", "type": "http_api", "description": "a\x00b", "tags": "[]", "capabilities": "[]"},
        ),
        "rule-params": (
            "/admin/configstore/rule/add/",
            {"namespace": namespace.pk, "key": "db.host", "kind": "enum", "params": '{"values": ["\\u0000"]}'},
        ),
        "import-document": (
            f"/admin/configstore/namespace/{namespace.pk}/import/",
            {"document": 'a: "\\0"', "format": "yaml", "replace": "on", "message": ""},
        ),
    }


ADMIN_FORM_NAMES = [
    "entry-value",
    "entry-value-key",
    "service-metadata",
    "service-tags",
    "service-description-raw",
    "rule-params",
    "import-document",
]


@pytest.mark.parametrize("name", ADMIN_FORM_NAMES)
def test_admin_forms_report_nul_as_a_field_error(admin_client, world, name: str) -> None:
    url, data = _admin_forms(world)[name]
    before = fingerprint()
    response = admin_client.post(url, data)
    assert response.status_code == 200, (response.status_code, response.get("Location"))
    page = response.content.decode()
    assert "errorlist" in page and ("Null characters are not allowed" in page or "NUL characters" in page)
    assert fingerprint() == before


def test_admin_search_with_a_nul_is_a_400(admin_client, world) -> None:
    for url in ("/admin/registry/service/?q=a%00", "/admin/configstore/entry/?q=%00", "/admin/registry/service/?o=%00"):
        _assert_problem(admin_client.get(url), 400)


JUNK_QUERY = [
    "limit=abc",
    "limit=-1",
    "offset=1e99",
    "limit=99999999999999999999",
    "since=garbage",
    "async=%FF",
    "index=x",
    "wait=forever",
    "format=",
    "status=nope",
    "tag=&tag=",
    "ordering=__",
    "record=2",
    "replace=maybe",
    "search=" + "a" * 5000,
]
JUNK_ROUTES = [
    "/api/v1/services/",
    "/api/v1/discover/billing/",
    "/api/v1/events/",
    "/api/v1/config/",
    "/api/v1/config/payments/",
    "/api/v1/config/payments/history/",
    "/api/v1/pipelines/",
    "/api/v1/pipelines/enrich/runs/",
    "/api/v1/pipelines/enrich/metrics/",
    "/api/v1/webhooks/",
    "/api/v1/keys/",
    "/api/v1/config/payments/rules/",
    "/api/v1/config/payments/sources/",
]


@pytest.mark.parametrize("query", JUNK_QUERY)
@pytest.mark.parametrize("url", JUNK_ROUTES)
def test_junk_query_parameters_never_answer_500(admin_api, world, url: str, query: str) -> None:
    response = admin_api.get(f"{url}?{query}")
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        _assert_problem(response, response.status_code)


WRONG_TYPES = {
    "array": b"[]",
    "string": b'"s"',
    "number": b"12",
    "null": b"null",
    "object-value": None,  # the template with an object where a string/scalar goes
    "array-value": None,
    "huge-number": None,
    "nan": None,
    "infinity": None,
}


@pytest.mark.parametrize("shape", sorted(WRONG_TYPES))
@pytest.mark.parametrize("route", sorted(BODY_ROUTES))
def test_wrongly_typed_bodies_never_answer_500(admin_api, world, route: str, shape: str) -> None:
    method, url, template = BODY_ROUTES[route]
    body = WRONG_TYPES[shape]
    if body is None:
        value = {
            "object-value": b"{}",
            "array-value": b"[[]]",
            "huge-number": b"1e999999",
            "nan": b"NaN",
            "infinity": b"-Infinity",
        }[shape]
        body = _body(template, value, b'"k"')
    response = getattr(admin_api, method)(url, body, content_type="application/json")
    assert response.status_code < 500, response.content[:300]


@pytest.mark.parametrize(
    "url",
    ["/admin/access/apikey/", "/admin/registry/service/", "/admin/configstore/entry/", "/admin/pipelines/pipeline/"],
)
@pytest.mark.parametrize(
    "data",
    [
        {"action": "delete_selected", "_selected_action": ["a\x00"]},
        {"action": "delete\x00selected", "_selected_action": ["1"]},
        {"action": "delete_selected", "index": "\x00", "_selected_action": ["1"]},
        {"action": "delete_selected", "_selected_action": ["1"], "na\x00me": "x"},
    ],
    ids=["selected-id", "action", "index", "field-name"],
)
def test_admin_action_posts_with_a_nul_are_a_400(admin_client, world, url: str, data: dict) -> None:
    """Action ids go straight into a queryset (a NUL in a text primary key was a PostgreSQL error)."""
    before = fingerprint()
    _assert_problem(admin_client.post(url, data), 400)
    assert fingerprint() == before


def test_too_many_fields_are_problem_json(admin_client, world) -> None:
    with override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=10):
        _assert_problem(admin_client.get("/api/v1/services/?" + "&".join(f"a{n}=1" for n in range(20))), 400)
        form = "&".join(f"f{n}=1" for n in range(20))
        response = admin_client.generic(
            "POST", "/admin/registry/service/add/", form, "application/x-www-form-urlencoded"
        )
        _assert_problem(response, 400)
