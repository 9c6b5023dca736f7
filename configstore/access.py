"""Who is changing config, and what they may change: one capabilities object for every write path.

The API builds a `ConfigActor` from the request's API key, the admin from the logged-in user, and
in-process callers (beat reloads, `bootstrap`, management commands) pass a plain string, which stands for
the trusted system. `config_changes_apply` and the source services check the whole change set against it
once, so the rule is the same whatever path a change takes:

- a change that creates, alters, deletes or restores a secret entry, or touches a key that is secret now
  in any layer, needs `may_secrets` (API scope `config:secrets`; admin permission
  `configstore.manage_secrets`, which superusers hold implicitly);
- a namespace outside `namespaces` cannot be changed (API keys with a namespace list);
- defining, changing or removing a source (file or env) needs `is_operator` (API scope `admin`; a
  superuser in the admin).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rest_framework import exceptions

SECRETS_PERMISSION = "configstore.manage_secrets"


class ChangeNotAllowed(exceptions.PermissionDenied):
    """403: the actor may not make this change (secrets, namespace limits, operator-only sources).

    The detail names keys and scopes only, never values, and is decided before any value is compared.
    """

    default_detail = "You may not make this config change."
    default_code = "permission_denied"


@dataclass(frozen=True)
class ConfigActor:
    """The capabilities of whoever makes a change, plus the name recorded in revisions and events.

    `namespaces` None means every namespace.
    """

    name: str
    may_secrets: bool = False
    is_operator: bool = False
    namespaces: frozenset[str] | None = None

    def allows_namespace(self, namespace: str) -> bool:
        """Whether this actor may change `namespace`."""
        return self.namespaces is None or namespace in self.namespaces

    def __str__(self) -> str:
        return self.name

    @classmethod
    def system(cls, name: str = "system") -> ConfigActor:
        """The trusted in-process caller (beat reloads, bootstrap, management commands): every capability."""
        return cls(name=name, may_secrets=True, is_operator=True, namespaces=None)

    @classmethod
    def from_api_key(cls, key: Any, name: str) -> ConfigActor:
        """An API key's capabilities: `config:secrets` for secrets, `admin` for sources, its namespace list."""
        from controlplane.access.scopes import Scope, grants

        scopes = list(getattr(key, "scopes", None) or [])
        limits = list(getattr(key, "namespaces", None) or [])
        return cls(
            name=name,
            may_secrets=grants(scopes, Scope.CONFIG_SECRETS),
            is_operator=Scope.ADMIN in scopes,
            namespaces=frozenset(limits) if limits else None,
        )

    @classmethod
    def from_user(cls, user: Any) -> ConfigActor:
        """An admin user's capabilities: superusers have all; other staff need `configstore.manage_secrets`
        for secrets and can never define sources (Django's model permissions decide the rest)."""
        superuser = bool(getattr(user, "is_superuser", False)) and bool(getattr(user, "is_active", False))
        return cls(
            name=f"user:{user.get_username()}",
            may_secrets=superuser or bool(user.has_perm(SECRETS_PERMISSION)),
            is_operator=superuser,
            namespaces=None,
        )

    @classmethod
    def from_request(cls, request: Any) -> ConfigActor:
        """The actor of an API request (key) or an admin request (user)."""
        from controlplane.actors import actor_from_request

        auth = getattr(request, "auth", None)
        if auth is not None and getattr(auth, "prefix", None):
            return cls.from_api_key(auth, actor_from_request(request))
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            return cls.from_user(user)
        return cls(name="anonymous")


def as_actor(actor: str | ConfigActor) -> ConfigActor:
    """A `ConfigActor`; a plain string is the trusted system under that name."""
    return actor if isinstance(actor, ConfigActor) else ConfigActor.system(str(actor))


def require_namespace(actor: ConfigActor, namespace: str) -> None:
    """`ChangeNotAllowed` when `actor` is limited to other namespaces."""
    if not actor.allows_namespace(namespace):
        raise ChangeNotAllowed(f"This actor is limited to other namespaces than {namespace!r}.")


def require_operator(actor: ConfigActor, what: str) -> None:
    """`ChangeNotAllowed` unless `actor` is an operator (API scope `admin`, or a superuser)."""
    if not actor.is_operator:
        raise ChangeNotAllowed(f"{what} is operator territory: it needs the scope admin (or a superuser).")


def require_secrets(actor: ConfigActor, keys: Iterable[str]) -> None:
    """`ChangeNotAllowed` naming `keys` when there are any and `actor` may not change secrets."""
    denied = sorted(set(keys))
    if denied and not actor.may_secrets:
        shown = ", ".join(denied[:20]) + (f" and {len(denied) - 20} more" if len(denied) > 20 else "")
        raise ChangeNotAllowed(f"Changing secret entries needs the scope config:secrets ({shown}).")
