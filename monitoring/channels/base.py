"""The base of notification channel kinds: validate a channel, render a message, send it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from controlplane.delivery.messages import OutboundRequest

if TYPE_CHECKING:
    from monitoring.models import NotificationChannel


class ChannelKind:
    """One way of notifying. HTTP kinds (`http = True`) build an `OutboundRequest` that the delivery engine
    sends through the egress guard; others implement `send`."""

    name: ClassVar[str] = ""
    http: ClassVar[bool] = True

    @classmethod
    def errors(cls, *, url: str, recipients: Any) -> dict[str, list[str]]:
        """Field -> messages for a channel of this kind (the URL's egress check is the service's)."""
        return {}

    @classmethod
    def request(cls, channel: NotificationChannel, payload: dict[str, Any], *, delivery_id: int) -> OutboundRequest:
        """The HTTP request carrying `payload` (the Alertmanager v4 message) to `channel`."""
        raise NotImplementedError

    @classmethod
    def send(cls, channel: NotificationChannel, payload: dict[str, Any], *, deadline: float) -> None:
        """Non-HTTP kinds: deliver `payload` or raise."""
        raise NotImplementedError


def summary_lines(payload: dict[str, Any], *, limit: int = 20) -> list[str]:
    """One human line per alert of the message: status, alert name, target and its summary annotation."""
    lines = []
    for alert in payload.get("alerts", [])[:limit]:
        labels, annotations = alert.get("labels", {}), alert.get("annotations", {})
        flapping = " (flapping)" if annotations.get("flapping") == "true" else ""
        summary = annotations.get("summary") or labels.get("alertname", "")
        lines.append(f"[{alert.get('status', '').upper()}{flapping}] {labels.get('target', '')}: {summary}")
    extra = len(payload.get("alerts", [])) - limit
    if extra > 0:
        lines.append(f"… and {extra} more")
    return lines


def title(payload: dict[str, Any]) -> str:
    """`[FIRING:2] rule-name` — Alertmanager's default title shape."""
    firing = sum(1 for alert in payload.get("alerts", []) if alert.get("status") == "firing")
    name = payload.get("commonLabels", {}).get("alertname") or payload.get("groupLabels", {}).get("alertname", "")
    status = payload.get("status", "firing")
    return f"[{status.upper()}{f':{firing}' if status == 'firing' else ''}] {name}".strip()
