"""The Celery application, configured from Django settings (`CELERY_*`)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
# Celery's Django fixup runs every system check when a worker starts; those load the URL conf, the admin
# and DRF's template tags into a process that serves none of them (with the SimpleAdminConfig change, the
# registry benchmark's worker went from 320 to 292 MB RSS, main + 2 pool processes).
# The checks run where they belong: `manage.py check --deploy` in CI and deployment, and `migrate`.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
