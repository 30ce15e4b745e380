"""One node, N users x 2 devices, fan-out at the given rates: latency, CPU ms per notification,
and (with the gclog variant) the node's long GC passes. A quick before/after for a PNS change.
With `two`: two nodes joined by Redis, each user's device 0 on A and device 1 on B, posts
through A (what the broker and its Redis client cost); with `both` as well, posts alternate
between A and B (two processes writing one SQLite file); with `idleb`, every device is on A
and B holds nobody: B's CPU per notification is what a node pays to receive and drop a
message for users it does not hold.

    .venv/bin/python bench/experiments/fan_out.py pns|peer VARIANT|- USERS RATES STEP_S [spy] [two [both|idleb]]
    .venv/bin/python bench/experiments/fan_out.py pns gclog,gctune 1000 500,800 8
"""

import asyncio
import sys

import common
from common import R


async def main(
    tname, variant, users, rates, step_s, spy, deflate, two=False, both=False, idle_b=False
):
    async with common.session(tname, variant, py_spy=spy, offer_deflate=deflate) as (
        b,
        target,
        tmp,
    ):
        redis = await b.runner.start_redis() if two else None
        node = R.Node(target, R.free_port(), tmp / "s.db", redis, index=1 if two else 0)
        await node.start(b.runner, b.http)
        nodes = [node]
        if two:
            other = R.Node(target, R.free_port(), tmp / "s.db", redis, index=2)
            await other.start(b.runner, b.http)
            nodes.append(other)
        await asyncio.sleep(0.5)
        rss0 = node.proc.rss()
        b.pool_ranges = b.pool.split(0, users)
        w = R.Window(nodes, b.pool, b.runner)
        c = await b.connect([node] if idle_b else nodes, (0, users))
        c.pop("rss_samples")
        win = w.close()
        await asyncio.sleep(1)
        print(
            f"{tname}{'+' + variant if variant else ''} connect {c['ready']} at {c['rate_per_s']}/s; node cpu ms/conn {win['node_cpu_pct'][0] / 100 * win['seconds'] * 1000 / c['ready']:.3f}; loadgen ms/conn {win['loadgen_cpu_pct'] / 100 * win['seconds'] * 1000 / c['ready']:.3f}; KiB/conn {(node.proc.rss() - rss0) / 1024 / c['ready']:.1f}; other {win['other_cpu_pct']}"
        )
        for rate in rates:
            w = R.Window(nodes, b.pool, b.runner)
            sp = b.start_py_spy(target, node, f"exp-fan-{variant or 'base'}-{rate}", step_s)
            st = await b.post(rate, step_s, nodes if both else [node], grace_s=2)
            st["window"] = w.close()
            R.add_cpu_costs(st)
            if sp:
                st["py_spy"] = await b.finish_py_spy(*sp)
            L = st["latency"]
            print(
                f"  {rate}/s: p50 {L['p50_ms']} p99 {L['p99_ms']} max {L['max_ms']} deliv {st['delivered_share']} http p99 {st['http_latency']['p99_ms']} node cpu {st['window']['node_cpu_pct']} ms/notif {st['node_cpu_ms_per_notification']} loadgen ms/notif {st['loadgen_cpu_ms_per_notification']} other {st['window']['other_cpu_pct']} steal {st['window']['steal_cpu_pct']}"
            )
            if spy:
                ps = st["py_spy"]
                print("   self by file:", ps["main_self_by_file_pct"][:25])
    import glob

    for f in glob.glob(str(tmp / "pns-*.log")):
        lines = open(f).read().splitlines()
        gcl = [l for l in lines if l.startswith("gc:")]
        print("  node log gc lines:", len(gcl), gcl[:8])


a = sys.argv[1:]
asyncio.run(
    main(
        a[0],
        a[1] if a[1] != "-" else "",
        int(a[2]),
        [float(x) for x in a[3].split(",")],
        float(a[4]),
        "spy" in a,
        "nodeflate-offer" not in a,
        "two" in a,
        "both" in a,
        "idleb" in a,
    )
)
