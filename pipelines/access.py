"""Config reads through pipelines are authorized like the config API's reads.

A pipeline's `enrich` steps read config namespaces; a run of it (and of every pipeline its routes chain
into) reads them on behalf of whoever asked for the run. So a run, a batch, an async submission and a dry
run are refused (403) unless the caller may read every namespace in that transitive closure, and a
definition is refused (400) when the caller saving it may not read a namespace it enriches from, directly
or through a chained pipeline. "May read" is the config API's own rule: an API key needs `config:read`
and must pass its namespace list (`APIKey.allows_namespace`); an admin user needs the `view_entry`
permission of the config store (superusers hold it). In-process callers (demo data, tests, beat) are the
trusted system. Secret entries are never revealed to `enrich`, whoever runs it (they read as absent), so
`config:secrets` is not needed and grants nothing here.

The closure is computed from the compiled definitions (`CompiledPipeline.reads` / `.chains`), so it costs
nothing for a caller who may read every namespace and one indexed read per chained pipeline otherwise.
The run then carries the namespaces it was authorized for (`allowed`): a chained pipeline changed between
the check and the run (or an async run's execution) cannot make it read anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rest_framework import exceptions

from pipelines import selectors
from pipelines.conf import max_chain_depth
from pipelines.selectors import PipelineRef

CONFIG_VIEW_PERMISSION = "configstore.view_entry"


class ConfigReadDenied(exceptions.PermissionDenied):
    """403: the run would read config the caller may not read; the detail names the namespace and where."""

    default_detail = "This run would read config you may not read."
    default_code = "permission_denied"


def _nothing(namespace: str) -> bool:
    return False


@dataclass(frozen=True)
class ConfigReader:
    """On whose behalf a run or a definition reads config: a check per namespace and a name for messages.

    `reads_all` short-cuts the check for callers who may read every namespace.
    """

    name: str
    may_read: Callable[[str], bool] = _nothing
    reads_all: bool = False

    @classmethod
    def system(cls) -> ConfigReader:
        """The trusted in-process caller: every namespace."""
        return cls(name="system", may_read=lambda namespace: True, reads_all=True)

    @classmethod
    def from_api_key(cls, key: Any) -> ConfigReader:
        """An API key: `config:read` and its namespace list, the checks the config API makes on a read."""
        from controlplane.access.scopes import Scope, grants

        can_read = grants(list(getattr(key, "scopes", None) or []), Scope.CONFIG_READ)
        return cls(
            name=f"API key {getattr(key, 'prefix', '?')}",
            may_read=lambda namespace: can_read and key.allows_namespace(namespace),
            reads_all=can_read and not getattr(key, "namespaces", None),
        )

    @classmethod
    def from_user(cls, user: Any) -> ConfigReader:
        """An admin user: the config store's view permission (Django permissions have no per-namespace form)."""
        allowed = bool(getattr(user, "is_active", False)) and bool(user.has_perm(CONFIG_VIEW_PERMISSION))
        return cls(name=f"user {user.get_username()}", may_read=lambda namespace: allowed, reads_all=allowed)

    @classmethod
    def from_request(cls, request: Any) -> ConfigReader:
        """The reader behind an API request (its key) or an admin request (its user); nobody otherwise."""
        auth = getattr(request, "auth", None)
        if auth is not None and getattr(auth, "prefix", None):
            return cls.from_api_key(auth)
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            return cls.from_user(user)
        return cls(name="anonymous")


def namespaces_read(ref: PipelineRef, *, version: int | None = None) -> dict[str, str]:
    """Namespace -> the pipeline reading it, for a run of `ref` and every pipeline its routes can chain into.

    Follows `pipeline` route targets as far as a chain can go (`PIPELINE_MAX_CHAIN_DEPTH`), each once;
    missing and disabled targets do not run, so they read nothing.
    """
    found: dict[str, str] = {}
    seen = {ref.id}
    level = [(selectors.compiled_pipeline(ref.id, version or ref.version), ref.slug)]
    for depth in range(max_chain_depth()):
        following = []
        for compiled, label in level:
            for namespace in sorted(compiled.reads):
                found.setdefault(namespace, label)
            if depth + 1 >= max_chain_depth():
                continue
            for slug in sorted(compiled.chains):
                target = selectors.pipeline_ref(slug)
                if target is None or not target.enabled or target.id in seen:
                    continue
                seen.add(target.id)
                following.append((selectors.compiled_pipeline(target.id, target.version), f"{label} -> {slug}"))
        level = following
        if not level:
            break
    return found


def authorize_run(reader: ConfigReader, ref: PipelineRef, *, version: int | None = None) -> frozenset[str] | None:
    """The namespaces a run of `ref` may read on `reader`'s behalf (None: any); ConfigReadDenied if one is refused."""
    if reader.reads_all:
        return None
    found = namespaces_read(ref, version=version)
    denied = [(namespace, where) for namespace, where in found.items() if not reader.may_read(namespace)]
    if denied:
        namespace, where = denied[0]
        raise ConfigReadDenied(
            f"Pipeline {where} enriches from config namespace {namespace!r}, which {reader.name} may not read "
            "(it needs config:read and the namespace in its list)."
        )
    return frozenset(found)


def definition_read_errors(reader: ConfigReader, steps: list[Any]) -> dict[str, list[str]]:
    """Field errors for steps being saved that would read config `reader` may not read.

    An `enrich` step names its namespace; a `route` step into another pipeline reads what that pipeline
    (and its own chains) read. Every step counts, enabled or not: enabling one is an edit that is not
    checked again.
    """
    if reader.reads_all:
        return {}
    from pipelines.steps import STEP_KINDS

    errors: dict[str, list[str]] = {}
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or not isinstance(step.get("config"), dict):
            continue
        label = f"step {step.get('name')!r}"
        config = step["config"]
        if step.get("kind") == "enrich" and isinstance(config.get("namespace"), str):
            if not reader.may_read(config["namespace"]):
                errors.setdefault(f"steps.{index}.config", []).append(
                    f"{label}: {reader.name} may not read config namespace {config['namespace']!r}."
                )
        elif step.get("kind") == "route":
            try:
                slugs = STEP_KINDS["route"].chains(config)
            except (KeyError, TypeError, AttributeError):
                continue  # an invalid config: its validation errors are reported instead
            for slug in sorted(slugs):
                target = selectors.pipeline_ref(slug)
                if target is None:
                    continue
                for namespace, where in namespaces_read(target).items():
                    if not reader.may_read(namespace):
                        errors.setdefault(f"steps.{index}.config", []).append(
                            f"{label}: routes into {where}, which reads config namespace {namespace!r}; "
                            f"{reader.name} may not read it."
                        )
    return errors


def run_hidden_reason(reader: ConfigReader, run: Any) -> str:
    """Why `reader` may not see a recorded run's packets, trace and error (they can hold config it read); "" if it may.

    A run keeps the namespaces it could read (`Run.config_namespaces`); rows older than that field are
    judged by what their pipeline version reads now.
    """
    if reader.reads_all:
        return ""
    namespaces = run.config_namespaces
    if namespaces is None:
        try:
            ref = PipelineRef(id=run.pipeline_id, slug=run.pipeline.slug, version=run.version, enabled=True)
            namespaces = list(namespaces_read(ref))
        except Exception:  # noqa: BLE001 - a version that cannot be read back: hide rather than guess
            return f"it may have read config that {reader.name} cannot check"
    denied = sorted(namespace for namespace in namespaces if not reader.may_read(namespace))
    if denied:
        return f"it could read config namespace {denied[0]!r}, which {reader.name} may not read"
    return ""
