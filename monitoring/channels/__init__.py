"""Notification channel kinds: one module each behind `base.ChannelKind`, keyed by name in `CHANNEL_KINDS`.

Adding a kind = one module + one entry here.
"""

from __future__ import annotations

from monitoring.channels.base import ChannelKind
from monitoring.channels.email import EmailChannel
from monitoring.channels.slack import SlackChannel
from monitoring.channels.webhook import WebhookChannel

CHANNEL_KINDS: dict[str, type[ChannelKind]] = {
    WebhookChannel.name: WebhookChannel,
    EmailChannel.name: EmailChannel,
    SlackChannel.name: SlackChannel,
}


def channel_kind(name: str) -> type[ChannelKind]:
    """The kind class for `name`; `KeyError` for an unknown kind (validation refuses those before saving)."""
    return CHANNEL_KINDS[name]
