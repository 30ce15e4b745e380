"""Reconnect storm: with every device connected and its count right, the node gets SIGTERM
and starts again on the same port and store; the devices reconnect by socket.io-client's
policy. A device is back when its first count on the new connection equals the true count."""

from __future__ import annotations

import time
from typing import Any

from harness.config import log
from harness.context import Context
from harness.metrics import store_queries_delta
from harness.processes import Node, Target
from harness.window import Window


async def storm(ctx: Context, target: Target, node: Node) -> dict[str, Any]:
    p = ctx.p
    status = await ctx.pool.all("status")
    right_before = sum(s["right"] for s in status)
    log(
        f"{target.name}: storm: {sum(s['ready'] for s in status)} devices, {right_before} with the right count"
    )
    await ctx.pool.all("storm_watch")
    w = Window([node], ctx.pool, ctx.runner)
    t_kill = time.time()
    old = node.proc
    stop_s = await old.stop(30) if old else 0
    node.proc = None
    start_s = await node.start(ctx.runner, ctx.http)
    t_listen = time.time()
    # The window's node is now the new process: its CPU counts from here (its start-up is
    # in new_node_start_seconds, the old process's CPU went with it).
    w.node_cpu0 = [node.proc.cpu() if node.proc else 0.0]
    m_new0 = await node.metrics(ctx.http)
    res = await ctx.pool.all(
        "storm_wait", timeout=p["storm_timeout_s"] + 30, timeout_s=p["storm_timeout_s"]
    )
    win = w.close()
    m_new1 = await node.metrics(ctx.http)
    # The workers' back times are milliseconds since the epoch (their wallNow()), so they
    # compare with time.time() here.
    last = max((r["last_back"] or 0) for r in res) / 1000
    back = sum(r["back"] for r in res)
    total = sum(r["devices"] for r in res)
    q = store_queries_delta(m_new0, m_new1)
    out = {
        "devices": total,
        "right_before": right_before,
        "back_with_right_count": back,
        "wrong": sum(r["wrong"] for r in res),
        "missing": sum(r["missing"] for r in res),
        "old_node_stop_seconds": round(stop_s, 3),
        "old_node_killed_after_30s": bool(old and old.killed),
        "new_node_start_seconds": round(start_s, 3),
        "seconds_from_sigterm": round(last - t_kill, 3) if back else None,
        "seconds_from_listening": round(last - t_listen, 3) if back else None,
        "accept_rate_per_s": round(back / (last - t_listen), 1)
        if back and last > t_listen
        else None,
        "store_queries": q,
        "store_queries_per_device": round(sum(q.values()) / max(1, back), 3),
        "window": win,
        "back_times_from_listening": [
            round(t / 1000 - t_listen, 3) for t in sorted(x for r in res for x in r["back_times"])
        ],
    }
    log(
        f"{target.name}: storm: {back}/{total} back in {out['seconds_from_listening']} s "
        f"after listening ({out['accept_rate_per_s']}/s), queries {q}"
    )
    return out
