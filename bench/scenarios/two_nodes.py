"""Two nodes of a target joined by Redis, sharing one SQLite file (the embedded mode's
multi-process option); each user's device 0 on A and device 1 on B. Runs the store work,
the cross-node fan-out, the two-writers step and the two fetch phases on them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from harness.config import log
from harness.context import Context
from harness.processes import Node, Target

from tests.support.ports import free_port

from .fanout import fanout_two_nodes, two_writers
from .fetch import fetch_phase
from .store_work import store_work_two_nodes


async def two_nodes(ctx: Context, target: Target, store: Path) -> dict[str, Any]:
    p = ctx.p
    redis_url = await ctx.runner.start_redis()
    a = Node(target, free_port(), store, redis_url, index=1)
    b = Node(target, free_port(), store, redis_url, index=2)
    await asyncio.gather(a.start(ctx.runner, ctx.http), b.start(ctx.runner, ctx.http))
    out: dict[str, Any] = {}
    try:
        n = p["two_users"]
        ctx.pool_ranges = ctx.pool.split(0, n)
        log(
            f"{target.name}: two nodes: connecting {n} users x 2 devices (device 0 on A, device 1 on B)"
        )
        conn = await ctx.connect([a, b], (0, n))
        conn.pop("rss_samples")
        out["connect"] = conn
        out["store_work"] = await store_work_two_nodes(ctx, target, a, b)
        out["fanout"] = await fanout_two_nodes(ctx, target, a, b, n)
        out["settle_seconds_after_fanout"] = await ctx.settle([a, b])
        out["two_writers"] = await two_writers(ctx, target, a, b, n)
        await asyncio.sleep(1)

        # (1) latency: only a few users fetch, so A is not saturated and the time from an
        #     ack to the count on the user's device on B is the path's, not a queue's;
        # (2) capacity: every user's device 0 (on A) fetches in a closed loop.
        await ctx.settle([a, b])
        k = max(1, min(n, p["fetch_latency_users"]))
        out["fetch_latency"] = await fetch_phase(
            ctx, target, a, b, (0, k), p["fetch_latency_s"], "latency"
        )
        out["fetch"] = await fetch_phase(ctx, target, a, b, (0, n), p["fetch_s"], "capacity")
    finally:
        await ctx.pool.all("close", timeout=60)
        for nd in (a, b):
            if nd.proc:
                await nd.proc.stop(20)
    return out
