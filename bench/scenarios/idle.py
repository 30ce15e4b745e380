"""Idle: ramp to N devices on one node and hold them: connections accepted per second,
RSS and CPU per connection, the node's CPU while nothing happens."""

from __future__ import annotations

import asyncio
from typing import Any

from harness.config import log
from harness.context import Context
from harness.processes import Node, Target
from harness.window import Window


async def idle(ctx: Context, target: Target, node: Node, rss0: int) -> dict[str, Any]:
    """``rss0``: the node's RSS before any device connected."""
    p = ctx.p
    n_idle = p["idle_users"]
    ctx.pool_ranges = ctx.pool.split(0, n_idle)
    log(f"{target.name}: idle: connecting {n_idle * 2} devices")
    w = Window([node], ctx.pool, ctx.runner)
    spy = ctx.start_py_spy(target, node, "idle-ramp", max(2, n_idle * 2 // 500))
    conn = await ctx.connect([node], (0, n_idle), sample=node)
    ramp = w.close()
    if spy:
        ramp["py_spy"] = await ctx.finish_py_spy(*spy)
    # Let the last handshakes' work finish, so the hold window is idle time only.
    await asyncio.sleep(1.0)
    w = Window([node], ctx.pool, ctx.runner)
    await asyncio.sleep(p["idle_hold_s"])
    hold = w.close()
    rss1 = node.proc.rss() if node.proc else 0
    samples = conn.pop("rss_samples")
    ctx.plots.setdefault("rss", {})[target.label] = samples + [(conn["ready"], rss1)]
    out = {
        **conn,
        "node_cpu_ms_per_connection": round(
            ramp["node_cpu_pct"][0] / 100 * ramp["seconds"] * 1000 / max(1, conn["ready"]),
            3,
        ),
        "loadgen_cpu_ms_per_connection": round(
            ramp["loadgen_cpu_pct"] / 100 * ramp["seconds"] * 1000 / max(1, conn["ready"]),
            3,
        ),
        "rss_bytes": rss1,
        "rss_per_connection_kib": round((rss1 - rss0) / 1024 / max(1, conn["ready"]), 2),
        "ramp": ramp,
        "hold": hold,
        "idle_cpu_pct": hold["node_cpu_pct"][0],
        "loadgen_rss_bytes": ctx.pool.rss(),
    }
    log(
        f"{target.name}: idle: {conn['ready']} ready at {conn['rate_per_s']}/s, "
        f"{out['rss_per_connection_kib']} KiB/conn, idle cpu {hold['node_cpu_pct'][0]}%"
    )
    return out
