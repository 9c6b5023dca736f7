"""Running packets for real: the compiled pipeline, the config lookup, chained pipelines and metrics.

This is the impure shell around the pure executor: it reads definitions (cached), passes the enrichment
lookup in (limited to the namespaces the run was authorized for, see `pipelines.access`), follows
`pipeline:<slug>` routes to chained pipelines (up to `PIPELINE_MAX_CHAIN_DEPTH`, within the request's
`chained_runs` and `run_seconds` budgets), counts metrics, and lists `service:<name>` routes for delivery.
It writes nothing; services persist what is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from pipelines import selectors
from pipelines.budget import CHAINED_RUNS, RUN_SECONDS, Budget
from pipelines.conf import max_chain_depth, run_budget
from pipelines.enrichment import enrichment_cache
from pipelines.executor import FAILED, SUCCEEDED, RunResult
from pipelines.paths import copy_json
from pipelines.selectors import PipelineRef
from pipelines.stats import accumulator
from pipelines.steps import StepError


@dataclass
class Outcome:
    """One packet through one pipeline, with the pipelines it was chained into."""

    ref: PipelineRef
    result: RunResult
    chained: list[Outcome] = field(default_factory=list)
    # The packet this link received, for chained links (the first link's input is the caller's).
    entered: dict | None = None

    @property
    def status(self) -> str:
        return self.result.status

    def deliveries(self) -> list[tuple[int, str, dict]]:
        """(pipeline id, service, packet) for every `service:` route of every succeeded run in the chain."""
        items: list[tuple[int, str, dict]] = []
        if self.result.status == SUCCEEDED:
            for route in self.result.routes:
                if route.startswith("service:"):
                    items.append((self.ref.id, route.split(":", 1)[1], self.result.packet))
        for child in self.chained:
            items.extend(child.deliveries())
        return items

    def over_budget(self) -> Outcome | None:
        """The first link of the chain that went over a budget (then the whole request delivers nothing)."""
        if self.result.budget:
            return self
        for child in self.chained:
            found = child.over_budget()
            if found is not None:
                return found
        return None

    def failures(self) -> list[Outcome]:
        """Every failed run in the chain (each is recorded)."""
        found = [self] if self.result.status == FAILED else []
        for child in self.chained:
            found.extend(child.failures())
        return found

    def as_dict(self, *, trace: bool = True) -> dict[str, Any]:
        body = self.result.as_dict(trace=trace)
        if self.chained:
            body["chained"] = [{"pipeline": child.ref.slug, **child.as_dict(trace=trace)} for child in self.chained]
        return body


def _failed(ref: PipelineRef, packet: dict, message: str, *, budget: str = "") -> Outcome:
    result = RunResult(
        status=FAILED,
        packet=packet,
        routes=[],
        log=[],
        pipeline_version=ref.version,
        duration_ms=0.0,
        error=message,
        errors=[message],
        budget=budget,
    )
    return Outcome(ref=ref, result=result)


def config_lookup(allowed: frozenset[str] | None) -> Callable[[str, str], Any]:
    """The enrichment lookup for a run authorized for `allowed` namespaces (None: any)."""
    if allowed is None:
        return enrichment_cache.lookup
    cached = enrichment_cache.lookup

    def lookup(namespace: str, key: str) -> Any:
        if namespace not in allowed:
            # A chained pipeline changed after the run was authorized: the run reads only what was checked.
            raise StepError(f"this run is not authorized to read config namespace {namespace!r}.")
        return cached(namespace, key)

    return lookup


class _Chain:
    """What the links of one packet's chain share: the budget, the lookup and the chained-run count."""

    __slots__ = ("budget", "lookup", "runs", "stopped")

    def __init__(self, budget: Budget, lookup: Callable[[str, str], Any]) -> None:
        self.budget = budget
        self.lookup = lookup
        self.runs = 0
        self.stopped = False


def run_packet(
    ref: PipelineRef,
    packet: dict,
    *,
    version: int | None = None,
    capture: bool = False,
    count: bool = True,
    copy: bool = True,
    budget: Budget | None = None,
    allowed: frozenset[str] | None = None,
) -> Outcome:
    """Run a prepared packet through `ref` at `version` (default: the current one) and its chains.

    `capture` adds before/after packets to the trace (dry run); `count=False` leaves metrics alone.
    `budget` (started; a fresh one from the settings by default) is shared by every link, and may be
    shared by several packets (a batch); `allowed` are the namespaces the run was authorized to read
    (None: any, for the trusted system). A link over budget ends the chain: see `Outcome.over_budget`.
    """
    chain = _Chain(budget or run_budget(), config_lookup(allowed))
    return _run_link(chain, ref, packet, version=version, depth=0, capture=capture, count=count, copy=copy)


def _run_link(
    chain: _Chain,
    ref: PipelineRef,
    packet: dict,
    *,
    version: int | None,
    depth: int,
    capture: bool,
    count: bool,
    copy: bool,
    size: int | None = None,
) -> Outcome:
    compiled = selectors.compiled_pipeline(ref.id, version or ref.version)
    result = compiled.run(packet, lookup=chain.lookup, capture=capture, copy=copy, budget=chain.budget, size=size)
    if count:
        accumulator.record(ref.id, ref.slug, result)
    outcome = Outcome(ref=ref, result=result)
    if result.budget:
        chain.stopped = True
    if result.status != SUCCEEDED:
        return outcome
    for route in result.routes:
        if not route.startswith("pipeline:") or chain.stopped:
            continue
        slug = route.split(":", 1)[1]
        where = f"pipeline {ref.slug!r}, route {route!r}"
        # Every route followed counts, refused ones too: each costs a lookup and copies of the packet.
        if chain.runs >= chain.budget.max_chained_runs:
            chain.stopped = True
            message = f"{where}: the chained_runs budget ({chain.budget.max_chained_runs} per packet) is used up"
            unknown = PipelineRef(id=0, slug=slug, version=0, enabled=False)
            outcome.chained.append(_failed(unknown, {}, message, budget=CHAINED_RUNS))
            continue
        chain.runs += 1
        target = selectors.pipeline_ref(slug)
        placeholder = target or PipelineRef(id=0, slug=slug, version=0, enabled=False)
        entered = copy_json(result.packet)
        if depth + 1 >= max_chain_depth():
            outcome.chained.append(
                _failed(placeholder, copy_json(result.packet), f"chain depth limit ({max_chain_depth()}) reached")
            )
        elif target is None:
            outcome.chained.append(_failed(placeholder, copy_json(result.packet), f"no pipeline {slug!r}"))
        elif not target.enabled:
            outcome.chained.append(_failed(placeholder, copy_json(result.packet), f"pipeline {slug!r} is disabled"))
        elif perf_counter() > chain.budget.deadline:
            chain.stopped = True
            message = f"{where}: the run_seconds budget ({chain.budget.max_seconds:g} s) ran out"
            outcome.chained.append(_failed(placeholder, entered, message, budget=RUN_SECONDS))
        else:
            outcome.chained.append(
                _run_link(
                    chain,
                    target,
                    result.packet,
                    version=None,
                    depth=depth + 1,
                    capture=capture,
                    count=count,
                    copy=True,
                    size=result.size,
                )
            )
        outcome.chained[-1].entered = entered
    return outcome
