"""E-mail channel through Django's e-mail backend (console in embedded mode, SMTP in production)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email

from monitoring.channels.base import ChannelKind, summary_lines, title

if TYPE_CHECKING:
    from monitoring.models import NotificationChannel

MAX_RECIPIENTS = 50


class EmailChannel(ChannelKind):
    """One plain-text message to the channel's recipients; the server is the operator's (EMAIL_* settings)."""

    name = "email"
    http = False

    @classmethod
    def errors(cls, *, url: str, recipients: Any) -> dict[str, list[str]]:
        problems: dict[str, list[str]] = {}
        if url:
            problems["url"] = ["An e-mail channel has no URL (the server is set by EMAIL_HOST)."]
        if not isinstance(recipients, list) or not recipients:
            problems["recipients"] = ["Give a list of at least one e-mail address."]
            return problems
        if len(recipients) > MAX_RECIPIENTS:
            problems["recipients"] = [f"At most {MAX_RECIPIENTS} recipients."]
            return problems
        for address in recipients:
            try:
                if not isinstance(address, str):
                    raise ValidationError("not a string")
                validate_email(address)
            except ValidationError:
                problems.setdefault("recipients", []).append(f"{str(address)[:100]!r} is not an e-mail address.")
        return problems

    @classmethod
    def send(cls, channel: NotificationChannel, payload: dict[str, Any], *, deadline: float) -> None:
        body = "\n".join([*summary_lines(payload, limit=100), "", payload.get("externalURL", "")])
        # The SMTP backend's timeout bounds each socket operation; the deadline is the engine's claim bound.
        connection = get_connection(timeout=deadline)
        EmailMessage(title(payload)[:200], body, to=list(channel.recipients), connection=connection).send()
