"""Deliveries of routed packets to registered services: created here, sent by the delivery engine.

A delivery POSTs the packet as JSON to a passing instance of the service (`pipelines.models.Delivery`
says what to send); claiming, the total deadline, retries with backoff and `pipeline.delivery_failed` are
the engine's (`controlplane.delivery.services`). Rows are the source of truth: the task is queued after
commit and the engine's sweep sends any pending row whose attempt is due.
"""

from __future__ import annotations

from django.utils import timezone

from controlplane.delivery.services import AttemptOutcome, deliveries_enqueue
from pipelines.models import Delivery


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
    deliveries_enqueue(kind=Delivery.delivery_kind, ids=[delivery.pk for delivery in created])
    return created


def delivery_attempt(*, delivery_id: int) -> AttemptOutcome | None:
    """Send one pipeline delivery now through the engine; None when another worker holds it or it is settled."""
    from controlplane.delivery.services import delivery_attempt as engine_attempt

    return engine_attempt(kind=Delivery.delivery_kind, delivery_id=delivery_id)
