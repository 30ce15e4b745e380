"""Routed mode on a real Redis Cluster (3 primaries, each with a replica, on loopback):
sharded pub/sub, and a primary killed while devices are connected."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pns_sio.publisher import Publisher
from pns_sio.wire import user_channel

from .support.api import notify
from .support.redis_cluster import RedisClusterProcesses
from .support.waiting import eventually


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterProcesses]:
    cluster = RedisClusterProcesses(tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


async def cluster_nodes(start_node, redis_cluster: RedisClusterProcesses, n: int):
    nodes = [await start_node(redis_url=redis_cluster.url, routing="routed") for _ in range(n)]
    for running in nodes:
        await running.node.broker_ready.wait()
    return nodes


def shard_subscribers(redis_cluster: RedisClusterProcesses, user: str) -> int:
    channel = user_channel("socketio", user)
    primary = redis_cluster.primary_of(channel)
    client = redis.Redis(host="127.0.0.1", port=primary.port)
    try:
        _, count = client.execute_command("PUBSUB", "SHARDNUMSUB", channel)  # flat reply
        return int(count)
    finally:
        client.close()


async def test_counts_go_through_each_users_shard(
    start_node, connect, http, redis_cluster, sqlite_url
) -> None:
    a, b, c = await cluster_nodes(start_node, redis_cluster, 3)
    users = ["42", "7", "1001"]  # channels on different shards
    devices = {u: [await connect(a, u), await connect(b, u)] for u in users}
    for pair in devices.values():
        for device in pair:
            await device.wait_count(0)
    for user in users:
        assert shard_subscribers(redis_cluster, user) == 2
        await notify(http, c, user)  # C holds nobody: it publishes, hears nothing
    async with Publisher(
        store_url=sqlite_url, redis_url=redis_cluster.url, routing="routed"
    ) as publisher:
        for user in users:
            await publisher.notify(user, {"text": "through the cluster"})
    for pair in devices.values():
        for device in pair:
            await device.wait_count(2)
    assert c.metric("pns_broker_messages_received_total") == 0


async def test_a_primary_killed_is_failed_over_and_counts_converge(
    start_node, connect, http, redis_cluster
) -> None:
    a, b = await cluster_nodes(start_node, redis_cluster, 2)
    on_a = await connect(a, "42")
    on_b = await connect(b, "42")
    await notify(http, a, "42")
    await on_b.wait_count(1)
    primary = redis_cluster.primary_of(user_channel("socketio", "42"))
    primary.stop()
    # Notifications keep being created while the replica takes over.
    for _ in range(3):
        await notify(http, a, "42")
        await asyncio.sleep(0.3)
    await on_a.wait_count(4, timeout=30)
    await on_b.wait_count(4, timeout=30)
    for node in (a, b):
        await eventually(lambda node=node: node.metric("pns_broker_up") == 1, timeout=30)
    # Both nodes subscribed again, on the promoted replica (the SSUBSCRIBEs are sent
    # before a node counts as up; their confirmations may still be on the way).
    deadline = asyncio.get_running_loop().time() + 10
    while await asyncio.to_thread(shard_subscribers, redis_cluster, "42") != 2:
        assert asyncio.get_running_loop().time() < deadline, "not subscribed again"
        await asyncio.sleep(0.05)
    await notify(http, a, "42")
    await on_b.wait_count(5)
