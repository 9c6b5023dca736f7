"""Roll-ups raw -> 1 minute -> 1 hour -> 1 day, and retention.

Each level has a watermark: every bucket before it is final. A run recomputes whole buckets from the level
below (minutes from the source rows of `monitoring.sources`) and replaces them, then moves the watermark,
in one transaction per chunk. So a second run changes nothing, two runs at once serialize on the watermark
row, and after downtime a run simply continues from the watermark (within a time budget; the next run goes
on) without counting anything twice.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from monitoring import conf
from monitoring.models import MetricPoint, Resolution, RollupWatermark
from monitoring.points import Agg, ceil_time, floor_time
from monitoring.selectors.maintenance import maintenance_map
from monitoring.services.maintenance import maintenance_flags_sync
from monitoring.services.metrics import points_add, points_replace, points_replace_by_id, watermark_get, watermark_set
from monitoring.sources import MINUTE_SOURCES, SAMPLERS

logger = logging.getLogger("monitoring.rollups")
WATERMARKS = {Resolution.MINUTE: "minute", Resolution.HOUR: "hour", Resolution.DAY: "day"}
# Source buckets folded per transaction for the coarser levels.
CHUNK = {Resolution.HOUR: timedelta(hours=6), Resolution.DAY: timedelta(days=2)}


def minute_target(now: datetime) -> datetime:
    """The minute watermark a run may reach at `now`: minutes that ended at least the settle delay ago."""
    return floor_time(now - timedelta(seconds=conf.get("MONITORING_ROLLUP_SETTLE_SECONDS")), Resolution.MINUTE)


def _ensure_watermark(name: str, initial: datetime) -> None:
    # Created before anything locks it, so two first runs cannot both insert it.
    RollupWatermark.objects.get_or_create(name=name, defaults={"position": initial})


def rollup_minutes(*, now: datetime | None = None, deadline: float | None = None) -> int:
    """Recompute minute points from the sources up to `minute_target(now)`; returns minutes done."""
    now = now or timezone.now()
    target = minute_target(now)
    first = floor_time(now - timedelta(hours=conf.get("MONITORING_ROLLUP_FIRST_RUN_HOURS")), Resolution.MINUTE)
    _ensure_watermark("minute", first)
    chunk = timedelta(minutes=conf.get("MONITORING_ROLLUP_CHUNK_MINUTES"))
    done = 0
    while True:
        with transaction.atomic():
            position = watermark_get(name="minute", lock=True)
            assert position is not None  # noqa: S101 - ensured above
            if position >= target:
                return done
            end = min(position + chunk, target)
            maintenance = maintenance_map(position, end)
            points = {}
            for source in MINUTE_SOURCES.values():
                points.update(source().collect(start=position, end=end, maintenance=maintenance))
            points_replace(resolution=Resolution.MINUTE, points=points)
            watermark_set(name="minute", position=end)
        done += int((end - position).total_seconds() // 60)
        if deadline is not None and time.monotonic() > deadline:
            return done


def rollup_level(*, resolution: int, deadline: float | None = None) -> int:
    """Recompute points of `resolution` (hour or day) from the finer level, up to its watermark."""
    finer = Resolution.MINUTE if resolution == Resolution.HOUR else Resolution.HOUR
    upstream = watermark_get(name=WATERMARKS[finer])
    if upstream is None:
        return 0
    target = floor_time(upstream, resolution)
    name = WATERMARKS[resolution]
    if watermark_get(name=name) is None:
        earliest = MetricPoint.objects.filter(resolution=finer).order_by("bucket").values_list("bucket", flat=True)
        first = earliest.first()
        _ensure_watermark(name, floor_time(first, resolution) if first else target)
    done = 0
    while True:
        with transaction.atomic():
            position = watermark_get(name=name, lock=True)
            assert position is not None  # noqa: S101 - ensured above
            if position >= target:
                return done
            end = min(position + CHUNK[resolution], target)
            merged: dict[tuple[int, datetime], Agg] = {}
            rows = (
                MetricPoint.objects.in_range(resolution=finer, start=position, end=end)
                .order_by()
                .values_list("series_id", "bucket", "count", "total", "min", "max", "histogram", "breakdown")
            )
            for series_id, bucket, *fields in rows.iterator(chunk_size=5000):
                key = (series_id, floor_time(bucket, resolution))
                agg = merged.get(key)
                if agg is None:
                    merged[key] = Agg.from_row(*fields)
                else:
                    agg.merge(Agg.from_row(*fields))
            points_replace_by_id(resolution=resolution, points=merged)
            watermark_set(name=name, position=end)
        done += int((end - position).total_seconds() // resolution)
        if deadline is not None and time.monotonic() > deadline:
            return done


def samples_record(*, now: datetime | None = None) -> int:
    """Store what the samplers (counters and gauges of other apps) report, in the current minute."""
    now = now or timezone.now()
    points = {}
    for sampler in SAMPLERS.values():
        try:
            # Each sampler in its own savepoint: its cursors move only together with its points.
            with transaction.atomic():
                found = sampler().sample(now=now)
                points_add(resolution=Resolution.MINUTE, points=found)
            points.update(found)
        except Exception:  # noqa: BLE001 - one unreadable source (broker down) must not stop the others
            logger.warning("Sampler %s failed", sampler.name, exc_info=True)
    return len(points)


def rollups_run(*, now: datetime | None = None) -> dict[str, int]:
    """One beat tick: sync the registry's maintenance flags, sample, then roll every level up."""
    now = now or timezone.now()
    deadline = time.monotonic() + conf.get("MONITORING_ROLLUP_BUDGET_SECONDS")
    maintenance_flags_sync(now=now)
    sampled = samples_record(now=now)
    minutes = rollup_minutes(now=now, deadline=deadline)
    hours = rollup_level(resolution=Resolution.HOUR, deadline=deadline)
    days = rollup_level(resolution=Resolution.DAY, deadline=deadline)
    return {"sampled": sampled, "minutes": minutes, "hours": hours, "days": days}


def points_prune(*, now: datetime | None = None) -> int:
    """Apply retention per level (MONITORING_*_RETENTION_*); returns points deleted."""
    now = now or timezone.now()
    limits = {
        Resolution.MINUTE: timedelta(hours=conf.get("MONITORING_MINUTE_RETENTION_HOURS")),
        Resolution.HOUR: timedelta(days=conf.get("MONITORING_HOUR_RETENTION_DAYS")),
        Resolution.DAY: timedelta(days=conf.get("MONITORING_DAY_RETENTION_DAYS")),
    }
    deleted = 0
    for resolution, keep in limits.items():
        # Whole buckets only: a bucket is kept while any part of it is inside the retention.
        cutoff = ceil_time(now - keep, resolution) - timedelta(seconds=resolution)
        count, _ = MetricPoint.objects.filter(resolution=resolution, bucket__lt=cutoff).delete()
        deleted += count
    return deleted
