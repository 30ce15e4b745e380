"""Broadcast against routed mode: N PNS nodes on one Redis, every user's two devices on
the first two nodes, notifications posted through the first at RATE/s. Per
notification: CPU summed over all nodes, the CPU of the nodes holding nobody, and the
messages the nodes read from Redis (pns_broker_messages_received_total); Redis CPU.
MODES: broadcast, routed, cluster (PNS; cluster: routed on a Redis Cluster of 3
primaries, Redis CPU summed over them), peer-classic, peer-sharded (the Node peer with
@socket.io/redis-adapter's classic adapter, or its sharded one in dynamic-private mode),
peer-cluster (the peer's sharded adapter on the same kind of Redis Cluster).

    .venv/bin/python bench/experiments/routing.py MODES NODE_COUNTS USERS RATE STEP_S
    .venv/bin/python bench/experiments/routing.py broadcast,routed 2,4,8 1000 1000 10
"""

import asyncio
import os
import sys
from pathlib import Path

import common
from common import R

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from harness.machine import proc_cpu_seconds

from tests.support.redis_cluster import RedisClusterProcesses

RECEIVED = "pns_broker_messages_received_total"


async def received(b: R.Bench, nodes: list[R.Node]) -> list[float]:
    return [(await n.metrics(b.http)).get(RECEIVED, 0.0) for n in nodes]


async def one(mode: str, count: int, users: int, rate: float, step_s: float) -> None:
    # Read when each node starts (Target.argv_env).
    on_cluster = mode in ("cluster", "peer-cluster")
    if mode.startswith("peer-"):
        tname = "peer"
        os.environ["PEER_ADAPTER"] = "sharded" if on_cluster else mode.removeprefix("peer-")
    else:
        tname = "pns"
        os.environ["BENCH_PNS_ROUTING"] = "routed" if mode == "cluster" else mode
    cluster = None
    async with common.session(tname) as (b, target, tmp):
        if on_cluster:  # 3 primaries on loopback, no replicas
            cluster = RedisClusterProcesses(tmp, replicas=0)
            await asyncio.to_thread(cluster.start)
            redis = cluster.url
        else:
            redis = await b.runner.start_redis()
        try:
            await measure(b, target, tmp, mode, redis, cluster, count, users, rate, step_s)
        finally:
            if cluster is not None:
                cluster.stop()


def cluster_cpu(cluster) -> float:
    return sum(proc_cpu_seconds(n.pid) for n in cluster.nodes if n.pid is not None)


async def measure(b, target, tmp, mode, redis, cluster, count, users, rate, step_s) -> None:
    nodes = [R.Node(target, R.free_port(), tmp / "s.db", redis, index=i + 1) for i in range(count)]
    for node in nodes:
        await node.start(b.runner, b.http)
    b.pool_ranges = b.pool.split(0, users)
    c = await b.connect(nodes[:2], (0, users))
    await asyncio.sleep(1)
    before = await received(b, nodes)
    w = R.Window(nodes, b.pool, b.runner)
    cluster0 = cluster_cpu(cluster) if cluster else 0.0
    st = await b.post(rate, step_s, [nodes[0]], grace_s=2)
    win = w.close()
    if cluster:
        win["redis_cpu_pct"] = round(100 * (cluster_cpu(cluster) - cluster0) / win["seconds"], 1)
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
