"""A measuring window: the CPU every process of the run took over one phase, beside the
whole machine's, and the per-notification figures derived from it."""

from __future__ import annotations

import os
import time
from typing import Any

from .loadgen import Pool
from .machine import listen_overflows, machine_busy
from .processes import Node, Runner
from .profiles import SUSTAIN_DELIVERED, SUSTAIN_P99_MS


class Window:
    """CPU of the nodes, the workers, redis and the whole machine over one phase.

    What is left of the machine's busy time after ours (nodes, workers, redis, this
    driver) is "other": work on the machine that the run did not start, and the time
    the hypervisor stole, which "steal" shows alone.
    """

    def __init__(self, nodes: list[Node], pool: Pool, runner: Runner) -> None:
        self.nodes = nodes
        self.pool = pool
        self.runner = runner
        self.t0 = time.monotonic()
        self.node_cpu0 = [n.proc.cpu() if n.proc else 0.0 for n in nodes]
        self.lg0 = pool.cpu()
        self.redis0 = runner.redis_cpu() if runner.redis_running else 0.0
        self.cpu0 = machine_busy()
        self.ovf0 = listen_overflows()
        t = os.times()
        self.driver0 = t.user + t.system

    def close(self) -> dict[str, Any]:
        dt = time.monotonic() - self.t0
        cpu1 = machine_busy()
        ours_nodes = [
            ((n.proc.cpu() if n.proc else 0.0) - c0)
            for n, c0 in zip(self.nodes, self.node_cpu0, strict=True)
        ]
        lg = self.pool.cpu() - self.lg0
        rd = (self.runner.redis_cpu() - self.redis0) if self.runner.redis_running else 0.0
        machine = cpu1.busy - self.cpu0.busy
        ncpu = os.cpu_count() or 1
        t = os.times()
        driver = t.user + t.system - self.driver0
        other = machine - sum(ours_nodes) - lg - rd - driver
        return {
            "seconds": round(dt, 3),
            "node_cpu_pct": [round(100 * c / dt, 1) for c in ours_nodes],
            "loadgen_cpu_pct": round(100 * lg / dt, 1),
            "redis_cpu_pct": round(100 * rd / dt, 1),
            "driver_cpu_pct": round(100 * driver / dt, 1),
            "machine_cpu_pct": round(100 * machine / dt, 1),
            "machine_cpu_capacity_pct": 100 * ncpu,
            "other_cpu_pct": round(100 * max(0.0, other) / dt, 1),
            "steal_cpu_pct": round(100 * (cpu1.steal - self.cpu0.steal) / dt, 1),
            "listen_overflows": listen_overflows() - self.ovf0,
        }


def add_cpu_costs(step: dict[str, Any]) -> None:
    """CPU milliseconds per notification: robust to other load on the machine, unlike latency."""
    w = step["window"]
    n = max(1, step["http_ok"])
    step["node_cpu_ms_per_notification"] = round(
        sum(w["node_cpu_pct"]) / 100 * w["seconds"] * 1000 / n, 3
    )
    step["loadgen_cpu_ms_per_notification"] = round(
        w["loadgen_cpu_pct"] / 100 * w["seconds"] * 1000 / n, 3
    )


def sustained(step: dict[str, Any]) -> bool:
    """p99 < 100 ms, >= 99.9 % delivered, <= 0.1 % HTTP errors, >= 98 % of the posts sent."""
    p99 = step["latency"]["p99_ms"]
    share = step["delivered_share"]
    errs = sum(step["http_errors"].values())
    return (
        p99 is not None
        and p99 < SUSTAIN_P99_MS
        and share is not None
        and share >= SUSTAIN_DELIVERED
        and errs <= 0.001 * max(1, step["sent"])
        and step["achieved_rate"] >= 0.98 * step["rate"]
    )
