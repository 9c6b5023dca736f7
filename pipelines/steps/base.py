"""The step-kind contract: a JSON schema for the config, semantic checks, and `compile` to a callable.

A compiled step is `apply(packet, state) -> None`: it changes the packet in place, appends routes to
`state.routes`, raises `StepError` to fail the packet and `DropPacket` to drop it. Compiled steps are
pure: no ORM, no I/O; the only outside data (config values for `enrich`) comes through `state.lookup`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from jmespath.exceptions import JMESPathError
from jsonschema import Draft202012Validator

from pipelines.expressions import compile_expression
from pipelines.paths import MISSING, parse_path


class StepError(Exception):
    """The step refused or could not process the packet; `errors` lists every reason."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [message]


class DropPacket(Exception):
    """The packet is dropped on purpose (a filter matched); the run ends with status `dropped`."""


def _no_lookup(namespace: str, key: str) -> Any:
    return MISSING


class RunState:
    """What a run accumulates besides the packet: routes, and the injected config lookup."""

    __slots__ = ("lookup", "routes")

    def __init__(self, lookup: Callable[[str, str], Any] = _no_lookup) -> None:
        self.lookup = lookup
        self.routes: list[str] = []


Apply = Callable[[dict, RunState], None]


def truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, and empty strings, lists and objects are false; 0 is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True


EVALUATION_ERRORS = (JMESPathError, TypeError, ValueError)  # ordering a string against a number: TypeError


def expression_failed(compiled: Any, exc: Exception) -> StepError:
    """The step error for an expression that could not be evaluated on this packet."""
    return StepError(f"expression {compiled.expression!r} failed: {str(exc).splitlines()[0]}")


def search(compiled: Any, packet: dict) -> Any:
    """Evaluate a compiled expression, turning evaluation errors (bad argument types) into StepError."""
    try:
        return compiled.search(packet)
    except EVALUATION_ERRORS as exc:
        raise expression_failed(compiled, exc) from None


class StepKind:
    """Base class of a step kind; subclasses set `kind`, `schema`, and implement `check` and `compile`."""

    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""
    schema: ClassVar[dict[str, Any]] = {"type": "object"}
    _validator: ClassVar[Draft202012Validator | None] = None

    @classmethod
    def validate(cls, config: Any) -> list[str]:
        """Every problem with `config`: schema violations first, then the kind's semantic checks."""
        if cls._validator is None or cls._validator.schema is not cls.schema:
            cls._validator = Draft202012Validator(cls.schema)
        errors = []
        for error in sorted(cls._validator.iter_errors(config), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in error.absolute_path)
            errors.append(f"{where}: {error.message}" if where else error.message)
        if errors:
            return errors
        return cls.check(config)

    @classmethod
    def check(cls, config: dict) -> list[str]:
        """Semantic checks beyond the schema (expressions compile, paths are valid...)."""
        return []

    @classmethod
    def compile(cls, config: dict) -> Apply:
        """Turn a validated config into `apply(packet, state)`."""
        raise NotImplementedError


def check_path(errors: list[str], where: str, path: Any, *, writable: bool = True) -> None:
    """Append a message to `errors` when `path` is not a valid packet path."""
    try:
        parse_path(path, writable=writable)
    except ValueError as exc:
        errors.append(f"{where}: {exc}")


def check_expression(errors: list[str], where: str, expr: Any) -> None:
    """Append a message to `errors` when `expr` is not valid JMESPath."""
    try:
        compile_expression(expr)
    except ValueError as exc:
        errors.append(f"{where}: {exc}")
