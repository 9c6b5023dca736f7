"""Webhook channel: the Alertmanager webhook message (version 4), signed like the platform's webhooks."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from controlplane.delivery.messages import OutboundRequest
from controlplane.events.signing import SIGNATURE_HEADER, sign
from monitoring.channels.base import ChannelKind

if TYPE_CHECKING:
    from monitoring.models import NotificationChannel


class WebhookChannel(ChannelKind):
    """POSTs the payload as is: existing Alertmanager receivers accept it unchanged."""

    name = "webhook"

    @classmethod
    def errors(cls, *, url: str, recipients: Any) -> dict[str, list[str]]:
        return {} if url else {"url": ["A webhook channel needs a URL."]}

    @classmethod
    def request(cls, channel: NotificationChannel, payload: dict[str, Any], *, delivery_id: int) -> OutboundRequest:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "controlplane-alerts/1",
            "X-Controlplane-Event": f"alert.notification.{payload.get('status', 'firing')}",
            "X-Controlplane-Delivery": str(delivery_id),
        }
        if channel.secret:
            headers[SIGNATURE_HEADER] = sign(channel.secret, body)
        return OutboundRequest(channel.url, body, headers)
