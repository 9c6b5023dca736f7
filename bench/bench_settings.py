"""Settings for the platform benchmark: the project's own, plus bench routes; `BENCH_BARE=1` drops tracing."""

import os

from controlplane.settings import *  # noqa: F403
from controlplane.settings import MIDDLEWARE

ROOT_URLCONF = "bench.bench_urls"
if os.environ.get("BENCH_BARE") == "1":
    MIDDLEWARE = [m for m in MIDDLEWARE if "RequestTracingMiddleware" not in m]
