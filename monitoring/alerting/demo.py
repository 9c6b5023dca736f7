"""Demo alerting for a fresh `make run`: a rule on the demo services and a channel that notifies on the console.

The registry's demo TTL service (`demo-batch-worker`) turns critical 60 s after start-up because nothing
feeds its heartbeat; the rule below fires 30 s later and the channel's message appears in the `serve`
output (Django's console e-mail backend, the embedded default). Both are created through the services
(events, validation), once: running bootstrap again changes nothing, and an operator's edits stay.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from monitoring.models import AlertRule, NotificationChannel
from monitoring.services import alerts as alert_services

CHANNEL_NAME = "demo-console"
RULE_NAME = "demo: a demo service is critical"
# Backends that deliver nowhere outside this machine; with any other (SMTP in production) the demo channel
# is created disabled, so the demo never e-mails a real server until an operator points it somewhere.
LOCAL_BACKENDS = ("django.core.mail.backends.console.EmailBackend", "django.core.mail.backends.locmem.EmailBackend")


@transaction.atomic
def load_demo() -> None:
    """Create the demo channel and rule when they do not exist (by name)."""
    channel = NotificationChannel.objects.filter(name=CHANNEL_NAME).first()
    if channel is None:
        channel = alert_services.notification_channel_create(
            name=CHANNEL_NAME,
            kind="email",
            recipients=["operator@example.com"],
            enabled=settings.EMAIL_BACKEND in LOCAL_BACKENDS,
            group_by=["alertname"],
            group_wait_seconds=10,  # Alertmanager's 30 s, shortened so the tour shows it sooner
            actor="bootstrap",
        )
    if not AlertRule.objects.filter(name=RULE_NAME).exists():
        alert_services.alert_rule_create(
            name=RULE_NAME,
            description="Any instance of a service tagged `demo` critical for 30 s (the demo batch worker's "
            "heartbeat is never fed, so it fires a minute and a half after start-up).",
            target_kind="labels",
            match_labels={"tag": "demo"},
            metric="status",
            comparison="ge",
            threshold=2,  # status as a number: passing 0, warning 1, critical 2
            for_seconds=30,
            severity="warning",
            labels={"team": "demo"},
            annotations={"summary": "critical (status {{ value }}) for at least 30 s"},
            channels=[channel],
            actor="bootstrap",
        )
