"""Demo data for `bootstrap`: a `payments` namespace with entries, rules and one secret (idempotent)."""

from __future__ import annotations

from configstore import services
from configstore.models import Namespace, Rule

ACTOR = "system:bootstrap"
RULES = [
    ("db.host", "required", {}, ""),
    ("db.port", "type", {"type": "integer"}, ""),
    ("db.port", "range", {"min": 1, "max": 65535}, ""),
    ("currency", "choices", {"choices": ["EUR", "USD", "GBP"]}, "Supported currencies are EUR, USD and GBP."),
    ("provider.url", "pattern", {"regex": r"https://[^\s]+"}, "Provider URLs must use https."),
    ("retry.*", "type", {"type": "integer"}, ""),
]
ENTRIES = {
    "db.host": ("db.internal", False, "Primary database host."),
    "db.port": (5432, False, ""),
    "currency": ("EUR", False, "Default settlement currency."),
    "provider.url": ("https://psp.example.com/v2", False, ""),
    "retry.max_attempts": (5, False, ""),
    "retry.backoff_ms": (250, False, ""),
    "provider.api_key": ("demo-psp-key-change-me", True, "PSP API key (secret)."),
}


def load_demo() -> Namespace:
    """Create (or complete) the `payments` demo namespace; running it again changes nothing."""
    namespace = Namespace.objects.filter(name="payments").first()
    if namespace is None:
        namespace = services.namespace_create(
            name="payments", description="Payment service settings (demo).", actor=ACTOR
        )
    for key, kind, params, message in RULES:
        if not Rule.objects.filter(namespace=namespace, key=key, kind=kind).exists():
            services.rule_create(namespace=namespace, key=key, kind=kind, params=params, message=message, actor=ACTOR)
    existing = set(namespace.entries.filter(source__isnull=True).values_list("key", flat=True))
    changes = [
        services.EntryChange(key=key, value=value, secret=secret, description=description)
        for key, (value, secret, description) in ENTRIES.items()
        if key not in existing
    ]
    if changes:
        services.config_changes_apply(
            namespace=namespace, changes=changes, actor=ACTOR, origin="bootstrap", message="Demo data"
        )
    namespace.refresh_from_db()
    return namespace
