"""What every scenario shares: the profile, the processes, the load generator and the
HTTP session, and the actions scenarios are made of (connect devices, post notifications,
wait for the nodes to settle, drop every device at once, record with py-spy)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

from . import pyspy
from .config import API_TOKEN, JWT_SECRET, log
from .hist import merge_hists, r3, summarize
from .loadgen import Pool, Worker, sum_counts
from .metrics import store_queries
from .processes import Node, Runner, Target
from .profiles import PROFILES

# A py-spy recording under way: the py-spy process, its output file, the phase's label.
PySpy = tuple[subprocess.Popen[bytes], Path, str]


class Context:
    """The state a run's scenarios share, and what they do with it.

    ``http`` and ``pool`` are set by whoever drives the run (bench/run.py's Bench, or
    bench/experiments/common.py) once the session and the workers exist. ``pool_ranges``
    are the users each worker holds devices of: post() splits a rate by them.
    """

    def __init__(
        self,
        profile: str,
        tmp: Path,
        *,
        py_spy: bool = False,
        offer_deflate: bool = True,
    ) -> None:
        self.profile_name = profile
        # The profile's own dict, not a copy: --set changes it before the run, and the
        # result records it as the run's settings.
        self.p = PROFILES[profile]
        self.py_spy = py_spy
        self.offer_deflate = offer_deflate
        self.tmp = tmp
        self.runner = Runner(tmp)
        self.http: aiohttp.ClientSession
        self.pool: Pool
        self.pool_ranges: list[tuple[int, int]] = []
        # Series for the plots, by kind then target label: {"rss": {label: [(devices, rss)]}}.
        self.plots: dict[str, Any] = {}

    async def new_pool(self) -> Pool:
        workers = [Worker(i, self.p["max_seconds"]) for i in range(self.p["workers"])]
        for w in workers:
            await w.start(self.tmp)
        return Pool(workers)

    async def connect(
        self,
        nodes: list[Node],
        users: tuple[int, int],
        per_user: int = 2,
        placement_offset: int = 0,
        sample: Node | None = None,
        reconnect: bool = False,
        timeout_s: float = 300,
        cookie_bytes: int = 0,
    ) -> dict[str, Any]:
        """Connect users x per_user devices (device d on nodes[d % len]); sample RSS on the way.
        ``cookie_bytes``: each handshake carries a Cookie header of that size."""
        targets = [n.addr for n in nodes]
        ranges = self.pool.split(*users)
        per = [
            {"users": list(r), "local_addresses": w.local_addresses()}
            for r, w in zip(ranges, self.pool.workers, strict=True)
        ]
        samples: list[tuple[int, int]] = []
        stop = asyncio.Event()

        async def sampler() -> None:
            base = self.pool.ready
            while not stop.is_set():
                if sample and sample.proc:
                    samples.append((self.pool.ready - base, sample.proc.rss()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.25)

        for w in self.pool.workers:
            w.ready = 0
        task = asyncio.create_task(sampler())
        try:
            res = await self.pool.all(
                "connect",
                per,
                timeout=timeout_s + 30,
                secret=JWT_SECRET,
                targets=targets,
                per_user=per_user,
                placement_offset=placement_offset,
                concurrency=100,
                reconnect=reconnect,
                timeout_s=timeout_s,
                offer_deflate=self.offer_deflate,
                cookie_bytes=cookie_bytes,
            )
        finally:
            stop.set()
            await task
        ready = sum(r["ready"] for r in res)
        failed = sum(r["failed"] for r in res)
        firsts = [r["first_ready"] for r in res if r["first_ready"]]
        lasts = [r["last_ready"] for r in res if r["last_ready"]]
        span = (max(lasts) - min(firsts)) / 1000 if firsts and lasts else None
        t0 = min(r["t0"] for r in res)
        wall = (max(lasts) - t0) / 1000 if lasts else None
        return {
            "devices": (users[1] - users[0]) * per_user,
            "ready": ready,
            "failed": failed,
            "seconds": r3(wall),
            "rate_per_s": round(ready / wall, 1) if wall else None,
            "span_rate_per_s": round(ready / span, 1) if span else None,
            "handshake_to_count": summarize(merge_hists([r["connect_hist"] for r in res])),
            "errors": sum_counts(res, "errors"),
            "rss_samples": samples,
        }

    async def post(
        self,
        rate: float,
        duration_s: float,
        targets: list[Node],
        users: tuple[int, int] | None = None,
        watch: bool = True,
        grace_s: float = 2.0,
    ) -> dict[str, Any]:
        """Open-loop posts, each worker for the users of ``users`` it holds, the rate split by users held."""
        lo, hi = (
            users
            if users is not None
            else (min(r[0] for r in self.pool_ranges), max(r[1] for r in self.pool_ranges))
        )
        shares = [max(0, min(hi, r[1]) - max(lo, r[0])) for r in self.pool_ranges]
        total = sum(shares) or 1
        per = [{"rate": rate * sh / total, "user_range": [lo, hi]} for sh in shares]
        res = await self.pool.all(
            "post",
            per,
            timeout=duration_s + grace_s + 60,
            duration_s=duration_s,
            targets=[t.addr for t in targets],
            api_token=API_TOKEN,
            watch=watch,
            grace_s=grace_s,
        )
        lat = merge_hists([r["latency"] for r in res])
        httph = merge_hists([r["http"] for r in res])
        lag = merge_hists([r["lag"] for r in res])
        errors = sum_counts(res, "errors")
        sent = sum(r["sent"] for r in res)
        expected = sum(r["expected"] for r in res)
        delivered = sum(r["delivered"] for r in res)
        return {
            "rate": rate,
            "sent": sent,
            "http_ok": sum(r["http_ok"] for r in res),
            "http_errors": errors,
            "send_seconds": round(max(r["elapsed_send_s"] for r in res), 3),
            "achieved_rate": round(sent / max(0.001, max(r["elapsed_send_s"] for r in res)), 1),
            "expected_deliveries": expected,
            "delivered": delivered,
            "delivered_share": round(delivered / expected, 6) if expected else None,
            "latency": summarize(lat),
            "http_latency": summarize(httph),
            "post_lag": summarize(lag),
        }

    async def settle(
        self, nodes: list[Node], quiet_s: float = 1.0, timeout_s: float = 20.0
    ) -> float:
        """Wait until the nodes' store counters stop moving for quiet_s (bounded); seconds waited.

        So that what a previous step left queued does not leak into the next measurement.
        """
        t0 = time.monotonic()
        last: list[dict[str, float]] | None = None
        quiet_since = t0
        while time.monotonic() - t0 < timeout_s:
            now = [store_queries(await n.metrics(self.http)) for n in nodes]
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                break
            await asyncio.sleep(0.25)
        return round(time.monotonic() - t0, 2)

    async def disconnect_all(self, node: Node, timeout_s: float = 300.0) -> dict[str, Any]:
        """Close every device at once; seconds until the node says it holds 0 connections."""
        before = (await node.metrics(self.http)).get("pns_connections", 0.0)
        t0 = time.monotonic()
        await self.pool.all("close", timeout=60)
        answered_late = 0
        gauge = before
        while time.monotonic() - t0 < timeout_s:
            try:
                m = await node.metrics(self.http, tries=1)
                if not m:
                    raise OSError("no answer")
                gauge = m.get("pns_connections", 0.0)
            except (TimeoutError, aiohttp.ClientError, OSError):
                # A node busy closing thousands of sockets may not answer /metrics meanwhile.
                answered_late += 1
                gauge = -1
            if gauge == 0:
                break
            await asyncio.sleep(0.25)
        out = {
            "connections": int(before),
            "seconds_until_zero": round(time.monotonic() - t0, 2),
            "metrics_requests_timed_out": answered_late,
            "left": gauge,
        }
        log(
            f"{node.target.name}: disconnect of {int(before)} connections at once: "
            f"the node holds 0 after {out['seconds_until_zero']} s"
        )
        return out

    # -- profiling the PNS node with py-spy (--py-spy) ----------------------------------------

    def start_py_spy(self, target: Target, node: Node, label: str, seconds: float) -> PySpy | None:
        """Start recording the PNS node for one phase; None without --py-spy or for the peer."""
        if not self.py_spy or target.name != "pns" or not node.proc:
            return None
        if not pyspy.PY_SPY.exists():
            log("py-spy is missing (pip install -e '.[bench]')")
            return None
        out = (
            self.tmp
            / f"pyspy-{target.name}{'-' + target.variant if target.variant else ''}-{label}.txt"
        )
        return pyspy.record(node.proc.pid, out, seconds), out, label

    async def finish_py_spy(
        self, proc: subprocess.Popen[bytes], out: Path, label: str
    ) -> dict[str, Any]:
        """The phase's py-spy summary, once the recording has ended (called as finish_py_spy(*spy))."""
        return await pyspy.collect(proc, out)
