"""Where things are, the secrets every node and device shares, and the run's log."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
PEER_DIR = BENCH / "peers" / "node-socketio"
LOADGEN_DIR = BENCH / "loadgen"
RESULTS = BENCH / "results"
PNS_BIN = Path(sys.executable).parent / "pns"

JWT_SECRET = "bench-jwt-secret-0123456789abcdef0123456789"
API_TOKEN = "bench-api-token-0123456789abcdef0123456789"


def log(*args: Any) -> None:
    """A progress line on stderr (stdout carries the table)."""
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)
