"""Slack-compatible incoming-webhook channel (Slack, Mattermost, Rocket.Chat): `{"text": ...}`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from controlplane.delivery.messages import OutboundRequest
from monitoring.channels.base import ChannelKind, summary_lines, title

if TYPE_CHECKING:
    from monitoring.models import NotificationChannel


def _escape(text: str) -> str:
    # Slack's mrkdwn control characters; without this a label value could inject a <!channel> mention.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackChannel(ChannelKind):
    """The title and one line per alert as plain text (the incoming-webhook URL is the channel's secret)."""

    name = "slack"

    @classmethod
    def errors(cls, *, url: str, recipients: Any) -> dict[str, list[str]]:
        return {} if url else {"url": ["A Slack channel needs the incoming-webhook URL."]}

    @classmethod
    def text(cls, payload: dict[str, Any]) -> str:
        return "\n".join(_escape(line) for line in [f"*{title(payload)}*", *summary_lines(payload)])

    @classmethod
    def request(cls, channel: NotificationChannel, payload: dict[str, Any], *, delivery_id: int) -> OutboundRequest:
        body = json.dumps({"text": cls.text(payload)}, separators=(",", ":")).encode()
        return OutboundRequest(
            channel.url, body, {"Content-Type": "application/json", "User-Agent": "controlplane-alerts/1"}
        )
