"""Maintenance lists of the dashboard: paginated and searchable on the server, whatever the number of windows.

One-off windows are the ones that grow with the fleet (the registry's maintenance flag makes one per instance),
so "in effect now" is decided for them in SQL and only one page is read. Recurring windows are written by
operators, few, and only their expansion in their own time zone can tell whether one is running now: those
are read (the ones the search matches) and expanded, then put before the one-offs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Q, QuerySet
from django.utils import timezone

from monitoring.models import MaintenanceKind, MaintenanceWindow
from monitoring.selectors.maintenance import window_intervals

OVERVIEW_PAGE_SIZE = 10


def _search(queryset: QuerySet[MaintenanceWindow], search: str) -> QuerySet[MaintenanceWindow]:
    if not search:
        return queryset
    return queryset.filter(
        Q(name__icontains=search) | Q(service__name__icontains=search) | Q(instance__instance_id__icontains=search)
    )


class _RecurringThenOneOff:
    """A sequence for Paginator: the running recurring windows (a list), then a queryset of one-offs.

    Paginator only counts it and slices it, so a page reads at most one slice of the one-offs.
    """

    ordered = True

    def __init__(self, head: list[MaintenanceWindow], tail: QuerySet[MaintenanceWindow]) -> None:
        self.head = head
        self.tail = tail

    def count(self) -> int:
        return len(self.head) + self.tail.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, item: slice) -> list[MaintenanceWindow]:
        start, stop = item.start or 0, item.stop
        rows = self.head[start:stop]
        wanted = None if stop is None else max(0, stop - max(start, len(self.head)))
        low = max(0, start - len(self.head))
        # The one-offs are read even when the page is full of recurring windows (one row then, dropped):
        # a page always costs the same queries, whatever the mix (tests/monitoring/test_dashboard_queries.py).
        tail = list(self.tail[low : None if wanted is None else low + max(wanted, 1)])
        return [*rows, *(tail if wanted is None else tail[:wanted])]


def maintenance_now(
    *, now: datetime | None = None, search: str = "", page: Any = 1, per_page: int = OVERVIEW_PAGE_SIZE
) -> Page:
    """Enabled windows in effect at `now`, searchable by name, service or instance (three or four queries)."""
    now = now or timezone.now()
    base = _search(MaintenanceWindow.objects.filter(enabled=True), search).select_related("service", "instance")
    recurring = [
        window
        for window in base.filter(kind=MaintenanceKind.RECURRING).overlapping(now, now + timedelta(microseconds=1))
        if window_intervals(window, now, now + timedelta(microseconds=1))
    ]
    recurring.sort(key=lambda window: (window.name, window.pk))
    one_off = (
        base.filter(kind=MaintenanceKind.ONE_OFF, starts_at__lte=now)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .order_by("starts_at", "id")
    )
    return Paginator(_RecurringThenOneOff(recurring, one_off), per_page).get_page(page)


def maintenance_page(
    *, now: datetime | None = None, horizon_days: int = 30, search: str = "", page: Any = 1, per_page: int = 25
) -> Page:
    """Enabled windows that are in effect or start within `horizon_days` (recurring ones while they run)."""
    now = now or timezone.now()
    queryset = _search(MaintenanceWindow.objects.overlapping(now, now + timedelta(days=horizon_days)), search)
    return Paginator(queryset.select_related("service", "instance").order_by("starts_at", "id"), per_page).get_page(
        page
    )
