"""Many nodes joined by a real Redis: counts reach every device, whichever node it is on."""

from __future__ import annotations

import logging

import pytest
import socketio
from redis import asyncio as aioredis

from pns_sio.wire import EV_SIGNAL, user_room

from .support.api import notify
from .support.ports import free_port
from .support.redis import RedisProcess
from .support.waiting import eventually


@pytest.fixture(params=["broadcast", "routed"])
def routing(request: pytest.FixtureRequest) -> str:
    """Everything here holds in both modes (routed: tests/test_routed.py)."""
    return str(request.param)


async def two_nodes(start_node, redis_url: str):
    a = await start_node(redis_url=redis_url)
    b = await start_node(redis_url=redis_url)
    await a.node.broker_ready.wait()
    await b.node.broker_ready.wait()
    return a, b


async def test_count_reaches_the_users_devices_on_every_node(
    start_node, connect, http, redis_server
) -> None:
    a, b = await two_nodes(start_node, redis_server.url)
    on_a = await connect(a, "42")
    on_b = await connect(b, "42")
    stranger = await connect(b, "7")
    await notify(http, a, "42")
    await on_a.wait_count(1)
    await on_b.wait_count(1)
    await notify(http, b, "42")
    await on_a.wait_count(2)
    await on_b.wait_count(2)
    await stranger.wait_count(0)
    assert len(stranger.count_events()) == 1


async def test_ack_on_one_node_drops_the_count_on_the_other(
    start_node, connect, http, redis_server
) -> None:
    a, b = await two_nodes(start_node, redis_server.url)
    reader = await connect(a, "42")
    watcher = await connect(b, "42")
    for _ in range(2):
        await notify(http, b, "42")
    await watcher.wait_count(2)
    await reader.wait_count(2)
    assert await reader.fetch() == {"ok": True, "delivered": 2, "has_more": False}
    await watcher.wait_count(0)
    # The other node learnt the count from the broker, without asking the store.
    assert b.metric("pns_store_queries_total", op="mark_seen") == 0


async def test_a_node_without_the_user_does_no_store_work_for_it(
    start_node, connect, http, redis_server, routing
) -> None:
    a, b = await two_nodes(start_node, redis_server.url)
    device = await connect(a, "42")
    await device.wait_count(0)
    before = b.metric("pns_store_queries_total", op="unseen")
    for _ in range(5):
        await notify(http, a, "42")
    await device.wait_count(5)
    if routing == "broadcast":
        # B's handling sends the device nothing, so there is no event to wait on.
        await eventually(lambda: b.metric("pns_signals_total", handled="no") >= 5)
    else:
        # Routed: B does not even hear of user 42 (tests/test_routed.py shows it).
        assert b.metric("pns_signals_total", handled="no") == 0
    assert b.metric("pns_store_queries_total", op="unseen") == before


async def test_publisher_signal_through_redis_reaches_devices_and_never_the_client(
    start_node, connect, redis_server
) -> None:
    a, b = await two_nodes(start_node, redis_server.url)
    on_a = await connect(a, "42")
    on_b = await connect(b, "42")
    await on_a.wait_count(0)
    await on_b.wait_count(0)
    # The application inserted the record itself, then signals like the publisher does.
    created = await a.node.store.create("42", {"text": "from the app"})
    manager = socketio.AsyncRedisManager(redis_server.url, write_only=True)
    await manager.emit(
        EV_SIGNAL, {"notification_id": created.id, "user_id": "42"}, room=user_room("42")
    )
    await on_a.wait_count(1)
    await on_b.wait_count(1)
    assert all(event != EV_SIGNAL for event, _ in on_a.events + on_b.events)
    await manager.redis.aclose()


async def test_other_events_emitted_by_the_application_reach_clients(
    start_node, connect, redis_server
) -> None:
    _, b = await two_nodes(start_node, redis_server.url)
    on_b = await connect(b, "42")
    await on_b.wait_count(0)
    manager = socketio.AsyncRedisManager(redis_server.url, write_only=True)
    await manager.emit("chat-message", {"text": "hello"}, room=user_room("42"))
    await on_b.until(lambda: ("chat-message", {"text": "hello"}) in on_b.events)
    await manager.redis.aclose()


async def test_counts_converge_after_redis_restarts(start_node, connect, http, tmp_path) -> None:
    redis = RedisProcess(tmp_path)
    redis.start()
    try:
        a, b = await two_nodes(start_node, redis.url)
        on_a = await connect(a, "42")
        on_b = await connect(b, "42")
        await on_b.wait_count(0)
        redis.stop()
        await a.node.broker_down.wait()
        await b.node.broker_down.wait()
        # Broker down: node A still serves its own devices (HTTP API, counts, fetch).
        await notify(http, a, "42")
        await notify(http, a, "42")
        await on_a.wait_count(2)
        assert on_b.kept == {"count": 0, "rev": 0}
        resyncs = b.metric("pns_resyncs_total")
        redis.start()
        # B re-subscribes within seconds and re-sends the true count.
        await on_b.wait_count(2, timeout=10)
        assert b.metric("pns_resyncs_total") == resyncs + 1
        assert await on_a.fetch() == {"ok": True, "delivered": 2, "has_more": False}
        await on_b.wait_count(0)
    finally:
        redis.stop()


async def test_a_signal_carrying_count_and_rev_is_forwarded_without_store_work(
    start_node, connect, redis_server
) -> None:
    a, b = await two_nodes(start_node, redis_server.url)
    on_a = await connect(a, "42")
    on_b = await connect(b, "42")
    await on_a.wait_count(0)
    await on_b.wait_count(0)
    queries = [n.metric("pns_store_queries_total", op="unseen") for n in (a, b)]
    manager = socketio.AsyncRedisManager(redis_server.url, write_only=True)
    signal = {"user_id": "42", "notification_id": "x", "count": 7, "rev": 9}
    await manager.emit(EV_SIGNAL, signal, room=user_room("42"))
    assert await on_a.wait_count(7) == {"count": 7, "rev": 9}
    assert await on_b.wait_count(7) == {"count": 7, "rev": 9}
    assert [n.metric("pns_store_queries_total", op="unseen") for n in (a, b)] == queries
    await manager.redis.aclose()


async def test_a_publish_lost_to_a_stalled_redis_is_made_good(
    start_node, connect, http, redis_server
) -> None:
    a, b = await two_nodes(start_node, redis_server.url)
    on_b = await connect(b, "42")
    await on_b.wait_count(0)
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        # Redis takes no PUBLISH for 6 s: longer than a node's two tries of 2 s each.
        await admin.execute_command("CLIENT", "PAUSE", "6000", "WRITE")
        await notify(http, a, "42")  # stored at once; its signal is lost
        # Once Redis takes messages again, A publishes the user's true count.
        await on_b.wait_count(1, timeout=20)
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
    assert a.metric("pns_publish_recoveries_total") >= 1


async def test_unreadable_messages_from_redis_are_dropped_and_counted(
    start_node, connect, http, redis_server
) -> None:
    a, _ = await two_nodes(start_node, redis_server.url)
    device = await connect(a, "42")
    await device.wait_count(0)
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        # Anyone who can publish on the channel: not JSON, nested past 64 levels, a list.
        for junk in ["{not json", "[" * 100 + "]" * 100, "[1, 2]"]:
            await admin.publish(a.settings.redis_channel, junk)
    finally:
        await admin.aclose()
    await notify(http, a, "42")  # published after the junk: heard after it, and heard
    await device.wait_count(1)
    await eventually(lambda: a.metric("pns_broker_messages_dropped_total") == 3)


async def test_an_unreachable_redis_is_named_and_shown_until_it_answers(
    start_node, cluster, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="pns_sio")
    port = free_port()  # nothing listens there
    node = await start_node(redis_url=f"redis://:hunter2-secret@127.0.0.1:{port}/0")
    await node.node.broker_down.wait()
    await eventually(lambda: "cannot subscribe to redis at redis://" in caplog.text)
    assert f"127.0.0.1:{port}" in caplog.text
    assert "hunter2-secret" not in caplog.text
    assert node.metric("pns_broker_up") == 0
    # The nodes that hear Redis say so.
    assert all(running.metric("pns_broker_up") == 1 for running in cluster)


async def test_a_node_knows_its_own_messages_from_redis_before_reading_them(
    start_node, connect, http, redis_server
) -> None:
    """Redis echoes each publish to its publisher; a node drops its own unread. What it
    publishes (the signal of a notification created through it) is its own to it only,
    and an application's message is nobody's."""
    a, b = await two_nodes(start_node, redis_server.url)
    on_b = await connect(b, "42")
    await connect(a, "42")
    await on_b.wait_count(0)
    listener = aioredis.Redis.from_url(redis_server.url)
    sub = listener.pubsub()
    await sub.psubscribe(a.settings.redis_channel + "*")
    await sub.get_message(timeout=5)  # the subscription's confirmation
    try:
        await notify(http, a, "42")
        seen = await sub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert seen is not None
        raw = seen["data"]
        assert EV_SIGNAL.encode() in raw
        assert a.node.broker.is_own(raw)
        assert not b.node.broker.is_own(raw)
        await on_b.wait_count(1)  # and B read it

        app = socketio.AsyncRedisManager(redis_server.url, write_only=True)
        await app.emit("news", {"n": 1}, room=user_room("42"))
        await app.redis.aclose()
        seen = await sub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert seen is not None
        assert not a.node.broker.is_own(seen["data"])
        assert not b.node.broker.is_own(seen["data"])
    finally:
        await sub.aclose()
        await listener.aclose()
