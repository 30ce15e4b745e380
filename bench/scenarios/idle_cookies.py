"""Idle with cookies: the idle ramp again on a fresh node, each handshake carrying a
Cookie header of ``cookie_bytes`` (a browser on an application's domain sends its
session, CSRF, preference and analytics cookies with every WebSocket handshake): RSS
per connection when the server keeps what the handshake carried."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from harness.config import log
from harness.context import Context
from harness.processes import Node, Target

from tests.support.ports import free_port


async def idle_with_cookies(ctx: Context, target: Target, store_dir: Path) -> dict[str, Any]:
    p = ctx.p
    users, size = p["cookie_users"], p["cookie_bytes"]
    node = Node(target, free_port(), store_dir / "cookies.db", None, index=3)
    await node.start(ctx.runner, ctx.http)
    try:
        await asyncio.sleep(0.5)
        rss0 = node.proc.rss() if node.proc else 0
        log(f"{target.name}: idle with {size} B of cookies: connecting {users * 2} devices")
        conn = await ctx.connect([node], (0, users), cookie_bytes=size)
        # Let the last handshakes' work finish (as the idle scenario does).
        await asyncio.sleep(1.0)
        rss1 = node.proc.rss() if node.proc else 0
    finally:
        await ctx.pool.all("close", timeout=60)
        if node.proc:
            await node.proc.stop(30)
    out = {
        "cookie_bytes": size,
        "ready": conn["ready"],
        "failed": conn["failed"],
        "rate_per_s": conn["rate_per_s"],
        "rss_per_connection_kib": round((rss1 - rss0) / 1024 / max(1, conn["ready"]), 2),
    }
    log(f"{target.name}: idle with cookies: {out['rss_per_connection_kib']} KiB/conn")
    return out
