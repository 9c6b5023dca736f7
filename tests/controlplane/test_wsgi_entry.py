"""The WSGI and ASGI entry points: what they have loaded is frozen out of the cyclic collector's reach."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["controlplane.wsgi", "controlplane.asgi"])
def test_loading_the_application_freezes_what_it_loaded(tmp_path, module: str) -> None:  # type: ignore[no-untyped-def]
    """A full collection must not walk Django and the apps on a request's time (docs/BENCHMARKS.md)."""
    env = {**os.environ, "CONTROLPLANE_VAR_DIR": str(tmp_path)}
    script = f"import gc; assert gc.get_freeze_count() == 0; import {module}; print(gc.get_freeze_count())"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) > 10_000
