"""Config API views: thin adapters over `configstore.selectors` and `configstore.services`.

Namespace-limited keys get 404 for namespaces outside their list, as if those did not exist. Who may
make a change (secrets, namespace limits, operator-only sources) is not decided here: every write passes
the key's `ConfigActor` to the services, which check the whole change set once (configstore/access.py).
"""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, generics, serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from configstore import conf, revcache, selectors, services
from configstore.access import ConfigActor
from configstore.api.serializers import (
    EntryWriteSerializer,
    NamespaceSerializer,
    RevisionSerializer,
    RollbackSerializer,
    RuleSerializer,
    SourceSerializer,
    mask_if,
)
from configstore.formats import CONTENT_TYPES, FORMATS, FormatError, nest, render_document
from configstore.models import Namespace, Revision, Rule, Source
from controlplane.access.scopes import Scope, grants
from controlplane.actors import actor_from_request
from controlplane.errors import Conflict, PayloadTooLarge
from controlplane.schema import boolean_param

READ_WRITE = {"GET": Scope.CONFIG_READ, "HEAD": Scope.CONFIG_READ, "*": Scope.CONFIG_WRITE}


def _reveal(request: Request) -> bool:
    return grants(request.auth.scopes, Scope.CONFIG_SECRETS)


def _actor(request: Request) -> ConfigActor:
    """The key's capabilities for the services (secrets, namespace list, operator)."""
    return ConfigActor.from_request(request)


def _flag(request: Request, name: str) -> bool:
    return boolean_param(request, name)  # true/false as the OpenAPI document says; anything else is a 400


def namespace_for(request: Request, name: str) -> Namespace:
    """The namespace `name` if the key may see it; 404 otherwise (outside a key's list looks absent)."""
    if not request.auth.allows_namespace(name):
        raise exceptions.NotFound(f"No namespace {name!r}.")
    return selectors.namespace_get(name)


def _revision_header(value: str | None) -> int | None:
    """`If-Match`/`If-None-Match` value -> revision (`"3"`, `W/"3"` or `3`); 400 when malformed."""
    if value is None:
        return None
    token = value.strip().removeprefix("W/").strip('"')
    if not (token.isascii() and token.isdigit()):  # str.isdigit alone takes "²", which int() refuses (500)
        raise exceptions.ValidationError({"If-Match": ['Give the revision number, such as 3 or "3".']})
    return int(token)


def _schema_only(view) -> bool:  # type: ignore[no-untyped-def]
    """True while drf-spectacular inspects the view: there is no key and no namespace to scope by."""
    return getattr(view, "swagger_fake_view", False)


IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description="Compare-and-swap: the revision the write expects (`3`, `\"3\"` or `W/\"3\"`).",
    pattern=r'^\s*(W/)?"*[0-9]+"*\s*$',  # what _revision_header reads
)
# Import: the Content-Type names the format when `?format=` does not; anything else is read as YAML.
IMPORT_TYPES = {
    "application/yaml": "yaml",
    "application/json": "json",
    "application/toml": "toml",
    "text/x-ini": "ini",
    "text/x-env": "env",
}
# The media type of every `?format=` export (configstore.formats.CONTENT_TYPES): JSON and YAML parse to the
# nested config object, TOML/INI/env are documented as text.
EXPORT_RESPONSES = {
    (200, media): OpenApiTypes.OBJECT if media in ("application/json", "application/yaml") else OpenApiTypes.STR
    for media in sorted({content_type.split(";")[0] for content_type in CONTENT_TYPES.values()})
}
ENTRY_BODIES_PER_SNAPSHOT = 4096  # rendered entry bodies kept per namespace revision (memory bound)
ENTRY_BODY = OpenApiTypes.OBJECT  # the entry with every layer; its shape is in docs/configstore.md
REVISION_RESULT = inline_serializer(
    "ConfigRevisionResult",
    {"changed": serializers.BooleanField(), "revision": serializers.IntegerField()},
)


class _RevisionPrefetch:
    """Reads the namespace's revision in the rate limit's Redis round trip: one network trip per read."""

    def rate_limit_prefetch(self, request: Request) -> list[str]:
        namespace = self.kwargs.get("namespace")  # type: ignore[attr-defined]
        if request.method != "GET" or not namespace or not revcache.enabled():
            return []
        return [revcache.cache_key(namespace)]

    @staticmethod
    def follow_revision(namespace: str) -> None:
        """After a permitted read of an existing namespace: this process follows its revision from now on."""
        if revcache.enabled():
            from controlplane import coherence

            coherence.follow([revcache.cache_key(namespace)])

    @staticmethod
    def cached_revision(request: Request, namespace: str) -> tuple[int, int] | None:
        usage = getattr(request._request, "ratelimit_usage", None)  # nothing prefetched without Redis
        return revcache.parse(usage.prefetched.get(revcache.cache_key(namespace))) if usage else None


class _IgnoreFormatNegotiation(DefaultContentNegotiation):
    """`?format=` selects the export format here, not a DRF renderer."""

    def select_renderer(self, request, renderers, format_suffix=None):  # type: ignore[no-untyped-def]
        return renderers[0], renderers[0].media_type


class NamespaceListApi(generics.ListCreateAPIView):
    """GET: namespaces the key may see. POST `{name, description}`: create one."""

    serializer_class = NamespaceSerializer
    required_scopes = {"GET": Scope.CONFIG_READ, "POST": Scope.CONFIG_WRITE}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if _schema_only(self):
            return Namespace.objects.none()
        return selectors.namespace_list(allowed=self.request.auth.namespaces or None)

    def create(self, request: Request, *args, **kwargs) -> Response:  # type: ignore[no-untyped-def]
        serializer = NamespaceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        name = serializer.validated_data["name"]
        if not request.auth.allows_namespace(name):
            raise exceptions.PermissionDenied("This API key is limited to other namespaces.")
        namespace = services.namespace_create(
            name=name, description=serializer.validated_data.get("description", ""), actor=actor_from_request(request)
        )
        return Response(NamespaceSerializer(namespace).data, status=status.HTTP_201_CREATED)


class NamespaceConfigApi(_RevisionPrefetch, APIView):
    """GET: the effective config, nested JSON with `ETag`; `?format=yaml|json|ini|env|toml` exports it."""

    required_scopes = {"GET": Scope.CONFIG_READ, "HEAD": Scope.CONFIG_READ}
    content_negotiation_class = _IgnoreFormatNegotiation

    @extend_schema(
        operation_id="config_namespace_retrieve",
        parameters=[
            OpenApiParameter("format", str, enum=list(FORMATS)),
            OpenApiParameter("prefix", str, description="Variable prefix for `format=env`."),
        ],
        responses={**EXPORT_RESPONSES, 304: None},
    )
    def get(self, request: Request, namespace: str) -> HttpResponse:
        if not request.auth.allows_namespace(namespace):
            raise exceptions.NotFound(f"No namespace {namespace!r}.")
        snapshot = selectors.config_snapshot(namespace, cached_revision=self.cached_revision(request, namespace))
        self.follow_revision(namespace)
        etag = f'"{snapshot.revision}"'
        fmt = request.query_params.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise exceptions.ValidationError({"format": [f"Use one of {', '.join(FORMATS)}."]})
        reveal = _reveal(request)
        inm = request.headers.get("If-None-Match")
        if inm is not None and (inm.strip() == "*" or snapshot.revision in _etag_list(inm)):
            response = HttpResponse(status=304)
        elif fmt is None:
            response = HttpResponse(snapshot.json_body(reveal=reveal), content_type="application/json")
        else:
            try:
                text = render_document(
                    snapshot.visible_flat(reveal=reveal), fmt, env_prefix=request.query_params.get("prefix", "")
                )
            except FormatError as exc:
                # A valid request the namespace's values refuse (TOML has no null): the resource's state, a 409.
                raise Conflict(str(exc)) from None
            response = HttpResponse(text.encode(), content_type=CONTENT_TYPES[fmt])
        response["ETag"] = etag
        response["X-Config-Index"] = str(snapshot.revision)
        return response


def _etag_list(header: str) -> set[int]:
    tokens = (t.strip().removeprefix("W/").strip('"') for t in header.split(","))
    return {int(t) for t in tokens if t.isdigit()}


class EntryApi(_RevisionPrefetch, APIView):
    """GET/PUT/DELETE one key of the database layer; `If-Match: <revision>` makes it compare-and-swap."""

    required_scopes = READ_WRITE

    @classmethod
    def _entry_body(
        cls, request: Request, namespace: str, key: str, cached_revision: tuple[int, int] | None = None
    ) -> tuple[dict, int]:
        """The entry as every layer holds it, from the namespace snapshot (one query per read)."""
        snapshot = selectors.config_snapshot(namespace, cached_revision=cached_revision)
        return cls._entry_body_of(snapshot, namespace, key, _reveal(request))

    @staticmethod
    def _entry_body_of(snapshot: selectors.Snapshot, namespace: str, key: str, reveal: bool) -> tuple[dict, int]:
        layers = snapshot.layers.get(key, [])
        if not layers:
            prefix = key + "."
            flat = {
                k[len(prefix) :]: v for k, v in snapshot.visible_flat(reveal=reveal).items() if k.startswith(prefix)
            }
            if not flat:
                raise exceptions.NotFound(f"No key {key!r} in {namespace}.")
            return {
                "key": key,
                "section": True,
                "value": nest(flat),
                "revision": 0,
                "namespace_revision": snapshot.revision,
            }, 0
        own = next((e for e in layers if e.source_id is None), None)
        cas = own.revision if own else 0
        winner = layers[0] if key in snapshot.winners else None
        secret = any(e.secret for e in layers)
        body = {
            "key": key,
            "value": mask_if(snapshot.flat[key], secret, reveal) if winner else None,
            "secret": secret,
            "layer": winner.layer if winner else None,
            "description": own.description if own else "",
            "revision": cas,
            "namespace_revision": snapshot.revision,
            "updated_by": winner.updated_by if winner else "",
            "updated_at": winner.updated_at if winner else None,
            "layers": [
                {
                    "layer": e.layer,
                    "priority": selectors.layer_priority(e.source)[0],
                    "value": mask_if(selectors.entry_plain_value(e), secret, reveal),
                    "active": e.source is None or e.source.enabled,
                    "revision": e.revision,
                }
                for e in layers
            ],
        }
        return body, cas

    @extend_schema(operation_id="config_entry_retrieve", responses=ENTRY_BODY)
    def get(self, request: Request, namespace: str, key: str) -> Response:
        if not request.auth.allows_namespace(namespace):
            raise exceptions.NotFound(f"No namespace {namespace!r}.")
        snapshot = selectors.config_snapshot(namespace, cached_revision=self.cached_revision(request, namespace))
        self.follow_revision(namespace)  # the namespace exists and this key may read it
        reveal = _reveal(request)
        # Rendered once per snapshot (revision), key and visibility, like the namespace body.
        rendered = snapshot.rendered.get(("entry", key, reveal))
        if rendered is None:
            body, cas = self._entry_body_of(snapshot, namespace, key, reveal)
            rendered = (JSONRenderer().render(body), cas)
            if len(snapshot.rendered) < ENTRY_BODIES_PER_SNAPSHOT:
                snapshot.rendered[("entry", key, reveal)] = rendered
        response = HttpResponse(rendered[0], content_type="application/json")
        response["ETag"] = f'"{rendered[1]}"'
        return response

    @extend_schema(request=EntryWriteSerializer, parameters=[IF_MATCH], responses={200: ENTRY_BODY, 201: ENTRY_BODY})
    def put(self, request: Request, namespace: str, key: str) -> Response:
        ns = namespace_for(request, namespace)
        serializer = EntryWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        existing = selectors.entry_database(ns, key)
        services.config_entry_set(
            namespace=ns,
            key=key,
            value=data["value"],
            secret=data.get("secret"),
            description=data.get("description"),
            expected_revision=_revision_header(request.headers.get("If-Match")),
            actor=_actor(request),
        )
        body, cas = self._entry_body(request, ns.name, key)
        return Response(
            body, status=status.HTTP_200_OK if existing else status.HTTP_201_CREATED, headers={"ETag": f'"{cas}"'}
        )

    @extend_schema(parameters=[IF_MATCH], responses={204: None})
    def delete(self, request: Request, namespace: str, key: str) -> Response:
        ns = namespace_for(request, namespace)
        existing = selectors.entry_database(ns, key)
        expected = _revision_header(request.headers.get("If-Match"))
        if existing is None and expected is None:
            raise exceptions.NotFound(f"No key {key!r} in the database layer of {namespace}.")
        services.config_entry_delete(namespace=ns, key=key, expected_revision=expected, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ImportApi(APIView):
    """POST a YAML/JSON/INI/TOML/env document (`?format=`, default from Content-Type, else yaml): all or nothing.

    `?replace=true` also deletes database-layer keys the document does not hold; with an empty document
    that needs `&allow_empty=true` too (else 400). 200 with the new revision, or 200 with `"changed": false`
    when the document matches what is stored. A document touching a secret key needs `config:secrets` (403,
    whatever the values).
    """

    required_scopes = {"POST": Scope.CONFIG_WRITE}
    content_negotiation_class = _IgnoreFormatNegotiation

    @extend_schema(
        request={content_type: OpenApiTypes.STR for content_type in IMPORT_TYPES},
        parameters=[
            OpenApiParameter("format", str, enum=list(FORMATS)),
            OpenApiParameter("replace", bool, description="Also delete keys the document does not hold."),
            OpenApiParameter("allow_empty", bool, description="With replace: an empty document may delete every key."),
            IF_MATCH,
        ],
        responses=inline_serializer(
            "ConfigImportResult",
            {
                "changed": serializers.BooleanField(),
                "revision": serializers.IntegerField(),
                "keys": serializers.IntegerField(),
            },
        ),
    )
    def post(self, request: Request, namespace: str) -> Response:
        ns = namespace_for(request, namespace)
        raw = request._request.body
        if len(raw) > conf.import_max_bytes():
            raise PayloadTooLarge(f"The document exceeds {conf.import_max_bytes()} bytes.")
        fmt = request.query_params.get("format") or _format_from_type(request.content_type)
        if fmt not in FORMATS:
            raise exceptions.ValidationError({"format": [f"Use one of {', '.join(FORMATS)}."]})
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.ValidationError({"body": ["The document must be UTF-8 text."]}) from None
        revision = services.config_import(
            namespace=ns,
            text=text,
            fmt=fmt,
            replace=_flag(request, "replace"),
            allow_empty=_flag(request, "allow_empty"),
            expected_revision=_revision_header(request.headers.get("If-Match")),
            actor=_actor(request),
        )
        ns.refresh_from_db()
        return Response(
            {
                "changed": revision is not None,
                "revision": ns.revision,
                "keys": len(revision.changes) if revision else 0,
            },
            headers={"ETag": f'"{ns.revision}"'},
        )


def _format_from_type(content_type: str) -> str:
    kind = (content_type or "").split(";")[0].strip().lower()
    return IMPORT_TYPES.get(kind, "yaml")


class HistoryApi(generics.ListAPIView):
    """GET: the namespace's revisions, newest first, each with its changes (secrets masked)."""

    serializer_class = RevisionSerializer
    required_scopes = {"GET": Scope.CONFIG_READ}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if _schema_only(self):
            return Revision.objects.none()
        return selectors.revision_list(namespace_for(self.request, self.kwargs["namespace"]))


class RevisionApi(generics.RetrieveAPIView):
    """GET one revision by number."""

    serializer_class = RevisionSerializer
    required_scopes = {"GET": Scope.CONFIG_READ}
    lookup_field = "number"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if _schema_only(self):
            return Revision.objects.none()
        return selectors.revision_list(namespace_for(self.request, self.kwargs["namespace"]))


class RollbackApi(APIView):
    """POST `{"revision": N}`: restore the database layer as it was at N, as a new revision."""

    required_scopes = {"POST": Scope.CONFIG_WRITE}

    @extend_schema(request=RollbackSerializer, responses=REVISION_RESULT)
    def post(self, request: Request, namespace: str) -> Response:
        ns = namespace_for(request, namespace)
        serializer = RollbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        revision = services.config_rollback(
            namespace=ns,
            to_revision=serializer.validated_data["revision"],
            message=serializer.validated_data.get("message", ""),
            actor=_actor(request),
        )
        ns.refresh_from_db()
        return Response(
            {"changed": revision is not None, "revision": ns.revision}, headers={"ETag": f'"{ns.revision}"'}
        )


class RuleListApi(generics.ListCreateAPIView):
    """GET: the namespace's rules. POST `{key, kind, params, message}`: add one."""

    serializer_class = RuleSerializer
    required_scopes = {"GET": Scope.CONFIG_READ, "POST": Scope.CONFIG_WRITE}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if _schema_only(self):
            return Rule.objects.none()
        return selectors.rule_list(namespace_for(self.request, self.kwargs["namespace"]))

    def create(self, request: Request, *args, **kwargs) -> Response:  # type: ignore[no-untyped-def]
        ns = namespace_for(request, kwargs["namespace"])
        serializer = RuleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = services.rule_create(namespace=ns, actor=actor_from_request(request), **serializer.validated_data)
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class RuleDetailApi(generics.RetrieveUpdateDestroyAPIView):
    """GET/PUT/PATCH/DELETE one rule."""

    serializer_class = RuleSerializer
    required_scopes = READ_WRITE

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return Rule.objects.filter(namespace=namespace_for(self.request, self.kwargs["namespace"]))

    def update(self, request: Request, *args, **kwargs) -> Response:  # type: ignore[no-untyped-def]
        rule = self.get_object()
        serializer = RuleSerializer(rule, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        rule = services.rule_update(rule=rule, actor=actor_from_request(request), **serializer.validated_data)
        return Response(RuleSerializer(rule).data)

    def destroy(self, request: Request, *args, **kwargs) -> Response:  # type: ignore[no-untyped-def]
        services.rule_delete(rule=self.get_object(), actor=actor_from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourceListApi(generics.ListCreateAPIView):
    """GET: the namespace's sources. POST `{name, kind, path|prefix, format, priority, enabled, reload}`."""

    serializer_class = SourceSerializer
    required_scopes = {"GET": Scope.CONFIG_READ, "POST": Scope.CONFIG_WRITE}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if _schema_only(self):
            return Source.objects.none()
        return selectors.source_list(namespace_for(self.request, self.kwargs["namespace"]))

    def create(self, request: Request, *args, **kwargs) -> Response:  # type: ignore[no-untyped-def]
        ns = namespace_for(request, kwargs["namespace"])
        serializer = SourceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = services.source_create(namespace=ns, actor=_actor(request), **serializer.validated_data)
        result = services.source_reload(source=source, force=True, actor=_actor(request))
        source.refresh_from_db()
        return Response({**SourceSerializer(source).data, "load": result.status}, status=status.HTTP_201_CREATED)


class SourceDetailApi(generics.RetrieveUpdateDestroyAPIView):
    """GET/PUT/PATCH/DELETE one source; removing or disabling it removes its layer's values."""

    serializer_class = SourceSerializer
    required_scopes = READ_WRITE

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return Source.objects.filter(namespace=namespace_for(self.request, self.kwargs["namespace"])).select_related(
            "namespace"
        )

    def update(self, request: Request, *args, **kwargs) -> Response:  # type: ignore[no-untyped-def]
        source = self.get_object()
        serializer = SourceSerializer(source, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        source = services.source_update(source=source, actor=_actor(request), **serializer.validated_data)
        source.refresh_from_db()
        return Response(SourceSerializer(source).data)

    def destroy(self, request: Request, *args, **kwargs) -> Response:  # type: ignore[no-untyped-def]
        services.source_delete(source=self.get_object(), actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourceReloadApi(APIView):
    """POST: read the source now and apply it if valid (also when unchanged)."""

    required_scopes = {"POST": Scope.CONFIG_WRITE}

    @extend_schema(
        request=None,
        responses=inline_serializer(
            "ConfigSourceReloadResult",
            {
                "status": serializers.CharField(),
                "revision": serializers.IntegerField(allow_null=True),
                "error": serializers.CharField(allow_null=True),
            },
        ),
    )
    def post(self, request: Request, namespace: str, pk: int) -> Response:
        ns = namespace_for(request, namespace)
        source = Source.objects.filter(namespace=ns, pk=pk).select_related("namespace").first()
        if source is None:
            raise exceptions.NotFound("No such source.")
        result = services.source_reload(source=source, force=True, actor=_actor(request))
        return Response({"status": result.status, "revision": result.revision, "error": result.error})
