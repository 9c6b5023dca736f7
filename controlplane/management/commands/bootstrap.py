"""`manage.py bootstrap`: idempotent first-run set-up with demo data.

On the first run it creates an admin user with a generated password and an API key with every scope.
Both are printed here; in embedded mode they are also handed to `serve`, which prints them again in one
block once everything has started (a newcomer's `make run` scrolls the first print away): they wait in
`<var>/first-run-credentials.json` (mode 0600) until that block is printed, then the file is deleted.
A production `serve` writes to a log, so there they are printed by `bootstrap` only. Every run (re)loads
the demo services, config, pipelines and alert rule (with its console e-mail channel), which are
idempotent, so running it again changes nothing and prints no secret.
`--reset-credentials` gives the admin a new password and replaces the bootstrap key.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from controlplane.access.models import APIKey
from controlplane.access.scopes import ALL_SCOPES
from controlplane.access.services import api_key_create, api_key_revoke

BOOTSTRAP_KEY_NAME = "bootstrap (all scopes)"
CREDENTIALS_FILE = "first-run-credentials.json"
RESET_HINT = "`python manage.py bootstrap --reset-credentials` prints a new admin password and API key."


def _write_credentials(payload: dict[str, str]) -> None:
    """Keep the new credentials for `serve`'s start-up block, readable by this user only."""
    path = Path(settings.VAR_DIR) / CREDENTIALS_FILE
    existing: dict[str, str] = {}
    if path.exists():
        try:
            existing = json.loads(path.read_text())
        except ValueError:
            existing = {}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({**existing, **payload}, handle)


class Command(BaseCommand):
    help = (
        "Create the first admin user and API key (printed once) and load demo data. Safe to run again; "
        "--reset-credentials replaces the admin password and the bootstrap key."
    )

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--no-demo", action="store_true", help="Skip the demo services, config, pipelines and alerting."
        )
        parser.add_argument(
            "--reset-credentials",
            action="store_true",
            help="Set a new generated password for --username and replace the bootstrap API key.",
        )

    def handle(self, *args, **opts) -> None:  # type: ignore[no-untyped-def]
        # File and env sources are read from here; the tour drops files into it.
        Path(settings.CONFIG_SOURCE_ROOT).mkdir(parents=True, exist_ok=True)
        User = get_user_model()
        created: dict[str, str] = {}
        with transaction.atomic():
            username = opts["username"]
            if not User.objects.filter(is_superuser=True).exists():
                password = secrets.token_urlsafe(12)
                User.objects.create_superuser(username, email="", password=password)
                created.update(username=username, password=password)
            elif opts["reset_credentials"]:
                user = User.objects.filter(username=username).first()
                if user is None:
                    user = User.objects.create_superuser(username, email="", password=None)
                password = secrets.token_urlsafe(12)
                user.set_password(password)
                user.save(update_fields=["password"])
                created.update(username=username, password=password)
            if opts["reset_credentials"]:
                for old in APIKey.objects.filter(name=BOOTSTRAP_KEY_NAME, revoked=False):
                    api_key_revoke(old, actor="bootstrap")
            # Not re-created when an operator revoked it: `make run` runs this every time.
            if opts["reset_credentials"] or not APIKey.objects.filter(name=BOOTSTRAP_KEY_NAME).exists():
                _, plaintext = api_key_create(name=BOOTSTRAP_KEY_NAME, scopes=list(ALL_SCOPES), actor="bootstrap")
                created["api_key"] = plaintext
        if created:
            if not settings.PRODUCTION:  # a production serve logs its output: it never shows them (serve.py)
                _write_credentials(created)
            if "password" in created:
                self.stdout.write(
                    self.style.WARNING(f"Admin user: {created['username']} / {created['password']}   (shown once)")
                )
            if "api_key" in created:
                self.stdout.write(self.style.WARNING(f"API key with every scope (shown once): {created['api_key']}"))
            if not settings.PRODUCTION:
                self.stdout.write("`manage.py serve` shows these again once everything has started.")
        if not opts["no_demo"]:
            self._load_demo()
        self.stdout.write("Bootstrap complete.")

    def _load_demo(self) -> None:
        from configstore.demo import load_demo as load_config_demo
        from monitoring.alerting.demo import load_demo as load_alerting_demo
        from pipelines.demo import load_demo as load_pipelines_demo
        from registry.demo import load_demo as load_registry_demo

        for label, loader in (
            ("services", load_registry_demo),
            ("config", load_config_demo),
            ("pipelines", load_pipelines_demo),
            ("alert rule and channel", load_alerting_demo),
        ):
            loader()
            self.stdout.write(f"Demo {label} loaded.")
