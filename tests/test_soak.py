"""The short soak: a minute of crashes, stops, Redis restarts and random devices.

Runs ``python -m tests.soak.soak`` (3 real nodes, a real Redis, one SQLite
store) as a subprocess and requires zero violations. ``make soak`` is the
long version. ``PNS_SOAK_SEED=<n>`` picks the seed; ``PNS_SOAK_SECONDS`` the
length.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("PNS_SOAK_SECONDS", "45"))
SEED = int(os.environ.get("PNS_SOAK_SEED", "1"))
DEVICES = 100


@pytest.mark.timeout(SECONDS + 240)
@pytest.mark.parametrize("routing", ["broadcast", "routed"])
def test_short_soak_has_no_violations(tmp_path: Path, routing: str) -> None:
    workdir = tmp_path / "soak"
    command = [
        sys.executable,
        "-m",
        "tests.soak.soak",
        f"--seconds={SECONDS:g}",
        f"--devices={DEVICES}",
        f"--seed={SEED}",
        "--fault-every=4",
        f"--routing={routing}",
        f"--workdir={workdir}",
    ]
    run = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SECONDS + 200,
        check=False,
    )
    print(run.stdout)  # the figures, shown with -s or when the test fails
    log = workdir / "soak.log"
    details = f"{run.stderr}\n{log.read_text()[-8000:] if log.exists() else ''}"
    assert run.returncode == 0, f"soak exited {run.returncode}:\n{run.stdout}\n{details}"
    assert "violations: 0" in run.stdout
