"""The overview's service list: failing first by the worst instance, then by name, paginated and filtered in SQL."""

from __future__ import annotations

import pytest

from monitoring.selectors.dashboard import paginate, service_page, service_status
from monitoring.selectors.service_ranks import RankedServices
from registry.models import InstanceStatus
from tests.registry.factories import InstanceFactory, ServiceFactory

pytestmark = pytest.mark.django_db

S = InstanceStatus


@pytest.fixture
def fleet() -> dict[str, list[str]]:
    """name -> instance statuses; the expected order is critical, warning, unknown, passing, maintenance."""
    layout = {
        "a-maint-only": [S.MAINTENANCE],
        "b-pass-and-maint": [S.PASSING, S.MAINTENANCE],  # passing: a passing instance beats maintenance
        "c-critical": [S.PASSING, S.CRITICAL],  # the worst instance decides
        "d-no-instances": [],  # unknown
        "e-warning": [S.WARNING, S.PASSING, S.MAINTENANCE],
        "f-unknown": [S.UNKNOWN, S.PASSING],
        "g-passing": [S.PASSING, S.PASSING],
        "h-critical": [S.CRITICAL, S.WARNING],
    }
    for name, statuses in layout.items():
        service = ServiceFactory(name=name, owner="team-x" if name < "d" else "team-y")
        for index, status in enumerate(statuses):
            InstanceFactory(service=service, instance_id=f"i{index}", status=status)
    return layout


ORDER = [
    ("c-critical", "critical"),
    ("h-critical", "critical"),
    ("e-warning", "warning"),
    ("d-no-instances", "unknown"),
    ("f-unknown", "unknown"),
    ("b-pass-and-maint", "passing"),
    ("g-passing", "passing"),
    ("a-maint-only", "maintenance"),
]


def names(page) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(s.name, s.status_word) for s in page.object_list]


def test_failing_first_then_by_name_across_pages(fleet) -> None:  # type: ignore[no-untyped-def]
    everything = service_page(page=1)
    assert names(everything) == ORDER and everything.paginator.count == 8
    pages = [paginate(RankedServices(), n, per_page=3) for n in (1, 2, 3, 99)]
    for page in pages:
        for service in page.object_list:
            service.status_word = service_status(service)
    assert [row for page in pages[:3] for row in names(page)] == ORDER
    assert pages[0].paginator.num_pages == 3 and names(pages[3]) == names(pages[2])  # past the end: the last page
    critical = {s.name: s for s in everything.object_list}["c-critical"]
    assert (critical.instance_count, critical.passing_count, critical.critical_count) == (2, 1, 1)


@pytest.mark.parametrize("status", ["critical", "warning", "unknown", "passing", "maintenance"])
def test_a_status_filter_keeps_that_worst_status_only(fleet, status) -> None:  # type: ignore[no-untyped-def]
    page = service_page(status=status)
    expected = [row for row in ORDER if row[1] == status]
    assert names(page) == expected and page.paginator.count == len(expected)


def test_search_and_status_together(fleet) -> None:  # type: ignore[no-untyped-def]
    assert names(service_page(search="team-x")) == [("c-critical", "critical"), ("b-pass-and-maint", "passing"),
                                                    ("a-maint-only", "maintenance")]  # fmt: skip
    page = service_page(search="critical", status="critical")
    assert names(page) == [("c-critical", "critical"), ("h-critical", "critical")] and page.paginator.count == 2
    assert names(service_page(search="critical", status="passing")) == []
    assert service_page(search="nothing-like-this").paginator.count == 0


def test_counts_by_status_from_one_pass_over_instances(fleet) -> None:  # type: ignore[no-untyped-def]
    from monitoring.selectors.dashboard import check_figures, status_counts, workers_health
    from tests.registry.factories import CheckFactory

    CheckFactory(instance=InstanceFactory(service=ServiceFactory(name="z-checked"), status=S.PASSING), status="warning")
    counts = status_counts()
    assert counts["services"] == {"unknown": 2, "passing": 3, "warning": 1, "critical": 2, "maintenance": 1}
    assert counts["instances"] == {"unknown": 1, "passing": 7, "warning": 2, "critical": 2, "maintenance": 3}
    assert counts["checks"] == {"unknown": 0, "passing": 0, "warning": 1, "critical": 0}
    checks = check_figures()
    assert checks[0] == {"warning": 1} and status_counts(checks=checks[0]) == counts
    assert workers_health(checks=checks)[-1]["name"] == "newest check result"
