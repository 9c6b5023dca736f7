"""Pipelines and steps: packets, sent, errors, drops and latency per minute, from `pipelines.StepStats` totals."""

from __future__ import annotations

import bisect
from datetime import UTC, datetime

from monitoring.conf import LATENCY_BOUNDS_MS
from monitoring.points import Agg
from monitoring.sources.base import Points, Sampler
from monitoring.sources.cursors import cursors_swap, difference

COUNTERS = ("received", "sent", "dropped", "errors", "skipped", "latency_sum_ms", "latency_count")


def _mapped_histogram(buckets: list[int], old: list[int]) -> list[int] | None:
    """The pipeline's per-bucket latency counts (Prometheus bounds) since the last sample, on our bounds."""
    from pipelines.stats import BUCKET_BOUNDS_MS

    delta = [max(0, a - (old[i] if i < len(old) else 0)) for i, a in enumerate(buckets)]
    if not any(delta):
        return None
    out = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    for index, count in enumerate(delta):
        # Their bucket `index` holds values up to BUCKET_BOUNDS_MS[index]: ours with that upper bound.
        position = (
            len(LATENCY_BOUNDS_MS)
            if index >= len(BUCKET_BOUNDS_MS)
            else bisect.bisect_left(LATENCY_BOUNDS_MS, BUCKET_BOUNDS_MS[index])
        )
        out[position] += count
    return out


class PipelinesSampler(Sampler):
    """`pipeline:<slug>:packets` and `step:<slug>/<step>:packets`: count = packets received, breakdown by outcome."""

    name = "pipelines"

    def sample(self, *, now: datetime) -> Points:
        from pipelines.models import StepStats

        bucket = now.astimezone(UTC).replace(second=0, microsecond=0)
        current = {}
        for slug, step, *values, buckets in StepStats.objects.values_list(
            "pipeline__slug", "step", *COUNTERS, "latency_buckets"
        ):
            key = ("step", f"{slug}/{step}", "packets") if step else ("pipeline", slug, "packets")
            current[key] = {**dict(zip(COUNTERS, values, strict=True)), "buckets": list(buckets or [])}
        previous = cursors_swap(current)
        points: Points = {}
        for key, values in current.items():
            old = previous.get(key)
            delta = difference(values, old, COUNTERS)
            if not delta or not any(delta.values()):
                continue
            reset = old is None or delta["received"] == values["received"]
            agg = Agg(count=int(delta["received"]), total=delta["latency_sum_ms"])
            for label in ("sent", "dropped", "errors", "skipped"):
                if delta[label]:
                    agg.add(label, delta[label])
            agg.histogram = _mapped_histogram(values["buckets"], [] if reset else list(old.get("buckets") or []))
            points[(key, bucket)] = agg
        return points
