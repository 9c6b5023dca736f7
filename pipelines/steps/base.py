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

from pipelines.budget import PACKET_BYTES, BudgetExceeded, json_bytes, rough_bytes
from pipelines.expressions import ExpressionError, compile_expression
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
    """What a run accumulates besides the packet: routes, the injected config lookup, the size budget.

    `bound` is an upper bound of the packet's JSON size: steps that write call `wrote`/`grew`, and the
    packet is measured exactly only when the bound passes `limit` (None: no size budget). `exceeded`
    names the budget the run went over, if any.
    """

    __slots__ = ("lookup", "routes", "limit", "bound", "exceeded")

    def __init__(
        self, lookup: Callable[[str, str], Any] = _no_lookup, *, limit: int | None = None, size: int = 0
    ) -> None:
        self.lookup = lookup
        self.routes: list[str] = []
        self.limit = limit
        self.bound = size
        self.exceeded = ""

    def wrote(self, packet: dict, value: Any) -> None:
        """`value` was just written into `packet`: raises BudgetExceeded when the packet is now too big."""
        limit = self.limit
        if limit is None:
            return
        kind = type(value)
        # Short strings and small numbers inline (the hot path); anything else through `rough_bytes`.
        if kind is str:
            if len(value) > limit:  # over on its own: no need to serialize it
                self.exceeded = PACKET_BYTES
                raise BudgetExceeded(PACKET_BYTES, f"a value grew past the packet_bytes budget ({limit} bytes)")
            self.bound += 6 * len(value) + 2
        elif (kind is int and -(1 << 64) < value < (1 << 64)) or kind is float or kind is bool or value is None:
            self.bound += 24
        else:
            self.bound += rough_bytes(value)
        if self.bound > limit:
            self.measure(packet)

    def grew(self, packet: dict, nbytes: int) -> None:
        """The packet grew by at most `nbytes`; same check as `wrote`."""
        if self.limit is not None:
            self.bound += nbytes
            if self.bound > self.limit:
                self.measure(packet)

    def measure(self, packet: dict) -> None:
        """Measure the packet exactly (the bound passed the limit): fail over the limit, else tighten the bound."""
        assert self.limit is not None
        try:
            exact = json_bytes(packet)
        except BudgetExceeded as exc:
            self.exceeded = exc.budget
            raise
        if exact > self.limit:
            self.exceeded = PACKET_BYTES
            raise BudgetExceeded(PACKET_BYTES, f"the packet grew past the packet_bytes budget ({self.limit} bytes)")
        self.bound = exact


Apply = Callable[[dict, RunState], None]


def truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, and empty strings, lists and objects are false; 0 is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True


EVALUATION_ERRORS = (JMESPathError, TypeError, ValueError)  # ordering a string against a number: TypeError


def expression_failed(compiled: Any, exc: Exception) -> StepError | BudgetExceeded:
    """The step error for an expression that could not be evaluated on this packet.

    A result past the expression limits (`ExpressionError`: integer digits, non-finite numbers) is a budget:
    the run fails naming it, whatever the step's `on_error`.
    """
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, ExpressionError):
        return BudgetExceeded(exc.budget, f"expression {compiled.expression!r} went over its limits: {first}")
    return StepError(f"expression {compiled.expression!r} failed: {first}")


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

    @classmethod
    def reads(cls, config: dict) -> frozenset[str]:
        """Config namespaces a step with this (valid) config reads; runs are authorized for them."""
        return frozenset()

    @classmethod
    def chains(cls, config: dict) -> frozenset[str]:
        """Slugs of the pipelines a step with this (valid) config may chain the packet into."""
        return frozenset()


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
