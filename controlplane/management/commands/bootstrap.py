"""`manage.py bootstrap`: idempotent first-run set-up with demo data.

On the first run it creates an admin user (printing its generated password once) and an API key with
every scope (printed once). Every run (re)loads the demo services, config and pipelines, which are
idempotent, so running it again changes nothing and prints no secret.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from controlplane.access.models import APIKey
from controlplane.access.scopes import ALL_SCOPES
from controlplane.access.services import api_key_create

BOOTSTRAP_KEY_NAME = "bootstrap (all scopes)"


class Command(BaseCommand):
    help = "Create the first admin user and API key (printed once) and load demo data. Safe to run again."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--username", default="admin")
        parser.add_argument("--no-demo", action="store_true", help="Skip the demo services, config and pipelines.")

    def handle(self, *args, **opts) -> None:  # type: ignore[no-untyped-def]
        User = get_user_model()
        with transaction.atomic():
            if not User.objects.filter(is_superuser=True).exists():
                password = secrets.token_urlsafe(12)
                User.objects.create_superuser(opts["username"], email="", password=password)
                self.stdout.write(
                    self.style.WARNING(
                        f"Admin user created: {opts['username']} / {password}   (shown once; change it in the admin)"
                    )
                )
            if not APIKey.objects.filter(name=BOOTSTRAP_KEY_NAME).exists():
                _, plaintext = api_key_create(name=BOOTSTRAP_KEY_NAME, scopes=list(ALL_SCOPES), actor="bootstrap")
                self.stdout.write(self.style.WARNING(f"API key with every scope (shown once): {plaintext}"))
        if not opts["no_demo"]:
            self._load_demo()
        self.stdout.write("Bootstrap complete.")

    def _load_demo(self) -> None:
        from configstore.demo import load_demo as load_config_demo
        from pipelines.demo import load_demo as load_pipelines_demo
        from registry.demo import load_demo as load_registry_demo

        for label, loader in (
            ("services", load_registry_demo),
            ("config", load_config_demo),
            ("pipelines", load_pipelines_demo),
        ):
            loader()
            self.stdout.write(f"Demo {label} loaded.")
