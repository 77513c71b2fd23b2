"""The architecture as a test: import-linter's contracts (pyproject.toml) hold, so `make test` enforces them.

The decision core (scaler.core) imports no edge (sources, serving layer, CLI, simulator), no I/O client
(grpc, prometheus_client, requests, kubernetes) and no clock (time, datetime); sources never serve.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe is not None, "lint-imports is missing: install the dev extras (pip install -e '.[dev]')"
    done = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in done.stdout
