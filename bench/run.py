"""PNS benchmark: PNS nodes against the Node socket.io peer, same load generator, same run.

    .venv/bin/python bench/run.py --profile short   # `make bench`, < 3 minutes
    .venv/bin/python bench/run.py --profile full    # `make bench-full`

Starts everything it measures itself (redis-server on a free port, PNS nodes through
`pns serve`, peer nodes through `node server.js`, load-generator workers), on 127.0.0.1
only, each process bounded in time, and stops every process it started by its pid.
Writes bench/results/latest.json (and <profile>-<utc time>.json), PNG plots beside
them, and prints a table: PNS against the peer, with ratios.

Scenarios (bench/scenarios/, one module each, on the machinery of bench/harness/), per
target (PNS, then the peer), all in one run:
  idle        ramp to N devices on one node, hold; connect rate, RSS per connection, idle CPU
  fanout      users x 2 devices on one node; notifications through the HTTP API at rising
              fixed rates; notify -> count-on-device latency, delivered share, sustained rate
  store work  count queries per notification (from /metrics); a burst to one user
  storm       the node restarts under its devices; time until every device is back with the
              right count, and the store queries that cost
  two nodes   (redis) devices of a user on both nodes: cross-node fan-out latency; fetch and
              acknowledge throughput and ack -> count on the other node; store queries on a
              node that holds the user and on one that does not
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

# The harness first: importing it puts the repository root on sys.path for tests.support.
import harness  # noqa: F401
from harness.config import LOADGEN_DIR, PEER_DIR, PNS_BIN, RESULTS, log
from harness.context import Context
from harness.hist import merge_hists, summarize
from harness.machine import git_commit, loadavg, machine_busy, machine_info
from harness.metrics import store_mean_ms, store_queries
from harness.plots import make_plots
from harness.processes import Node, Target
from harness.profiles import PROFILES
from harness.pyspy import summarize_py_spy
from harness.report import render_table, table_rows
from harness.window import Window, add_cpu_costs
from scenarios.fanout import fanout_one_node
from scenarios.idle import idle
from scenarios.idle_cookies import idle_with_cookies
from scenarios.store_work import burst_one_node
from scenarios.storm import storm
from scenarios.two_nodes import two_nodes

from tests.support.ports import free_port

# `import run as R` gives the experiments (experiments/common.py) what they use, and a reader
# of a result JSON the table (render_table).
__all__ = [
    "PROFILES",
    "TARGETS",
    "Bench",
    "Node",
    "Target",
    "Window",
    "add_cpu_costs",
    "free_port",
    "merge_hists",
    "render_table",
    "store_mean_ms",
    "store_queries",
    "summarize",
    "summarize_py_spy",
    "table_rows",
]

TARGETS = [Target("pns", "PNS (python-socketio)"), Target("peer", "Node socket.io peer")]


class Bench(Context):
    """A whole run: for each target (PNS, then the peer) every scenario, in order, on the
    context they share. The experiments use it as the context only (connect, post, ...)."""

    def __init__(
        self,
        profile: str,
        only: list[str],
        tmp: Path,
        *,
        py_spy: bool = False,
        offer_deflate: bool = True,
    ) -> None:
        super().__init__(profile, tmp, py_spy=py_spy, offer_deflate=offer_deflate)
        self.only = only

    async def run_target(self, target: Target) -> dict[str, Any]:
        out: dict[str, Any] = {"target": target.label}
        tdir = self.tmp / target.name
        tdir.mkdir()
        store = tdir / "store.db"
        self.pool = await self.new_pool()
        try:
            if self.p["cookie_bytes"]:
                out["idle_cookies"] = await idle_with_cookies(self, target, tdir)
            node = Node(target, free_port(), store, None, index=0)
            out["start_seconds"] = round(await node.start(self.runner, self.http), 3)
            await asyncio.sleep(0.5)
            rss0 = node.proc.rss() if node.proc else 0
            out["rss_empty_bytes"] = rss0
            out["idle"] = await idle(self, target, node, rss0)
            out.update(await fanout_one_node(self, target, node))
            # After the node has worked off what the last fan-out step left queued.
            out.update(await burst_one_node(self, node))
            if self.p["storm"]:
                out["storm"] = await storm(self, target, node)
            out["disconnect_all"] = await self.disconnect_all(node)
            if node.proc:
                await node.proc.stop(30)
            # The same store file: the two nodes start on what the single node wrote.
            out["two_nodes"] = await two_nodes(self, target, store)
        finally:
            await self.pool.all("close", timeout=60)
            for w_ in self.pool.workers:
                await w_.stop()
        return out

    async def run(self) -> dict[str, Any]:
        t_start = time.time()
        result: dict[str, Any] = {
            "profile": self.profile_name,
            "settings": self.p,
            "machine": machine_info(),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
            "loadavg_start": loadavg(),
            "commit": git_commit(),
            "command": " ".join([Path(sys.executable).as_posix(), *sys.argv]),
            "offer_deflate": self.offer_deflate,
            "targets": {},
        }
        busy0 = machine_busy().busy
        async with aiohttp.ClientSession() as self.http:
            try:
                for target in TARGETS:
                    if self.only and target.name not in self.only:
                        continue
                    log(f"== {target.label}")
                    result["targets"][target.name] = await self.run_target(target)
            finally:
                await self.runner.stop_all()
        busy1 = machine_busy().busy
        result["loadavg_end"] = loadavg()
        result["seconds"] = round(time.time() - t_start, 1)
        result["machine_cpu_pct_whole_run"] = round(
            100 * (busy1 - busy0) / (time.time() - t_start), 1
        )
        return result


def check_prerequisites() -> None:
    missing = []
    if not PNS_BIN.exists():
        missing.append(f"{PNS_BIN} (pip install -e '.[bench]')")
    for d in (PEER_DIR, LOADGEN_DIR):
        if not (d / "node_modules").is_dir():
            missing.append(f"{d}/node_modules (cd {d} && npm ci)")
    if not shutil.which("node"):
        missing.append("node (Node.js 20)")
    if not shutil.which("redis-server"):
        missing.append("redis-server")
    if missing:
        raise SystemExit("bench: missing: " + "; ".join(missing))


async def amain(args: argparse.Namespace) -> int:
    check_prerequisites()
    for item in args.set:
        key, _, raw = item.partition("=")
        if key not in PROFILES[args.profile]:
            raise SystemExit(
                f"bench: --set {key}: no such setting (known: {', '.join(PROFILES[args.profile])})"
            )
        try:
            PROFILES[args.profile][key] = json.loads(raw)
        except json.JSONDecodeError:
            raise SystemExit(f"bench: --set {item}: the value must be JSON") from None
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="pns-bench-"))
    if args.variant:
        TARGETS[0].variant = args.variant
        TARGETS[0].label = f"PNS ({args.variant})"
    bench = Bench(
        args.profile, args.only, tmp, py_spy=args.py_spy, offer_deflate=not args.no_deflate_offer
    )
    log(f"bench {args.profile}: logs and stores in {tmp}")
    try:
        result = await asyncio.wait_for(bench.run(), bench.p["max_seconds"])
    finally:
        await bench.runner.stop_all()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    prefix = RESULTS / ("latest" if not args.out else args.out)
    result["plots"] = make_plots(result, bench.plots, RESULTS / args.profile)
    result["rss_samples"] = bench.plots.get("rss", {})
    text = json.dumps(result, indent=1, default=str)
    (RESULTS / f"{args.profile}-{stamp}.json").write_text(text)
    prefix.with_suffix(".json").write_text(text)
    print()
    print(
        f"PNS benchmark, profile {args.profile}, {result['seconds']} s, commit {result['commit']}"
    )
    print(
        f"machine: {result['machine']['nproc']} x {result['machine']['cpu_model']}, load average "
        f"{result['loadavg_start']} -> {result['loadavg_end']}, machine CPU over the run "
        f"{result['machine_cpu_pct_whole_run']}% of {100 * (result['machine']['nproc'] or 1)}%"
    )
    print(render_table(result))
    print(f"\nwritten: {prefix.with_suffix('.json')} and plots {', '.join(result['plots'])}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--profile", choices=sorted(PROFILES), default="short")
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        choices=[t.name for t in TARGETS],
        help="run only this target (repeatable); default both",
    )
    ap.add_argument(
        "--out", default=None, help="name of the JSON written in bench/results (default latest)"
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, stores)"
    )
    ap.add_argument(
        "--variant",
        default="",
        help="PNS only, an experiment: nodeflate,orjson,uvloop "
        "(bench/experiments/pns_variant.py; pns_sio/ is not changed)",
    )
    ap.add_argument(
        "--py-spy",
        action="store_true",
        help="record the PNS node with py-spy during the ramp and fan-out",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting of the profile (a JSON value), e.g. --set fanout_step_s=10 "
        "--set 'fanout_rates=[1000,2000]'",
    )
    ap.add_argument(
        "--no-deflate-offer",
        action="store_true",
        help="devices do not offer permessage-deflate (browsers always do; default: offer)",
    )
    args = ap.parse_args()
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
