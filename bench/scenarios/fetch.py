"""Fetch and acknowledge while notifications arrive: device 0 of each user (on node A)
fetches with a limit, acknowledges, and fetches again once its own badge is fresh; the
worker times each ack to the count that dropped on the user's device 1 (on node B)."""

from __future__ import annotations

import asyncio
from typing import Any

from harness.config import log
from harness.context import Context
from harness.hist import merge_hists, summarize
from harness.loadgen import sum_counts
from harness.metrics import store_queries_delta
from harness.processes import Node, Target
from harness.window import Window


async def fetch_phase(
    ctx: Context,
    target: Target,
    a: Node,
    b: Node,
    users: tuple[int, int],
    seconds: float,
    label: str,
) -> dict[str, Any]:
    """Users ``users`` fetch for ``seconds`` while fetch_post_rate notifications/s go to all
    two_users through A. ``label`` names the phase (latency, capacity) in logs and profiles."""
    p = ctx.p
    n_all = p["two_users"]
    w = Window([a, b], ctx.pool, ctx.runner)
    ma0, mb0 = await a.metrics(ctx.http), await b.metrics(ctx.http)
    spy = ctx.start_py_spy(target, a, f"fetch-{label}-node-A", seconds)
    fetch_task = asyncio.create_task(
        ctx.pool.all(
            "fetch",
            timeout=seconds + 60,
            duration_s=seconds,
            limit=p["fetch_limit"],
            fetcher_index=0,
            grace_s=1,
            user_range=list(users),
        )
    )
    posting = asyncio.create_task(
        ctx.post(p["fetch_post_rate"], seconds, [a], users=(0, n_all), watch=False, grace_s=1)
    )
    res = await fetch_task
    posted = await posting
    win = w.close()
    if spy:
        win["py_spy"] = await ctx.finish_py_spy(*spy)
    ma1, mb1 = await a.metrics(ctx.http), await b.metrics(ctx.http)
    elapsed = max(r["elapsed_s"] for r in res)
    delivered = sum(r["delivered"] for r in res)
    errors = sum_counts(res, "errors")
    out = {
        "seconds": round(elapsed, 3),
        "limit": p["fetch_limit"],
        "fetchers": users[1] - users[0],
        "requests": sum(r["requests"] for r in res),
        "delivered": delivered,
        "acked_per_s": round(delivered / elapsed, 1),
        "empty_answers": sum(r["empty"] for r in res),
        "ack_to_other_device": summarize(merge_hists([r["ack_to_other"] for r in res])),
        "fetch_answer": summarize(merge_hists([r["answer"] for r in res])),
        "ack_waits_unmatched": sum(r["ack_waits_unmatched"] for r in res),
        "posted_meanwhile": posted["sent"],
        "posts_per_s": p["fetch_post_rate"],
        "store_queries_A": store_queries_delta(ma0, ma1),
        "store_queries_B": store_queries_delta(mb0, mb1),
        "window": win,
        "node_cpu_ms_per_delivery": round(
            sum(win["node_cpu_pct"]) / 100 * win["seconds"] * 1000 / max(1, delivered), 3
        ),
        "errors": errors,
    }
    log(
        f"{target.name}: fetch ({label}, {out['fetchers']} fetchers): {out['acked_per_s']} acked/s, answer p50 "
        f"{out['fetch_answer']['p50_ms']} ms, ack->other node p50 {out['ack_to_other_device']['p50_ms']} "
        f"p99 {out['ack_to_other_device']['p99_ms']} ms, node cpu {win['node_cpu_pct']}, loadgen {win['loadgen_cpu_pct']}%"
    )
    await asyncio.sleep(0.5)
    return out
