"""The pure executor: a pipeline version compiled once into a list of callables, then packets run through it.

Plain data in, plain data out: no ORM, no I/O, no Django settings — so it runs in the web process, the
worker, a benchmark or a test alike. The only outside data (config values for `enrich`) arrives through the
`lookup` callable the caller passes. Compiled pipelines are cached per process by (pipeline id, version);
a version is immutable, so a run always sees one consistent definition even while it is being edited.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from jmespath.exceptions import JMESPathError

from pipelines.budget import RUN_SECONDS, Budget, BudgetExceeded, json_bytes
from pipelines.expressions import ExpressionError, compile_expression
from pipelines.fastrun import LATE, generate_fast_run
from pipelines.paths import copy_json
from pipelines.steps import STEP_KINDS, DropPacket, RunState, StepError
from pipelines.steps.base import Apply, _no_lookup, truthy

SUCCEEDED, FAILED, DROPPED = "succeeded", "failed", "dropped"
_NO_DEADLINE = float("inf")
PACKET_KEYS = ("id", "payload", "metadata", "tags")


class PacketError(ValueError):
    """The packet does not have the packet shape; `errors` maps field -> messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def prepare_packet(raw: Any, *, generate_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> dict:
    """Check a packet `{id?, payload, metadata?, tags?}` and fill the defaults; raises PacketError."""
    if not isinstance(raw, dict):
        raise PacketError({"non_field_errors": ["A packet is a JSON object {id?, payload, metadata?, tags?}."]})
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(raw) - set(PACKET_KEYS))
    if unknown:
        errors["non_field_errors"] = [f"Unknown packet field(s): {', '.join(unknown)}; payload goes under `payload`."]
    packet_id = raw.get("id")
    if packet_id is None:
        packet_id = generate_id()
    elif not isinstance(packet_id, str) or not 0 < len(packet_id) <= 200:
        errors["id"] = ["A non-empty string of at most 200 characters."]
    metadata = raw.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        errors["metadata"] = ["An object."]
    tags = raw.get("tags", [])
    if tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        errors["tags"] = ["A list of strings."]
    if errors:
        raise PacketError(errors)
    return {"id": packet_id, "payload": raw.get("payload"), "metadata": metadata, "tags": tags}


class RunResult:
    """The outcome of one packet: status, the packet as it left, routes, per-step log, errors.

    `log` holds one tuple per step reached, `(step, ran, seconds, error, outcome[, before, after])`; the
    dict form (`trace`) is built only when someone reads it, so batch runs without traces never pay for it.
    `budget` names the budget a failed run went over (empty otherwise); `size` is an upper bound of the
    output packet's JSON size when the run had a size budget.
    """

    __slots__ = (
        "status",
        "packet",
        "routes",
        "log",
        "pipeline_version",
        "duration_ms",
        "error",
        "errors",
        "budget",
        "size",
        "_trace",
    )

    def __init__(
        self,
        status: str,
        packet: dict,
        routes: list[str],
        log: list[tuple],
        pipeline_version: int,
        duration_ms: float,
        error: str = "",
        errors: list[str] | None = None,
        budget: str = "",
        size: int | None = None,
    ) -> None:
        self.status = status
        self.packet = packet
        self.routes = routes
        self.log = log
        self.pipeline_version = pipeline_version
        self.duration_ms = duration_ms
        self.error = error
        self.errors = errors if errors is not None else []
        self.budget = budget
        self.size = size
        self._trace: list[dict[str, Any]] | None = None

    @property
    def trace(self) -> list[dict[str, Any]]:
        if self._trace is None:
            self._trace = self._build_trace()
        return self._trace

    def _build_trace(self) -> list[dict[str, Any]]:
        entries = []
        for item in self.log:
            entry = {
                "step": item[0],
                "ran": item[1],
                "duration_ms": round(item[2] * 1000, 4),
                "error": item[3],
                "outcome": item[4],
            }
            if len(item) > 5:
                entry["before"], entry["after"] = item[5], item[6]
            entries.append(entry)
        return entries

    def as_dict(self, *, trace: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "packet": self.packet,
            "routes": self.routes,
            "pipeline_version": self.pipeline_version,
            "duration_ms": round(self.duration_ms, 4),
        }
        if trace:
            body["trace"] = self.trace
        if self.error:
            body["error"] = self.error
            body["errors"] = self.errors
        if self.budget:
            body["budget"] = self.budget
        return body


@dataclass(frozen=True)
class CompiledStep:
    """One step ready to run."""

    name: str
    kind: str
    condition: Any
    apply: Apply
    skip_on_error: bool


class CompiledPipeline:
    """A pipeline version as a list of compiled steps.

    `reads` are the config namespaces its enabled steps read and `chains` the pipelines they may route the
    packet into: what a run of it must be authorized for (with the pipelines it chains into).
    """

    def __init__(
        self,
        *,
        pipeline_id: int | None,
        slug: str,
        version: int,
        error_policy: str,
        steps: list[CompiledStep],
        reads: frozenset[str] = frozenset(),
        chains: frozenset[str] = frozenset(),
    ):
        self.pipeline_id = pipeline_id
        self.slug = slug
        self.version = version
        self.continue_on_error = error_policy == "continue"
        self.steps = steps
        self.step_names = [step.name for step in steps]
        self.reads = reads
        self.chains = chains
        # The common case (stop on error, no step skipping its errors) runs as generated straight-line code.
        self._fast = None if self.continue_on_error or any(s.skip_on_error for s in steps) else generate_fast_run(steps)

    def run(
        self,
        packet: dict,
        *,
        lookup: Callable[[str, str], Any] = _no_lookup,
        capture: bool = False,
        copy: bool = True,
        budget: Budget | None = None,
        size: int | None = None,
    ) -> RunResult:
        """Run one prepared packet (see `prepare_packet`). `copy=False` lets the run own and change `packet`.

        `capture=True` records the packet before and after each step in the trace (dry runs). `budget`
        (started) bounds the packet's size after every step and the wall clock; `size` is the input's
        JSON size when the caller knows it (measured here otherwise).
        """
        if copy:
            packet = copy_json(packet)
        started = perf_counter()
        log: list[tuple] = []
        errors: list[str] = []
        first_error = ""
        if budget is None:
            state, deadline = RunState(lookup), _NO_DEADLINE
        else:
            deadline = budget.deadline
            try:
                size = json_bytes(packet) if size is None else size
            except BudgetExceeded as exc:
                state = RunState(lookup)
                state.exceeded = exc.budget
                return self._finish(FAILED, packet, state, log, started, f"the packet is refused: {exc}", [str(exc)])
            state = RunState(lookup, limit=budget.max_packet_bytes, size=size)
        if self._fast is not None and not capture:
            status, message, messages = self._fast(packet, state, log, deadline)
            if status == SUCCEEDED:
                shape = _shape_error(packet)
                if not shape:
                    return RunResult(
                        SUCCEEDED,
                        packet,
                        state.routes,
                        log,
                        self.version,
                        (perf_counter() - started) * 1000,
                        size=state.bound if budget is not None else None,
                    )
            elif status == LATE:
                status, state.exceeded = FAILED, RUN_SECONDS
                message = _late_message(budget)
                errors = [f"{log[-1][0]}: {message}"]
                first_error = f"step {log[-1][0]!r} failed: {message}"
            elif status == FAILED:
                name = log[-1][0]
                errors = [f"{name}: {m}" for m in (messages or [message])]
                first_error = f"step {name!r} failed: {message}"
            return self._finish(status, packet, state, log, started, first_error, errors)
        status = SUCCEEDED
        guard_all = self.continue_on_error or capture
        for step in self.steps:
            condition_error = ""
            if step.condition is not None:
                try:
                    run_it = truthy(step.condition.search(packet))
                except (JMESPathError, TypeError, ValueError) as exc:  # e.g. `'a' > 1` raises TypeError
                    run_it, condition_error = False, f"condition failed: {str(exc).splitlines()[0]}"
                    if isinstance(exc, ExpressionError):
                        state.exceeded = exc.budget
                if not run_it and not condition_error:
                    if capture:
                        snapshot = copy_json(packet)
                        log.append((step.name, False, 0.0, None, "skipped", snapshot, snapshot))
                    else:
                        log.append((step.name, False, 0.0, None, "skipped"))
                    continue
            before = copy_json(packet) if guard_all or step.skip_on_error else None
            error, error_list, outcome = condition_error, None, "ok"
            t0 = perf_counter()
            if not error:
                try:
                    step.apply(packet, state)
                except DropPacket:
                    outcome = "dropped"
                except StepError as exc:
                    error, error_list = str(exc), exc.errors
                except BudgetExceeded as exc:
                    error, state.exceeded = str(exc), exc.budget
                except RecursionError:
                    error = "the packet nests too deeply for this step"
                except Exception as exc:  # noqa: BLE001 - a faulty step fails its packet, never the caller
                    error = f"{type(exc).__name__}: {exc}"
            now = perf_counter()
            seconds = now - t0
            if not error and now > deadline:
                error, state.exceeded = _late_message(budget), RUN_SECONDS
            if error:
                outcome = "error"
                if before is not None:
                    packet = before  # a failed step leaves no half-applied changes behind
                    before = copy_json(before) if capture else None
            if capture:
                log.append((step.name, True, seconds, error or None, outcome, before, copy_json(packet)))
            else:
                log.append((step.name, True, seconds, error or None, outcome))
            if outcome == "dropped":
                status = DROPPED
                break
            if error:
                if step.skip_on_error and not state.exceeded:
                    continue
                status = FAILED
                errors.extend(f"{step.name}: {message}" for message in (error_list or [error]))
                first_error = first_error or f"step {step.name!r} failed: {error}"
                if not self.continue_on_error or state.exceeded:  # a budget ends the run whatever the policy
                    break
        return self._finish(status, packet, state, log, started, first_error, errors)

    def _finish(
        self, status: str, packet: dict, state: RunState, log: list, started: float, first_error: str, errors: list[str]
    ) -> RunResult:
        if status == SUCCEEDED:
            shape = _shape_error(packet)
            if shape:
                status, first_error, errors = FAILED, shape, [shape]
        return RunResult(
            status=status,
            packet=packet,
            routes=[] if status == DROPPED else state.routes,
            log=log,
            pipeline_version=self.version,
            duration_ms=(perf_counter() - started) * 1000,
            error=first_error,
            errors=errors,
            budget=state.exceeded if status == FAILED else "",
            size=state.bound if state.limit is not None else None,
        )


def _late_message(budget: Budget | None) -> str:
    seconds = f" ({budget.max_seconds:g} s)" if budget is not None else ""
    return f"the run_seconds budget{seconds} ran out after this step"


def _shape_error(packet: dict) -> str:
    if not isinstance(packet.get("metadata"), dict):
        return "the packet's metadata is no longer an object"
    tags = packet.get("tags")
    if type(tags) is not list or any(type(t) is not str for t in tags):
        return "the packet's tags are no longer a list of strings"
    return ""


def validate_steps(steps: Any, *, max_steps: int = 100) -> dict[str, list[str]]:
    """Every problem in a list of step definitions, keyed `steps.<index>.<field>` with the step named."""
    if not isinstance(steps, list):
        return {"steps": ["A list of steps."]}
    if len(steps) > max_steps:
        return {"steps": [f"At most {max_steps} steps."]}
    errors: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            errors[f"steps.{index}"] = ["A step is an object."]
            continue
        name = step.get("name")
        label = f"step {name!r}" if isinstance(name, str) and name else f"step #{index + 1}"

        def add(field_name: str, message: str, index: int = index, label: str = label) -> None:
            errors.setdefault(f"steps.{index}.{field_name}", []).append(f"{label}: {message}")

        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            add("name", "a name of 1 to 100 characters is required.")
        elif name in seen:
            add("name", f"duplicate step name (also step #{seen[name] + 1}).")
        else:
            seen[name] = index
        kind = step.get("kind")
        if kind not in STEP_KINDS:
            add("kind", f"unknown kind {kind!r}; known: {', '.join(STEP_KINDS)}.")
        elif "config" not in step or not isinstance(step.get("config"), dict):
            add("config", "config must be an object.")
        else:
            for message in STEP_KINDS[kind].validate(step["config"]):
                add("config", message)
        condition = step.get("condition")
        if condition not in (None, ""):
            try:
                compile_expression(condition)
            except ValueError as exc:
                add("condition", str(exc))
        if step.get("on_error", "fail") not in ("fail", "skip"):
            add("on_error", "fail or skip.")
        priority = step.get("priority", 100)
        if not isinstance(priority, int) or isinstance(priority, bool) or not -1_000_000 <= priority <= 1_000_000:
            add("priority", "an integer (lower runs first).")
        if not isinstance(step.get("enabled", True), bool):
            add("enabled", "true or false.")
    return errors


def compile_pipeline(definition: dict) -> CompiledPipeline:
    """Compile a plain definition `{id, slug, version, error_policy, steps: [...]}`.

    Steps run by priority (lower first), ties by their position in `steps` (creation order); disabled
    steps are left out. Raises ValueError for an invalid definition.
    """
    problems = validate_steps(definition.get("steps", []), max_steps=10_000)
    if problems:
        raise ValueError("; ".join(m for messages in problems.values() for m in messages))
    ordered = sorted(enumerate(definition.get("steps", [])), key=lambda item: (item[1].get("priority", 100), item[0]))
    enabled = [step for _, step in ordered if step.get("enabled", True)]
    compiled = [
        CompiledStep(
            name=step["name"],
            kind=step["kind"],
            condition=compile_expression(step["condition"]) if step.get("condition") else None,
            apply=STEP_KINDS[step["kind"]].compile(step["config"]),
            skip_on_error=step.get("on_error", "fail") == "skip",
        )
        for step in enabled
    ]
    return CompiledPipeline(
        pipeline_id=definition.get("id"),
        slug=definition.get("slug", ""),
        version=int(definition.get("version", 0)),
        error_policy=definition.get("error_policy", "stop"),
        steps=compiled,
        reads=frozenset().union(*(STEP_KINDS[s["kind"]].reads(s["config"]) for s in enabled)),
        chains=frozenset().union(*(STEP_KINDS[s["kind"]].chains(s["config"]) for s in enabled)),
    )


class CompiledCache:
    """A small per-process LRU of compiled pipelines keyed by (pipeline id, version)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[tuple[int, int], CompiledPipeline] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int], load: Callable[[], dict]) -> CompiledPipeline:
        """The compiled pipeline for `key`, compiling `load()` on a miss."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        compiled = compile_pipeline(load())
        with self._lock:
            self._items[key] = compiled
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return compiled

    def forget(self, pipeline_id: int) -> None:
        """Drop every compiled version of one pipeline (it was deleted)."""
        with self._lock:
            for key in [k for k in self._items if k[0] == pipeline_id]:
                self._items.pop(key, None)

    def __contains__(self, key: tuple[int, int]) -> bool:
        return key in self._items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


compiled_pipelines = CompiledCache()
