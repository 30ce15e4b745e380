"""The benchmark's machinery, shared by bench/run.py, its scenarios and the experiments.

    config      paths, the shared secrets, log()
    profiles    the sizes and durations of a run (PROFILES) and what "sustained" means
    machine     /proc readings (CPU, RSS, listen overflows) and what the machine is
    processes   the processes a run starts (Proc, Runner), the kinds of node (Target), a node
    metrics     /metrics deltas: store queries, store call times
    loadgen     the load-generator workers (bench/loadgen/worker.js) and their pool
    hist        the workers' latency histograms: merge and percentiles
    window      CPU over one measured phase, and the figures derived from it
    pyspy       recording the PNS node with py-spy, and summarising the stacks
    context     what every scenario shares: connect devices, post, settle, disconnect all
    report      the results table (rows as data) and its rendering
    plots       the PNG plots

The process helpers (free ports, /metrics parsing, redis-server) are the tests' own, from
tests/support/, so that there is one copy of them. bench/run.py and the experiments run as
scripts with only bench/ on sys.path, so the repository root is added here, before any
module of this package imports ``tests.support``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
