"""Store work: count queries (`pns_store_queries_total{op="unseen"}` deltas) per notification,
on a node holding the user and on one that does not, for users held nowhere, and for a burst
of notifications to one user in 50 ms. Each measurement starts once the nodes' store
counters are still (Context.settle), so a previous step's queue does not leak into it."""

from __future__ import annotations

import json
from typing import Any

from harness.config import JWT_SECRET, log
from harness.context import Context
from harness.metrics import Q_UNSEEN, mdelta
from harness.processes import Node, Target

# Users of the store-work measurements: far above the fan-out's users, so that no device
# of the fan-out belongs to them.
HOLDER_USERS_FROM = 1_000_000
NOWHERE_USERS_FROM = HOLDER_USERS_FROM + 10_000


async def burst_one_node(ctx: Context, node: Node) -> dict[str, Any]:
    """A burst (burst x 20/s for 50 ms) to user 0, once the node worked off the fan-out."""
    out: dict[str, Any] = {"settle_seconds_after_fanout": await ctx.settle([node])}
    m0 = await node.metrics(ctx.http)
    burst = await ctx.post(ctx.p["burst"] * 20, 0.05, [node], users=(0, 1), grace_s=2)
    m1 = await node.metrics(ctx.http)
    out["burst_one_node"] = {
        "notifications": burst["sent"],
        "count_queries": mdelta(m1, m0, Q_UNSEEN),
        "latency": burst["latency"],
        "delivered_share": burst["delivered_share"],
    }
    return out


async def store_work_two_nodes(ctx: Context, target: Target, a: Node, b: Node) -> dict[str, Any]:
    """Users with one device on A only, posted through B; users held nowhere, posted through
    A and B; a burst to user 0 (devices on A and B) through A."""
    p = ctx.p
    hu = p["holder_users"]
    lo = HOLDER_USERS_FROM
    # Held on A only: one device each, connected through worker 0.
    w0 = ctx.pool.workers[0]
    await w0.call(
        "connect",
        secret=JWT_SECRET,
        targets=[a.addr],
        users=[lo, lo + hu],
        per_user=1,
        concurrency=50,
        timeout_s=60,
        local_addresses=w0.local_addresses(),
        offer_deflate=ctx.offer_deflate,
    )
    saved = ctx.pool_ranges
    # Only worker 0 holds these users, so only it posts for them.
    idle_workers = [(0, 0)] * (len(ctx.pool.workers) - 1)
    ctx.pool_ranges = [(lo, lo + hu), *idle_workers]
    await ctx.settle([a, b])
    ma0, mb0 = await a.metrics(ctx.http), await b.metrics(ctx.http)
    held = await ctx.post(hu * 10, p["holder_posts_each"] / 10, [b], users=(lo, lo + hu), grace_s=2)
    ma1, mb1 = await a.metrics(ctx.http), await b.metrics(ctx.http)
    notes = held["sent"] or 1
    nowhere = (NOWHERE_USERS_FROM, NOWHERE_USERS_FROM + hu)
    ctx.pool_ranges = [nowhere, *idle_workers]
    # Held nowhere: worker 0 posts for users it does not hold (no deliveries to watch).
    await w0.call(
        "connect",
        secret=JWT_SECRET,
        targets=[a.addr],
        users=list(nowhere),
        per_user=0,
        concurrency=50,
        timeout_s=10,
        local_addresses=w0.local_addresses(),
    )
    ma2, mb2 = await a.metrics(ctx.http), await b.metrics(ctx.http)
    ghost = await ctx.post(
        hu * 10, p["holder_posts_each"] / 10, [a, b], users=nowhere, watch=False, grace_s=1
    )
    ma3, mb3 = await a.metrics(ctx.http), await b.metrics(ctx.http)
    ctx.pool_ranges = saved
    out: dict[str, Any] = {
        "held_on_A_only": {
            "notifications": held["sent"],
            "posted_through": "B",
            "count_queries_per_notification_on_holder_A": round(
                mdelta(ma1, ma0, Q_UNSEEN) / notes, 4
            ),
            "count_queries_per_notification_on_other_B": round(
                mdelta(mb1, mb0, Q_UNSEEN) / notes, 4
            ),
            "delivered_share": held["delivered_share"],
            "latency": held["latency"],
        },
        "held_nowhere": {
            "notifications": ghost["sent"],
            "count_queries_A": mdelta(ma3, ma2, Q_UNSEEN),
            "count_queries_B": mdelta(mb3, mb2, Q_UNSEEN),
        },
    }
    # A burst to one user held on both nodes.
    await ctx.settle([a, b])
    ma0, mb0 = await a.metrics(ctx.http), await b.metrics(ctx.http)
    burst = await ctx.post(p["burst"] * 20, 0.05, [a], users=(0, 1), grace_s=2)
    ma1, mb1 = await a.metrics(ctx.http), await b.metrics(ctx.http)
    out["burst_one_user"] = {
        "notifications": burst["sent"],
        "count_queries_A": mdelta(ma1, ma0, Q_UNSEEN),
        "count_queries_B": mdelta(mb1, mb0, Q_UNSEEN),
        "delivered_share": burst["delivered_share"],
        "latency": burst["latency"],
    }
    log(f"{target.name}: store work: {json.dumps(out, default=str)[:400]}")
    return out
