"""Running packets for real: the compiled pipeline, the config lookup, chained pipelines and metrics.

This is the impure shell around the pure executor: it reads definitions (cached), passes the enrichment
lookup in, follows `pipeline:<slug>` routes to chained pipelines (up to `PIPELINE_MAX_CHAIN_DEPTH`), counts
metrics, and lists `service:<name>` routes for delivery. It writes nothing; services persist what is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines import selectors
from pipelines.conf import max_chain_depth
from pipelines.enrichment import enrichment_cache
from pipelines.executor import FAILED, SUCCEEDED, RunResult
from pipelines.paths import copy_json
from pipelines.selectors import PipelineRef
from pipelines.stats import accumulator


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


def _failed(ref: PipelineRef, packet: dict, message: str) -> Outcome:
    result = RunResult(
        status=FAILED,
        packet=packet,
        routes=[],
        log=[],
        pipeline_version=ref.version,
        duration_ms=0.0,
        error=message,
        errors=[message],
    )
    return Outcome(ref=ref, result=result)


def run_packet(
    ref: PipelineRef,
    packet: dict,
    *,
    version: int | None = None,
    depth: int = 0,
    capture: bool = False,
    count: bool = True,
    copy: bool = True,
) -> Outcome:
    """Run a prepared packet through `ref` at `version` (default: the current one) and its chains.

    `capture` adds before/after packets to the trace (dry run); `count=False` leaves metrics alone.
    """
    compiled = selectors.compiled_pipeline(ref.id, version or ref.version)
    result = compiled.run(packet, lookup=enrichment_cache.lookup, capture=capture, copy=copy)
    if count:
        accumulator.record(ref.id, ref.slug, result)
    outcome = Outcome(ref=ref, result=result)
    if result.status != SUCCEEDED:
        return outcome
    for route in result.routes:
        if not route.startswith("pipeline:"):
            continue
        slug = route.split(":", 1)[1]
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
        else:
            outcome.chained.append(
                run_packet(target, result.packet, depth=depth + 1, capture=capture, count=count, copy=True)
            )
        outcome.chained[-1].entered = entered
    return outcome
