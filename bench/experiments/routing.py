"""Broadcast against routed mode: N PNS nodes on one Redis, every user's two devices on
the first two nodes, notifications posted through the first at RATE/s. Per
notification: CPU summed over all nodes, the CPU of the nodes holding nobody, and the
messages the nodes read from Redis (pns_broker_messages_received_total); Redis CPU.
MODES: broadcast, routed (PNS), peer-classic, peer-sharded (the Node peer with
@socket.io/redis-adapter's classic adapter, or its sharded one in dynamic-private mode).

    .venv/bin/python bench/experiments/routing.py MODES NODE_COUNTS USERS RATE STEP_S
    .venv/bin/python bench/experiments/routing.py broadcast,routed 2,4,8 1000 1000 10
"""

import asyncio
import os
import sys

import common
from common import R

RECEIVED = "pns_broker_messages_received_total"


async def received(b: R.Bench, nodes: list[R.Node]) -> list[float]:
    return [(await n.metrics(b.http)).get(RECEIVED, 0.0) for n in nodes]


async def one(mode: str, count: int, users: int, rate: float, step_s: float) -> None:
    # Read when each node starts (Target.argv_env).
    if mode.startswith("peer-"):
        tname = "peer"
        os.environ["PEER_ADAPTER"] = mode.removeprefix("peer-")
    else:
        tname = "pns"
        os.environ["BENCH_PNS_ROUTING"] = mode
    async with common.session(tname) as (b, target, tmp):
        redis = await b.runner.start_redis()
        nodes = [
            R.Node(target, R.free_port(), tmp / "s.db", redis, index=i + 1) for i in range(count)
        ]
        for node in nodes:
            await node.start(b.runner, b.http)
        b.pool_ranges = b.pool.split(0, users)
        c = await b.connect(nodes[:2], (0, users))
        await asyncio.sleep(1)
        before = await received(b, nodes)
        w = R.Window(nodes, b.pool, b.runner)
        st = await b.post(rate, step_s, [nodes[0]], grace_s=2)
        win = w.close()
        after = await received(b, nodes)
        sent = st["sent"] if "sent" in st else rate * step_s
        cpu = win["node_cpu_pct"]
        ms = [p / 100 * win["seconds"] * 1000 / sent for p in cpu]
        idle = cpu[2:]
        got = [(a - b_) / sent for a, b_ in zip(after, before, strict=True)]
        L = st["latency"]
        print(
            f"{mode} nodes={count} devices={c['ready']} {rate:g}/s: p50 {L['p50_ms']} "
            f"p99 {L['p99_ms']} deliv {st['delivered_share']}; cpu % per node {cpu}; "
            f"all nodes ms/notif {sum(ms):.3f}; holders ms/notif {sum(ms[:2]):.3f}; "
            f"idle node cpu % mean {sum(idle) / len(idle) if idle else 0:.2f}; "
            f"messages read per notif per node {[round(g, 2) for g in got]}; "
            f"redis cpu % {win['redis_cpu_pct']}",
            flush=True,
        )


async def main(modes: list[str], counts: list[int], users: int, rate: float, step_s: float):
    # Alternating modes at each size: this machine's speed drifts within a session.
    for count in counts:
        for mode in modes:
            await one(mode, count, users, rate, step_s)


a = sys.argv[1:]
asyncio.run(
    main(a[0].split(","), [int(x) for x in a[1].split(",")], int(a[2]), float(a[3]), float(a[4]))
)
