"""Fan-out: notifications through the HTTP API at fixed rates, each device's count watched:
notify -> count-on-device latency, delivered share, CPU per notification, and the highest
rate sustained. On one node; on two nodes joined by Redis (posts through A); and with posts
alternating between A and B ("two writers": two processes writing one SQLite file)."""

from __future__ import annotations

import asyncio
from typing import Any

from harness.config import log
from harness.context import Context
from harness.metrics import Q_CREATED, Q_UNSEEN, mdelta, store_queries_delta
from harness.processes import Node, Target
from harness.window import Window, add_cpu_costs, sustained


async def measure_step(
    ctx: Context,
    target: Target,
    rate: float,
    step_s: float,
    post_to: list[Node],
    *,
    window_nodes: list[Node],
    users: tuple[int, int] | None = None,
    spy_node: Node | None = None,
    spy_label: str = "",
) -> dict[str, Any]:
    """Posts at ``rate`` for ``step_s`` inside a CPU window over ``window_nodes`` (and py-spy
    on ``spy_node`` with --py-spy); the step's figures with its "window"."""
    w = Window(window_nodes, ctx.pool, ctx.runner)
    spy = ctx.start_py_spy(target, spy_node, spy_label, step_s) if spy_node else None
    step = await ctx.post(rate, step_s, post_to, users=users, grace_s=ctx.p["fanout_grace_s"])
    step["window"] = w.close()
    if spy:
        step["py_spy"] = await ctx.finish_py_spy(*spy)
    return step


def conclude(step: dict[str, Any]) -> None:
    """Add the CPU costs and the verdict (last: they read what the step recorded)."""
    add_cpu_costs(step)
    step["sustained"] = sustained(step)


def log_step(target: Target, what: str, step: dict[str, Any], tail: str) -> None:
    log(
        f"{target.name}: {what}: p50 {step['latency']['p50_ms']} p99 {step['latency']['p99_ms']} ms, "
        f"delivered {step['delivered_share']}, {tail}"
    )


async def fanout_one_node(ctx: Context, target: Target, node: Node) -> dict[str, Any]:
    """Rising rates until one is not sustained (with fanout_stop_after_fail).

    The idle scenario's devices are reused when fanout_users equals idle_users; otherwise
    they are dropped (recorded as idle_disconnect_all) and fanout_users connect.
    """
    p = ctx.p
    out: dict[str, Any] = {}
    n_fan = p["fanout_users"]
    if n_fan != p["idle_users"]:
        out["idle_disconnect_all"] = await ctx.disconnect_all(node)
        ctx.pool_ranges = ctx.pool.split(0, n_fan)
        log(f"{target.name}: fanout: connecting {n_fan * 2} devices")
        out["fanout_connect"] = {
            k: v for k, v in (await ctx.connect([node], (0, n_fan))).items() if k != "rss_samples"
        }
    steps = []
    for rate in p["fanout_rates"]:
        m0 = await node.metrics(ctx.http)
        step = await measure_step(
            ctx,
            target,
            rate,
            p["fanout_step_s"],
            [node],
            window_nodes=[node],
            spy_node=node,
            spy_label=f"fanout-{rate}",
        )
        m1 = await node.metrics(ctx.http)
        created = mdelta(m1, m0, Q_CREATED) or 1
        step["store_queries"] = store_queries_delta(m0, m1)
        step["count_queries_per_notification"] = round(mdelta(m1, m0, Q_UNSEEN) / created, 4)
        conclude(step)
        steps.append(step)
        log_step(
            target,
            f"fanout {rate}/s",
            step,
            f"node cpu {step['window']['node_cpu_pct']}, "
            f"loadgen cpu {step['window']['loadgen_cpu_pct']}%",
        )
        if not step["sustained"] and p["fanout_stop_after_fail"]:
            break
        await asyncio.sleep(0.5)
    ok_rates = [s["rate"] for s in steps if s["sustained"]]
    out["fanout"] = {
        "users": n_fan,
        "devices": n_fan * 2,
        "steps": steps,
        "max_sustained_rate": max(ok_rates) if ok_rates else 0,
    }
    return out


async def fanout_two_nodes(
    ctx: Context, target: Target, a: Node, b: Node, n: int
) -> dict[str, Any]:
    """Users 0..n with device 0 on A and device 1 on B; rising rates until one is not sustained.

    Posts go through A: both nodes share one SQLite file, and a second process writing to
    it is starved by SQLite's busy handler (measured apart: two_writers).
    """
    p = ctx.p
    steps = []
    for rate in p["two_fanout_rates"]:
        step = await measure_step(
            ctx,
            target,
            rate,
            p["two_fanout_step_s"],
            [a],
            window_nodes=[a, b],
            users=(0, n),
            spy_node=a,
            spy_label=f"two-node-fanout-{rate}-node-A",
        )
        conclude(step)
        steps.append(step)
        log_step(
            target,
            f"2-node fanout {rate}/s",
            step,
            f"node cpu {step['window']['node_cpu_pct']}, redis {step['window']['redis_cpu_pct']}%",
        )
        if not step["sustained"]:
            break
    ok_rates = [s["rate"] for s in steps if s["sustained"]]
    return {
        "steps": steps,
        "max_sustained_rate": max(ok_rates) if ok_rates else 0,
        "posted_through": "A",
    }


async def two_writers(ctx: Context, target: Target, a: Node, b: Node, n: int) -> dict[str, Any]:
    """One step at two_writers_rate with posts alternating A/B: two processes write one
    SQLite file."""
    rate = ctx.p["two_writers_rate"]
    step = await measure_step(
        ctx, target, rate, ctx.p["two_fanout_step_s"], [a, b], window_nodes=[a, b], users=(0, n)
    )
    conclude(step)
    log_step(
        target,
        f"2-node fanout {rate}/s, posts alternating A/B",
        step,
        f"HTTP p99 {step['http_latency']['p99_ms']} ms",
    )
    return step
