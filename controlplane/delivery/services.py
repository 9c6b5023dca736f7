"""The one delivery service: claim, send within the total deadline, record, back off, emit the failure.

Guarantees (docs/operations.md, "Deliveries"):
- A claim is a conditional UPDATE that sets `claimed_until = now + deadline + DELIVERY_CLAIM_MARGIN_SECONDS`.
  The request cannot outlive its deadline (`transport.send`), so no second worker can claim, and send, a
  delivery whose attempt is still running. The outcome is written only while the row still carries this
  attempt's claim.
- Typed errors decide: `DeliveryDenied` (egress policy) is final; network, DNS, deadline, non-2xx and
  "no target yet" are retried with exponential backoff (kind's base, one cap for every kind) until the
  kind's `max_attempts`.
- Retries are rows, not queue messages: `next_attempt_at` is set and the sweep queues what is due.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from controlplane.delivery.errors import DeliveryError, DeliveryHTTPError
from controlplane.delivery.kinds import DELIVERY_KINDS, delivery_model
from controlplane.delivery.models import DeliveryStatus, OutboundDelivery
from controlplane.delivery.selectors import deliveries_due

logger = logging.getLogger("controlplane.delivery")


@dataclass(frozen=True)
class AttemptOutcome:
    """What one attempt ended in: the new status, the retry delay (None unless retrying) and the error."""

    status: str
    retry_in: float | None
    error: str = ""


def backoff_seconds(model: type[OutboundDelivery], attempts: int) -> float:
    """Delay after `attempts` failures: base, 2x, 4x ... capped at `DELIVERY_BACKOFF_CAP_SECONDS`."""
    return float(min(model.backoff_base_seconds() * 2 ** max(attempts - 1, 0), settings.DELIVERY_BACKOFF_CAP_SECONDS))


def _claim(model: type[OutboundDelivery], delivery_id: int) -> object | None:
    """Take the delivery with a conditional UPDATE; returns the claim (its `claimed_until`) or None."""
    now = timezone.now()
    until = now + timedelta(seconds=model.claim_seconds())
    taken = (
        model._default_manager.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        # A message that arrives before the backoff is over (the sweep and the creation both queued one,
        # or a redelivery) does not cut the backoff short.
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(claimed_until=until)
    )
    return until if taken else None


def delivery_attempt(*, kind: str, delivery_id: int) -> AttemptOutcome | None:
    """Send one delivery of `kind` now if it is pending and unclaimed; record the outcome.

    Returns None when another worker holds it, it is settled, or it no longer exists.
    """
    model = delivery_model(kind)
    claim = _claim(model, delivery_id)
    if claim is None:
        return None
    delivery = model._default_manager.select_related(*model.attempt_related).get(pk=delivery_id)
    error: DeliveryError | None = None
    status_code: int | None = None
    try:
        response = delivery.transmit(deadline=model.deadline_seconds())
        status_code = response.status
        if not 200 <= response.status < 300:
            error = DeliveryHTTPError(response.status)
    except DeliveryError as exc:
        error = exc
    return _record(delivery, claim=claim, error=error, status_code=status_code)


def _record(
    delivery: OutboundDelivery, *, claim: object, error: DeliveryError | None, status_code: int | None
) -> AttemptOutcome | None:
    model = type(delivery)
    now = timezone.now()
    attempts = delivery.attempts + 1
    message = str(error)[:1000] if error is not None else ""
    retry_in: float | None = None
    fields: dict[str, object] = {
        "attempts": attempts,
        "last_status_code": status_code,
        "last_error": message,
        "claimed_until": None,
        "queued_at": None,
        **delivery.attempt_fields(),
    }
    if error is None:
        fields.update(status=DeliveryStatus.DELIVERED, delivered_at=now, next_attempt_at=None)
    elif error.final or attempts >= model.max_attempts():
        fields.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    else:
        retry_in = backoff_seconds(model, attempts)
        fields.update(next_attempt_at=now + timedelta(seconds=retry_in))
    with transaction.atomic():
        # Only the holder of this claim writes: were it ever lost, the newer attempt's outcome stands.
        updated = model._default_manager.filter(pk=delivery.pk, claimed_until=claim).update(**fields)
        if not updated:
            logger.warning("%s delivery %s: claim lost before the outcome was stored", model.delivery_kind, delivery.pk)
            return None
        for name, value in fields.items():
            setattr(delivery, name, value)
        if delivery.status == DeliveryStatus.FAILED:
            logger.warning("%s delivery %s failed for good: %s", model.delivery_kind, delivery.pk, message)
            event = delivery.failed_event() if model.failed_event_kind else None
            if event is not None:
                from controlplane.events.services import emit

                subject, data = event
                emit(
                    model.failed_event_kind,
                    subject=subject,
                    data={
                        "delivery_kind": model.delivery_kind,
                        "delivery_id": delivery.pk,
                        "attempts": attempts,
                        "error": message[:500],
                        "error_type": type(error).__name__,
                        **data,
                    },
                )
    delivery.attempt_recorded(retrying=retry_in is not None)
    logger.info(
        "%s delivery %s to %s: %s (attempt %s)",
        model.delivery_kind,
        delivery.pk,
        delivery.target_label(),
        message or "delivered",
        attempts,
        extra={"delivery_status": delivery.status},
    )
    return AttemptOutcome(delivery.status, retry_in, message)


def deliveries_enqueue(*, kind: str, ids: list[int]) -> None:
    """Queue an attempt for each id once the caller's transaction commits; a broker outage loses nothing.

    The rows are the source of truth: a message that cannot be sent is sent later by the sweep.
    """
    if not ids:
        return

    def queue() -> None:
        from controlplane.delivery.tasks import deliver

        _mark_queued(delivery_model(kind), ids)
        for delivery_id in ids:
            try:
                deliver.delay(kind, delivery_id)
            except Exception:  # noqa: BLE001 - see docstring
                logger.warning("Could not queue %s delivery %s; the sweep will send it", kind, delivery_id)

    transaction.on_commit(queue)


def _mark_queued(model: type[OutboundDelivery], ids: list[int]) -> None:
    if ids:
        model._default_manager.filter(pk__in=ids).update(queued_at=timezone.now())


def deliveries_queue_due() -> dict[str, int]:
    """Queue an attempt for every due delivery of every kind; returns how many per kind."""
    from controlplane.delivery.tasks import deliver

    counts: dict[str, int] = {}
    for kind in DELIVERY_KINDS:
        ids = deliveries_due(kind=kind)
        _mark_queued(delivery_model(kind), ids)
        for delivery_id in ids:
            deliver.delay(kind, delivery_id)
        counts[kind] = len(ids)
    return counts
