"""The WSGI entry point: what it has loaded is frozen out of the cyclic collector's reach."""

from __future__ import annotations

import os
import subprocess
import sys


def test_loading_the_wsgi_application_freezes_what_it_loaded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A full collection must not walk Django and the apps on a request's time (docs/BENCHMARKS.md)."""
    env = {**os.environ, "CONTROLPLANE_VAR_DIR": str(tmp_path)}
    script = "import gc; assert gc.get_freeze_count() == 0; import controlplane.wsgi; print(gc.get_freeze_count())"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) > 10_000
