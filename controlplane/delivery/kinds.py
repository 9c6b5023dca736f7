"""The registry of delivery kinds: kind name -> model label. A new kind is one line here and one model."""

from __future__ import annotations

from django.apps import apps

from controlplane.delivery.models import OutboundDelivery

DELIVERY_KINDS: dict[str, str] = {
    "webhook": "events.WebhookDelivery",
    "pipeline": "pipelines.Delivery",
}


def delivery_model(kind: str) -> type[OutboundDelivery]:
    """The model of `kind`; `KeyError` for an unknown kind."""
    model = apps.get_model(DELIVERY_KINDS[kind])
    if not issubclass(model, OutboundDelivery) or model.delivery_kind != kind:
        raise TypeError(f"{DELIVERY_KINDS[kind]} is not the OutboundDelivery of kind {kind!r}")
    return model
