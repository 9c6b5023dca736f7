"""Demo services for a fresh `make run`: the control plane checking itself, and a TTL check nobody feeds."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from registry.models import Service
from registry.services import instance_register, service_create


@transaction.atomic
def load_demo() -> None:
    """Register the demo services once; running it again changes nothing (operators may have edited them)."""
    url = urlsplit(settings.CONTROLPLANE_PUBLIC_URL)
    host, scheme = url.hostname or "127.0.0.1", url.scheme or "http"
    port = url.port or (443 if scheme == "https" else 80)
    demos = [
        (
            {
                "name": "controlplane",
                "display_name": "Control plane API",
                "type": "http_api",
                "owner": "platform",
                "description": "This control plane, checking its own liveness endpoint.",
                "tags": ["demo", "internal"],
                "capabilities": ["registry", "config", "pipelines"],
            },
            {
                "instance_id": "local",
                "address": host,
                "port": port,
                "scheme": scheme,
                "tags": ["primary"],
                "checks": [
                    {"name": "healthz", "kind": "http", "path": "/healthz", "interval": 10, "timeout": 3},
                    {"name": "port", "kind": "tcp", "interval": 15, "timeout": 2},
                ],
            },
        ),
        (
            {
                "name": "demo-batch-worker",
                "display_name": "Demo batch worker",
                "type": "worker",
                "owner": "demo",
                "description": "Reports by TTL heartbeat; nothing feeds it, so it turns critical after 60 s.",
                "tags": ["demo"],
            },
            {
                "instance_id": "worker-1",
                "address": host,
                "port": port,
                "scheme": "tcp",
                "checks": [{"name": "heartbeat", "kind": "ttl", "ttl": 60}],
            },
        ),
    ]
    for service_fields, instance_fields in demos:
        service = Service.objects.filter(name=service_fields["name"]).first() or service_create(
            actor="bootstrap", **service_fields
        )
        if not service.instances.filter(instance_id=instance_fields["instance_id"]).exists():
            instance_register(service=service, actor="bootstrap", **instance_fields)
