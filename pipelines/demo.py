"""Demo pipelines for `bootstrap`: every step kind, chaining and a service route. Idempotent."""

from __future__ import annotations

from pipelines.models import Pipeline
from pipelines.services import pipeline_create

AUDIT = {
    "slug": "demo-audit",
    "name": "Demo: audit trail",
    "description": "Chained from demo-orders for large orders: stamps and tags the packet.",
    "steps": [
        {
            "name": "stamp",
            "kind": "transform",
            "config": {
                "operations": [
                    {"op": "set_metadata", "key": "audited", "value": True},
                    {"op": "add_tag", "value": "audited"},
                ]
            },
        }
    ],
}

ORDERS = {
    "slug": "demo-orders",
    "name": "Demo: order intake",
    "description": "Normalizes an order, validates it, drops test orders, adds the settlement currency from config and routes it.",
    "error_policy": "stop",
    "steps": [
        {
            "name": "normalize",
            "kind": "transform",
            "priority": 10,
            "config": {
                "operations": [
                    {"op": "strip", "path": "payload.customer"},
                    {"op": "upper", "path": "payload.currency"},
                    {"op": "cast", "path": "payload.qty", "type": "int"},
                    {"op": "default", "path": "payload.qty", "value": 1},
                    {"op": "set", "path": "payload.total", "expr": "payload.price * payload.qty"},
                    {"op": "format", "path": "payload.label", "template": "{payload.customer} x{payload.qty}"},
                ]
            },
        },
        {
            "name": "check",
            "kind": "validate",
            "priority": 20,
            "config": {
                "rules": [
                    {"path": "payload.price", "kind": "range", "params": {"min": 0}},
                    {"path": "payload.currency", "kind": "choices", "params": {"choices": ["EUR", "USD", "GBP"]}},
                    {
                        "path": "payload",
                        "kind": "json_schema",
                        "params": {"schema": {"type": "object", "required": ["customer", "price"]}},
                    },
                ],
                "on_invalid": "reject",
            },
        },
        {"name": "drop-tests", "kind": "filter", "priority": 30, "config": {"when": "payload.test == `true`"}},
        {
            "name": "settlement-currency",
            "kind": "enrich",
            "priority": 40,
            # The config store's demo namespace: edit `payments/currency` and the next run picks it up.
            "config": {
                "path": "metadata.settlement_currency",
                "namespace": "payments",
                "key": "currency",
                "default": "EUR",
            },
        },
        {
            "name": "priority-tag",
            "kind": "transform",
            "priority": 50,
            "condition": "payload.total > `1000`",
            "config": {"operations": [{"op": "add_tag", "value": "priority"}]},
        },
        {
            "name": "route",
            "kind": "route",
            "priority": 60,
            "config": {
                "mode": "all",
                "rules": [
                    {"when": "contains(tags, 'priority')", "to": "fast"},
                    {"when": "contains(tags, 'priority')", "to": {"pipeline": "demo-audit"}},
                    {"when": "payload.notify == `true`", "to": {"service": "billing"}},
                ],
                "default": "standard",
            },
        },
    ],
}


def load_demo() -> list[str]:
    """Create the demo pipelines that do not exist yet; returns the slugs created."""
    created = []
    for definition in (AUDIT, ORDERS):
        if not Pipeline.objects.filter(slug=definition["slug"]).exists():
            pipeline_create(**definition, actor="system:bootstrap")
            created.append(definition["slug"])
    return created
