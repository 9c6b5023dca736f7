"""`manage.py create_api_key --name N --scopes a,b [--rate R] [--expires-days D]`: prints the key last."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from controlplane.access.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key. The key is printed once, alone on the last line; only its hash is stored."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", required=True, help="Comma-separated, e.g. registry:read,config:read")
        parser.add_argument("--rate", default="", help="e.g. 600/m (default RATELIMIT_DEFAULT)")
        parser.add_argument("--namespaces", default="", help="Comma-separated config namespaces (default all)")
        parser.add_argument("--expires-days", type=int, default=None)

    def handle(self, *args, **opts) -> None:  # type: ignore[no-untyped-def]
        expires_at = None
        if opts["expires_days"] is not None:
            if opts["expires_days"] < 1:
                raise CommandError("--expires-days must be at least 1.")
            expires_at = timezone.now() + timedelta(days=opts["expires_days"])
        try:
            key, plaintext = api_key_create(
                name=opts["name"],
                scopes=[s.strip() for s in opts["scopes"].split(",") if s.strip()],
                rate=opts["rate"],
                namespaces=[n.strip() for n in opts["namespaces"].split(",") if n.strip()],
                expires_at=expires_at,
                actor="cli",
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stderr.write(f"Created key {key.name!r} (prefix {key.prefix}, scopes {', '.join(key.scopes)}).")
        self.stderr.write("Store it now; it cannot be shown again:")
        self.stdout.write(plaintext)
