"""Settings for the registry benchmark: the project's settings plus the probe concurrency under test."""

import os

from controlplane.settings import *  # noqa: F403

REGISTRY_BATCH_CONCURRENCY = int(os.environ.get("BENCH_BATCH_CONCURRENCY", "32"))
REGISTRY_BATCH_SIZE = int(os.environ.get("BENCH_BATCH_SIZE", "500"))
if "BENCH_LOOKAHEAD" in os.environ:
    REGISTRY_DISPATCH_LOOKAHEAD_SECONDS = float(os.environ["BENCH_LOOKAHEAD"])
if "BENCH_WINDOW_SECONDS" in os.environ:
    REGISTRY_BATCH_WINDOW_SECONDS = float(os.environ["BENCH_WINDOW_SECONDS"])
