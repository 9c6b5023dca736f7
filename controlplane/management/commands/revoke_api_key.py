"""`manage.py revoke_api_key PREFIX [--delete]`: revoke (or delete) a key; every process refuses it on return."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from controlplane.access.models import APIKey
from controlplane.access.services import api_key_delete, api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key by prefix (or delete it with --delete). Returns once every process refuses it."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("prefix")
        parser.add_argument("--delete", action="store_true", help="Delete the key row instead of revoking it")

    def handle(self, *args, **opts) -> None:  # type: ignore[no-untyped-def]
        key = APIKey.objects.filter(prefix=opts["prefix"]).first()
        if key is None:
            raise CommandError(f"No API key with prefix {opts['prefix']!r}.")
        if opts["delete"]:
            api_key_delete(key, actor="cli")
            self.stderr.write(f"Deleted key {key.name!r} (prefix {opts['prefix']}).")
        else:
            api_key_revoke(key, actor="cli")
            self.stderr.write(f"Revoked key {key.name!r} (prefix {key.prefix}).")
