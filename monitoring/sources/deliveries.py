"""Outbound deliveries of every kind of the delivery engine (webhooks, pipeline deliveries, notifications):
sent, failed and retried per minute, from the delivery rows' totals.

The rows carry no time of failure, so these are sampled: each beat counts the rows by outcome and stores
the increase since the previous count. A retention prune lowers the totals; that sample starts again from
zero for the series and counts nothing for the prune's interval.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import Count, Q, Sum

from monitoring.points import Agg
from monitoring.sources.base import Points, Sampler
from monitoring.sources.cursors import cursors_swap, difference

NAMES = ("sent", "failed", "retried")


def _totals(model: type) -> dict[str, float]:
    totals = model.objects.aggregate(
        sent=Count("pk", filter=Q(status="delivered")),
        failed=Count("pk", filter=Q(status="failed")),
        attempts_sum=Sum("attempts", filter=Q(attempts__gt=1)),
        retried_rows=Count("pk", filter=Q(attempts__gt=1)),
    )
    retried = (totals["attempts_sum"] or 0) - (totals["retried_rows"] or 0)  # attempts after each row's first
    return {"sent": float(totals["sent"]), "failed": float(totals["failed"]), "retried": float(retried)}


class DeliveriesSampler(Sampler):
    """`delivery:<kind>:deliveries` per kind of `controlplane.delivery.kinds`, breakdown {sent, failed, retried}."""

    name = "deliveries"

    def sample(self, *, now: datetime) -> Points:
        from controlplane.delivery.kinds import DELIVERY_KINDS, delivery_model

        bucket = now.astimezone(UTC).replace(second=0, microsecond=0)
        current = {("delivery", kind, "deliveries"): _totals(delivery_model(kind)) for kind in DELIVERY_KINDS}
        previous = cursors_swap(current)
        points: Points = {}
        for key, values in current.items():
            delta = difference(values, previous.get(key), NAMES)
            if not delta or not any(delta.values()):
                continue
            agg = Agg(count=int(delta["sent"] + delta["failed"]))
            for label in NAMES:
                if delta[label]:
                    agg.add(label, delta[label])
            points[(key, bucket)] = agg
        return points
