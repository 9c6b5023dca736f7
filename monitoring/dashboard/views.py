"""Dashboard pages: thin adapters over monitoring.selectors.dashboard and the monitoring services.

Access: an active staff user signed in through the admin (its login, throttle and session). Everything a
page shows is for operators; the public status page is a separate module with its own, narrow reads.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from monitoring import charts, live
from monitoring.dashboard.forms import MaintenanceForm, SilenceForm
from monitoring.models import AlertStatus
from monitoring.points import quantile
from monitoring.selectors import dashboard as reads


def _actor(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


def _search(request: HttpRequest, name: str = "q") -> str:
    return reads.clean_search(request.GET.get(name))


@staff_member_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    """Counts, failing services first (paginated, searchable), alerts, maintenance, activity, traffic, workers."""
    last_event = reads.last_event_id()  # before the data: a change in between is replayed, never missed
    status = request.GET.get("status", "")
    data = reads.overview(
        search=_search(request),
        status=status,
        page=request.GET.get("page"),
        flapping=request.GET.get("flapping_page"),
        maintenance=request.GET.get("maintenance_page"),
        maintenance_search=_search(request, "maintenance_q"),
    )
    data["last_event"] = last_event
    data.update(
        search=_search(request),
        status_filter=status,
        statuses=list(reads.RANKS),
        maintenance_search=_search(request, "maintenance_q"),
        query_extra=urlencode({"q": _search(request), "status": status}) + "&",
        maintenance_extra=urlencode({"maintenance_q": _search(request, "maintenance_q")}) + "&",
    )
    return render(request, "monitoring/overview.html", data)


@staff_member_required
@require_GET
def service_detail(request: HttpRequest, name: str) -> HttpResponse:
    """One service: instances and checks, latency chart, uptime windows, 90-day bar, transitions, alerts."""
    last_event = reads.last_event_id()
    search = _search(request)
    data = reads.service_detail(name=name, search=search, page=request.GET.get("page"))
    data.update(last_event=last_event, search=search, query_extra=urlencode({"q": search}) + "&")
    data["latency_svg"] = charts.latency_chart(data["latency"])
    data["bar_svg"] = charts.uptime_bar(data["days"])
    return render(request, "monitoring/service.html", data)


@staff_member_required
@require_GET
def pipeline_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "monitoring/pipelines.html",
        {
            "pipelines": reads.pipeline_page(search=_search(request), page=request.GET.get("page")),
            "search": _search(request),
        },
    )


@staff_member_required
@require_GET
def pipeline_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """Per step: packets, errors, drops and p95 latency over the last 24 hours."""
    data = reads.pipeline_detail(slug=slug)
    for row in data["steps"]:
        row["svg"] = charts.step_bars(
            [(agg.count, agg.breakdown.get("errors", 0), agg.breakdown.get("dropped", 0)) for _, agg in row["bins"]]
        )
        row["p95"] = [quantile(agg.histogram, 0.95) for _, agg in row["bins"]]
        row["p95_last"] = next((v for v in reversed(row["p95"]) if v is not None), None)
        row["latency_svg"] = charts.sparkline(row["p95"])
    return render(request, "monitoring/pipeline.html", data)


@staff_member_required
@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "monitoring/events.html",
        {"events": reads.event_page(search=_search(request), page=request.GET.get("page")), "search": _search(request)},
    )


@staff_member_required
@require_http_methods(["GET", "POST"])
def alerts(request: HttpRequest) -> HttpResponse:
    """Firing and pending alerts, silences and maintenance; POST creates a silence or a maintenance window."""
    silence_form = SilenceForm(prefix="silence", initial={"timezone": "UTC"})
    maintenance_form = MaintenanceForm(prefix="maintenance", initial={"timezone": "UTC"})
    status = 200
    if request.method == "POST":
        if request.POST.get("form") == "silence":
            silence_form = SilenceForm(request.POST, prefix="silence")
            if silence_form.is_valid() and _save(silence_form, _create_silence, request):
                messages.success(request, "Silence created.")
                return HttpResponseRedirect(reverse("dashboard:alerts"))
        elif request.POST.get("form") == "maintenance":
            maintenance_form = MaintenanceForm(request.POST, prefix="maintenance")
            if maintenance_form.is_valid() and _save(maintenance_form, _create_maintenance, request):
                messages.success(request, "Maintenance window scheduled.")
                return HttpResponseRedirect(reverse("dashboard:alerts"))
        status = 400  # the page again, with the field errors and nothing saved
    search = _search(request)
    context = {
        "last_event": reads.last_event_id(),  # before the lists: a change in between is replayed, never missed
        "search": search,
        "firing": reads.alert_page(statuses=(AlertStatus.FIRING,), search=search, page=request.GET.get("page")),
        "pending": reads.alert_page(
            statuses=(AlertStatus.PENDING,), search=search, page=request.GET.get("pending_page")
        ),
        "silences": reads.silence_page(search=_search(request, "silence_q"), page=request.GET.get("silence_page")),
        "maintenance": reads.maintenance_page(
            search=_search(request, "maintenance_q"), page=request.GET.get("maintenance_page")
        ),
        "maintenance_search": _search(request, "maintenance_q"),
        "maintenance_extra": urlencode({"maintenance_q": _search(request, "maintenance_q")}) + "&",
        "silence_search": _search(request, "silence_q"),
        "silence_extra": urlencode({"silence_q": _search(request, "silence_q")}) + "&",
        "query_extra": urlencode({"q": search}) + "&",
        "silence_form": silence_form,
        "maintenance_form": maintenance_form,
        "now": timezone.now(),
    }
    return render(request, "monitoring/alerts.html", context, status=status)


def _save(form: Any, create: Any, request: HttpRequest) -> bool:
    """Call the service; its validation errors become the form's (field errors when it names fields)."""
    try:
        create(form, _actor(request))
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form.add_error(None, exc.messages)
        return False
    return True


def _create_silence(form: SilenceForm, actor: str) -> None:
    from monitoring.services.silences import silence_create

    data = form.cleaned_data
    silence_create(
        matchers=data["matchers"],
        starts_at=data["starts_at"],
        ends_at=data["ends_at"],
        comment=data["comment"],
        actor=actor,
    )


def _create_maintenance(form: MaintenanceForm, actor: str) -> None:
    from monitoring.services.maintenance import maintenance_window_create

    maintenance_window_create(actor=actor, **form.window_fields())


def landing(request: HttpRequest) -> HttpResponse:
    """`/`: the dashboard for a signed-in staff user; anyone else signs in through the admin and lands there."""
    if request.user.is_active and request.user.is_staff:
        return HttpResponseRedirect(reverse("dashboard:overview"))
    if request.user.is_authenticated:
        return HttpResponseRedirect(reverse("admin:index"))  # the admin says what this account may not do
    return HttpResponseRedirect(f"{reverse('admin:login')}?{urlencode({'next': reverse('dashboard:overview')})}")


@never_cache
async def live_stream(request: HttpRequest) -> HttpResponse:
    """Server-sent events for open dashboard pages (ASGI only; under WSGI 204 sends the page to polling)."""
    user = await request.auser()
    if not (user.is_active and user.is_staff):
        return JsonResponse({"detail": "Staff sign-in required."}, status=403)
    if not isinstance(request, ASGIRequest):
        return HttpResponse(status=204)
    hub = live.LiveHub.for_running_loop()
    response = StreamingHttpResponse(live.stream(hub), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass events through as they come
    return response


@never_cache
@staff_member_required
@require_GET
def live_state(request: HttpRequest) -> JsonResponse:
    """The polling fallback: what changed after event `since` (the same payload the stream sends).

    Without `since` the answer is only the baseline (the newest event id). `since=0` is a real position: a
    page read while the event log was empty must still be told about event 1.
    """
    raw = request.GET.get("since")
    if raw is None or raw == "":
        return JsonResponse({"last_event": reads.last_event_id(), "changed": 0})
    try:
        since = max(0, int(raw))
    except ValueError:
        return JsonResponse({"errors": {"since": ["Give an event id (a whole number)."]}}, status=400)
    return JsonResponse(live.collect(since))
