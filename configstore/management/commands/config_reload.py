"""`python manage.py config_reload [--namespace NS] [--force]`: reload config sources now."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from configstore.services import sources_reload


class Command(BaseCommand):
    help = "Re-read file and env config sources and apply the changed, valid ones (one revision each)."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--namespace", help="Only this namespace's sources (including those with reload off).")
        parser.add_argument("--force", action="store_true", help="Apply even when the content hash is unchanged.")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        results = sources_reload(namespace=options["namespace"], force=options["force"], actor="system:config_reload")
        failed = 0
        for name, result in results.items():
            line = f"{name}: {result.status}"
            if result.revision:
                line += f" (revision {result.revision})"
            if result.error:
                failed += 1
                line += f" - {result.error}"
            self.stdout.write(line)
        if not results:
            self.stdout.write("No sources to reload.")
        if failed:
            raise CommandError(f"{failed} source(s) failed; their previous values are kept.")
