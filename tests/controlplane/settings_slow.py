"""Settings for a test gunicorn serving `urls_slow` (the project's settings otherwise)."""

from controlplane.settings import *  # noqa: F403

ROOT_URLCONF = "tests.controlplane.urls_slow"
