"""Routed mode (PNS_ROUTING=routed) on one real Redis: a user's messages reach only the
nodes holding that user's devices. What holds in both modes: test_multinode.py."""

from __future__ import annotations

import asyncio

import socketio
from redis import asyncio as aioredis

from pns_sio.publisher import Publisher, SyncPublisher
from pns_sio.wire import EV_COUNT, EV_SIGNAL, user_channel, user_room

from .support.api import notify
from .support.processes import run_pns
from .support.proxy import RoundRobinProxy
from .support.waiting import eventually


async def routed_nodes(start_node, redis_url: str, n: int, **overrides):
    nodes = [await start_node(redis_url=redis_url, routing="routed", **overrides) for _ in range(n)]
    for running in nodes:
        await running.node.broker_ready.wait()
    return nodes


async def subscribers(redis_url: str, user: str) -> int:
    """How many connections Redis has subscribed to the user's channel."""
    admin = aioredis.Redis.from_url(redis_url)
    try:
        [(_, count)] = await admin.pubsub_numsub(user_channel("socketio", user))
        return int(count)
    finally:
        await admin.aclose()


async def test_a_users_messages_reach_the_nodes_holding_it_and_no_other(
    start_node, connect, http, redis_server
) -> None:
    a, b, c = await routed_nodes(start_node, redis_server.url, 3)
    on_a = await connect(a, "42")
    on_b = await connect(b, "42")
    other = await connect(c, "7")
    for device in (on_a, on_b, other):
        await device.wait_count(0)
    assert await subscribers(redis_server.url, "42") == 2
    heard_by_c = c.metric("pns_broker_messages_received_total")
    # Created through a node that does not hold the user, and through one that does.
    for node in (c, c, a):
        await notify(http, node, "42")
    await on_a.wait_count(3)
    await on_b.wait_count(3)
    # A publishes user 7's signal after user 42's, on one connection, and Redis delivers
    # to C in order: once C's device has it, C would have heard user 42's by then.
    await notify(http, a, "7")
    await other.wait_count(1)
    assert c.metric("pns_broker_messages_received_total") == heard_by_c + 1
    # The two C created itself, handled where they were made; none from Redis.
    assert c.metric("pns_signals_total", handled="no") == 2
    assert len(other.count_events()) == 2


async def test_a_node_leaves_a_users_channel_after_the_linger(
    start_node, connect, http, redis_server
) -> None:
    a, b = await routed_nodes(start_node, redis_server.url, 2, route_linger=0.3)
    first = await connect(a, "42")
    await first.wait_count(0)
    assert a.metric("pns_broker_user_channels") == 1
    await first.close()
    await eventually(lambda: a.metric("pns_broker_user_channels") == 0)
    assert await subscribers(redis_server.url, "42") == 0
    # Back: subscribed again, and counts flow as before.
    again = await connect(a, "42")
    await again.wait_count(0)
    assert await subscribers(redis_server.url, "42") == 1
    await notify(http, b, "42")
    await again.wait_count(1)


async def test_a_reconnecting_device_keeps_the_subscription(
    start_node, connect, http, redis_server
) -> None:
    a, b = await routed_nodes(start_node, redis_server.url, 2)  # default linger: 15 s
    first = await connect(a, "42")
    await first.wait_count(0)
    await first.close()
    await notify(http, b, "42")  # while no device of 42 is on A
    back = await connect(a, "42")
    await back.wait_count(1)
    await notify(http, b, "42")
    await back.wait_count(2)
    assert a.metric("pns_broker_user_channels") == 1
    assert await subscribers(redis_server.url, "42") == 1


async def test_no_change_slips_between_a_first_count_and_the_subscription(
    start_node, connect, redis_server, sqlite_url
) -> None:
    """A notification published after a device's node asked Redis for the user's channel,
    but before Redis took that request, still reaches the device: the node accepts the
    device, and reads its first count, once Redis confirmed the subscription."""
    a = (await routed_nodes(start_node, redis_server.url, 1))[0]
    async with RoundRobinProxy([redis_server.port]) as proxy:
        b = (await routed_nodes(start_node, f"redis://127.0.0.1:{proxy.port}/0", 1))[0]
        proxy.hold()  # B's SUBSCRIBE for user 42 waits in the proxy
        connecting = asyncio.create_task(connect(b, "42"))
        await eventually(lambda: b.metric("pns_broker_user_channels") == 1)
        async with Publisher(
            store_url=sqlite_url, redis_url=redis_server.url, routing="routed"
        ) as publisher:
            await publisher.notify("42", {"text": "in the gap"})  # published when it returns
        proxy.release()
        device = await connecting
        assert await device.first_event() == (EV_COUNT, {"count": 1, "rev": 1})
    assert a.metric("pns_broker_user_channels") == 0


async def test_publishers_reach_routed_nodes(start_node, connect, redis_server, sqlite_url) -> None:
    a, b = await routed_nodes(start_node, redis_server.url, 2)
    on_b = await connect(b, "42")
    await on_b.wait_count(0)
    # PNS's publisher, routed like the nodes.
    async with Publisher(
        store_url=sqlite_url, redis_url=redis_server.url, routing="routed"
    ) as publisher:
        await publisher.notify("42", {"text": "routed"})
    await on_b.wait_count(1)
    # python-socketio's own write-only manager still works: every node hears the
    # classic channel (at broadcast mode's cost for those messages).
    created = await a.node.store.create("42", {"text": "from the app"})
    manager = socketio.AsyncRedisManager(redis_server.url, write_only=True)
    try:
        await manager.emit(
            EV_SIGNAL, {"notification_id": created.id, "user_id": "42"}, room=user_room("42")
        )
        await on_b.wait_count(2)
    finally:
        await manager.redis.aclose()


async def test_the_sync_publisher_and_pns_notify_follow_pns_routing(
    start_node, connect, redis_server, sqlite_url
) -> None:
    a, b = await routed_nodes(start_node, redis_server.url, 2)
    on_b = await connect(b, "42")
    await on_b.wait_count(0)
    env = {
        "PNS_STORE_URL": sqlite_url,
        "PNS_REDIS_URL": redis_server.url,
        "PNS_ROUTING": "routed",
    }
    with SyncPublisher.from_env(env) as publisher:
        await asyncio.to_thread(publisher.notify, "42", {"text": "sync"})
    await on_b.wait_count(1)
    done = await asyncio.to_thread(
        run_pns, "notify", "--user", "42", "--data", '{"text": "cli"}', env=env
    )
    assert done.returncode == 0, done.stderr
    await on_b.wait_count(2)
    # Both went on the user's channel only: A, holding nobody, heard neither. A
    # broadcast publisher's message comes after them on the classic channel, which A
    # hears: once A has it, it would have had the others.
    async with Publisher(store_url=sqlite_url, redis_url=redis_server.url) as classic:
        await classic.notify("42", {"text": "classic"})
    await on_b.wait_count(3)
    await eventually(lambda: a.metric("pns_broker_messages_received_total") >= 1)
    assert a.metric("pns_broker_messages_received_total") == 1
