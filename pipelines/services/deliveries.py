"""Deliveries of routed packets to registered services: create (on commit queued), attempt, retry, give up.

A delivery POSTs the packet as JSON to a passing instance of the service through the egress guard. Rows
are the source of truth: the task is queued after commit, retries are scheduled with backoff, and a beat
sweep picks up any pending row whose retry is due, so a lost broker message delays but never loses one.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from controlplane.egress import EgressDenied, Purpose, guarded_request
from controlplane.events.services import emit
from pipelines import metrics
from pipelines.conf import delivery_backoff_seconds, delivery_max_attempts, delivery_timeout_seconds
from pipelines.models import Delivery, DeliveryStatus

logger = logging.getLogger("pipelines.deliveries")
CLAIM_SECONDS = 60


def deliveries_create(plan: list[tuple[int, str, dict, int | None]], *, request_id: str = "") -> list[Delivery]:
    """Create pending deliveries `(pipeline id, service, packet, run id)` and queue them once committed."""
    now = timezone.now()
    created = Delivery.objects.bulk_create(
        [
            Delivery(
                pipeline_id=pid,
                service=service,
                packet=packet,
                run_id=run_id,
                next_attempt_at=now,
                request_id=request_id,
            )
            for pid, service, packet, run_id in plan
        ]
    )
    ids = [delivery.pk for delivery in created]

    def queue() -> None:
        from pipelines.tasks import deliver_task

        for delivery_id in ids:
            try:
                deliver_task.delay(delivery_id)
            except Exception:  # noqa: BLE001 - the sweep retries rows whose message never left
                logger.warning("Could not queue delivery %s; the sweep will pick it up", delivery_id, exc_info=True)

    transaction.on_commit(queue)
    return created


def _claim(delivery_id: int) -> bool:
    now = timezone.now()
    return bool(
        Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
    )


def delivery_backoff(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: base, 2x, 4x ... capped at ten minutes."""
    return min(delivery_backoff_seconds() * 2 ** max(attempts - 1, 0), 600.0)


def delivery_attempt(*, delivery_id: int) -> tuple[str, float | None] | None:
    """Try one delivery now; returns (status, retry in seconds or None), or None when not ours to send."""
    from registry.selectors import instances_for_delivery

    if not _claim(delivery_id):
        return None
    delivery = Delivery.objects.select_related("pipeline").get(pk=delivery_id)
    instances = instances_for_delivery(delivery.service)
    error, status_code, url = "", None, ""
    if not instances:
        error = f"no passing instance of service {delivery.service!r}"
    else:
        instance = instances[delivery.attempts % len(instances)]  # rotate through instances on retries
        url = instance.url + str((instance.metadata or {}).get("pipeline_path") or "/")
        body = json.dumps(delivery.packet, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "controlplane-pipelines/1",
            "X-Controlplane-Pipeline": delivery.pipeline.slug,
            "X-Controlplane-Delivery": str(delivery.pk),
            "X-Request-ID": delivery.request_id,
        }
        try:
            response = guarded_request(
                "POST",
                url,
                purpose=Purpose.DELIVERY,
                body=body,
                headers=headers,
                timeout=delivery_timeout_seconds(),
                max_bytes=4096,
            )
            status_code = response.status
            if not 200 <= response.status < 300:
                error = f"HTTP {response.status}"
        except EgressDenied as exc:
            error = f"egress denied: {exc}"
        except Exception as exc:  # noqa: BLE001 - any network failure is a failed attempt, recorded below
            error = f"{type(exc).__name__}: {exc}"[:1000]

    now = timezone.now()
    delivery.attempts += 1
    delivery.last_status_code = status_code
    delivery.last_error = error
    delivery.instance_url = url[:500]
    delivery.claimed_until = None
    retry_in: float | None = None
    with transaction.atomic():
        if not error:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
        elif delivery.attempts >= delivery_max_attempts() or error.startswith("egress denied"):
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            logger.warning("Delivery %s to %s failed for good: %s", delivery.pk, delivery.service, error)
            emit(
                "pipeline.delivery_failed",
                subject=delivery.pipeline.slug,
                data={
                    "delivery_id": delivery.pk,
                    "service": delivery.service,
                    "attempts": delivery.attempts,
                    "error": error[:500],
                },
            )
        else:
            retry_in = delivery_backoff(delivery.attempts)
            delivery.next_attempt_at = now + timedelta(seconds=retry_in)
        delivery.save()
    metrics.DELIVERIES.labels(
        delivery.pipeline.slug, "delivered" if not error else "failed" if retry_in is None else "retry"
    ).inc()
    return delivery.status, retry_in
