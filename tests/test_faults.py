"""Faults with real processes: nodes crashed (SIGKILL), stopped (SIGTERM), clients frozen.

Every node here is a real ``pns serve`` subprocess sharing one SQLite file and
one Redis; devices are real python-socketio clients, some behind a round-robin
TCP proxy (a load balancer). Each node's log is printed at teardown, so a
failing test shows it. docs/reliability.md maps each fault to its test.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pns_sio.wire import EV_DISCONNECT

from .support.api import API_TOKEN
from .support.devices import ConnectRefused, Device, reconnecting
from .support.processes import NodeProcess
from .support.proxy import RoundRobinProxy

FROZEN_CLIENT = Path(__file__).parent / "support" / "frozen_client.py"
WAIT = 15.0  # generous deadline for things that normally take milliseconds
EXIT_BOUND = 5.0  # seconds a node may take to exit once nothing holds its drain


@pytest.fixture
async def make_device() -> AsyncIterator[Callable[..., Device]]:
    made: list[Device] = []

    def make(**options: Any) -> Device:
        device = Device(**options)
        made.append(device)
        return device

    yield make
    for device in made:
        await device.close()


@pytest.fixture
async def start_proxy() -> AsyncIterator[Callable[..., Awaitable[RoundRobinProxy]]]:
    proxies: list[RoundRobinProxy] = []

    async def start(*nodes: NodeProcess) -> RoundRobinProxy:
        proxy = await RoundRobinProxy([node.port for node in nodes]).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        await proxy.close()


async def wait_subscribed(*nodes: NodeProcess) -> None:
    """Until every node hears the others (``/readyz`` says the broker is up)."""
    for node in nodes:
        await node.wait_answer("/readyz", lambda _, body: json.loads(body)["broker"] == "up", WAIT)


async def create(http: aiohttp.ClientSession, node: NodeProcess, user: str, n: int) -> str:
    async with http.post(
        f"{node.url}/api/v1/notifications",
        json={"user_id": user, "data": {"n": n}},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as response:
        body = await response.json()
        assert response.status == 201, body
        return str(body["id"])


def seen_ids(sqlite_url: str) -> set[str]:
    """What the store says was seen, read the way an operator would (read-only)."""
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT notification_id FROM notifications WHERE seen_date IS NOT NULL")
        return {row[0] for row in rows}


def batch_ids(device: Device) -> list[list[str]]:
    return [
        [n["id"] for n in data["notifications"]]
        for event, data in device.events
        if event == "new-notifications"
    ]


async def test_node_killed_with_an_unacked_batch_devices_move_and_get_it_again(
    spawn_node, start_proxy, make_device, http, redis_server, sqlite_url
) -> None:
    a, b = await asyncio.gather(
        spawn_node("a", redis_url=redis_server.url, ack_timeout=30),
        spawn_node("b", redis_url=redis_server.url, ack_timeout=30),
    )
    await wait_subscribed(a, b)
    proxy = await start_proxy(a, b)
    # Round robin: the 1st and 3rd connections land on A, the 2nd on B.
    reader = make_device(ack_mode="manual", name="reader", **reconnecting())
    watcher = make_device(name="watcher", **reconnecting())
    sibling = make_device(name="sibling", **reconnecting())
    for device in (reader, watcher, sibling):
        await device.connect(proxy.url, auth={"user_id": "42"})
        await device.wait_count(0)
    assert (await a.metrics())["pns_connections"] == 2
    assert (await b.metrics())["pns_connections"] == 1
    ids = [await create(http, b, "42", n) for n in range(3)]
    for device in (reader, watcher, sibling):
        await device.wait_count(3)

    fetching = asyncio.create_task(reader.fetch({"limit": 10}))
    batch, _never_acked = await reader.next_batch()
    assert [n["id"] for n in batch["notifications"]] == ids

    await a.kill()
    # A's devices reconnect through the proxy, which skips the dead node.
    for device in (reader, sibling):
        await device.until(lambda d=device: d.connects == 2 and d.kept is not None, WAIT)
    assert reader.kept is not None and reader.kept["count"] == 3
    assert sibling.kept == reader.kept
    assert (await b.metrics())["pns_connections"] == 3
    assert proxy.routed["refused"] >= 1
    fetching.cancel()  # that answer can never come: its connection is gone
    assert seen_ids(sqlite_url) == set()

    # The same notifications come again, and this time the ack marks them seen.
    reader.ack_mode = "auto"
    assert await reader.fetch({"limit": 10}) == {"ok": True, "delivered": 3, "has_more": False}
    assert batch_ids(reader) == [ids, ids]
    for device in (reader, watcher, sibling):
        await device.wait_count(0)
    assert seen_ids(sqlite_url) == set(ids)
    # Nothing else reached the watcher, which stayed on B throughout.
    assert watcher.connects == 1 and batch_ids(watcher) == []

    # A comes back on its port and serves the truth.
    await a.start()
    late = make_device(name="late")
    await late.connect(a.url, auth={"user_id": "42"})
    assert await late.wait_count(0) == reader.kept


async def test_sigterm_drains_finishes_acks_in_flight_and_sends_clients_elsewhere(
    spawn_node, make_device, http, redis_server, sqlite_url
) -> None:
    a, b = await asyncio.gather(
        spawn_node("a", redis_url=redis_server.url, ack_timeout=30, shutdown_grace=20),
        spawn_node("b", redis_url=redis_server.url),
    )
    await wait_subscribed(a, b)
    reader = make_device(ack_mode="manual", name="reader")
    idle = make_device(name="idle")
    watcher = make_device(name="watcher")
    await reader.connect(a.url, auth={"user_id": "42"})
    await idle.connect(a.url, auth={"user_id": "42"})
    await watcher.connect(b.url, auth={"user_id": "42"})
    # A client told to go that comes straight back must find the door shut (refused by
    # the OS), not a node that spends its stop refusing handshakes.
    prober = make_device(name="prober")
    back: list[str] = []
    probed = asyncio.Event()

    async def come_straight_back(data: dict[str, Any]) -> None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", a.port)
        except ConnectionRefusedError:
            back.append("refused")
        else:
            writer.close()
            back.append("accepted")
        probed.set()

    prober.sio.on(EV_DISCONNECT, come_straight_back)
    await prober.connect(a.url, auth={"user_id": "7"})
    ids = [await create(http, b, "42", n) for n in range(2)]
    for device in (reader, idle, watcher):
        await device.wait_count(2)
    fetching = asyncio.create_task(reader.fetch())
    _, ack = await reader.next_batch()

    a.terminate()
    terminated = time.monotonic()
    # /readyz turns 503 at once, while the listener still answers.
    _, body = await a.wait_answer("/readyz", lambda status, _: status == 503, WAIT)
    assert json.loads(body)["stopping"] is True
    # No new connection, no new fetch; the one in flight goes on.
    newcomer = make_device(name="newcomer")
    with pytest.raises(ConnectRefused) as refused:
        await newcomer.connect(a.url, auth={"user_id": "42"})
    assert refused.value.error["data"] == {"code": "unavailable"}
    answer = await idle.fetch()
    assert answer["ok"] is False and answer["error"]["code"] == "unavailable", answer
    assert a.running and not reader.disconnected.is_set()

    # The batch acknowledged during the grace is marked seen, everywhere.
    ack.set_result(None)
    assert await fetching == {"ok": True, "delivered": 2, "has_more": False}
    await watcher.wait_count(0)
    assert seen_ids(sqlite_url) == set(ids)

    # Then every client is told to go elsewhere, and the process ends.
    bye = (EV_DISCONNECT, {"code": "shutdown", "reconnect": True})
    for device in (reader, idle):
        await device.until(lambda d=device: d.disconnected.is_set(), WAIT)
        assert bye in device.events
    async with asyncio.timeout(WAIT):
        await probed.wait()
    assert back == ["refused"]
    assert await a.wait(EXIT_BOUND) == 0
    assert "Traceback" not in a.tail()
    print(f"SIGTERM to exit: {time.monotonic() - terminated:.2f}s")
    # Reconnecting elsewhere, as told: the true count.
    moved = make_device(name="moved")
    await moved.connect(b.url, auth={"user_id": "42"})
    await moved.wait_count(0)


async def test_sigterm_with_an_ack_that_never_comes_exits_after_the_grace_marking_nothing(
    spawn_node, make_device, http, sqlite_url
) -> None:
    grace = 1.0
    a = await spawn_node("a", ack_timeout=30, shutdown_grace=grace)
    reader = make_device(ack_mode="manual", name="reader")
    await reader.connect(a.url, auth={"user_id": "42"})
    await create(http, a, "42", 0)
    await reader.wait_count(1)
    fetching = asyncio.create_task(reader.fetch(timeout=WAIT))
    await reader.next_batch()

    a.terminate()
    terminated = time.monotonic()
    assert await a.wait(grace + EXIT_BOUND) == 0
    took = time.monotonic() - terminated
    assert took >= grace
    assert "Traceback" not in a.tail()
    assert (EV_DISCONNECT, {"code": "shutdown", "reconnect": True}) in reader.events
    fetching.cancel()
    assert seen_ids(sqlite_url) == set()
    print(f"SIGTERM to exit with an unacked batch: {took:.2f}s (grace {grace}s)")


async def test_sigterm_on_an_idle_node_exits_at_once_and_cleanly(spawn_node, make_device) -> None:
    a = await spawn_node("a")
    device = make_device(name="gone")
    await device.connect(a.url, auth={"user_id": "42"})
    await device.wait_count(0)
    await device.close()
    await a.wait_metric("pns_connections", 0, timeout=WAIT)
    a.terminate()
    assert await a.wait(EXIT_BOUND) == 0
    assert "Traceback" not in a.tail()


async def test_frozen_client_is_dropped_by_the_ping_timeout(spawn_node) -> None:
    interval, timeout, margin = 1.0, 1.0, 3.0
    node = await spawn_node("a", ping_interval=interval, ping_timeout=timeout)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(FROZEN_CLIENT),
        node.url,
        "42",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        async with asyncio.timeout(WAIT):
            line = await child.stdout.readline()
        assert line.startswith(b"connected"), line
        await node.wait_metric("pns_connections", 1, timeout=WAIT)
        # Answering pings keeps a live client connected past the timeout.
        await asyncio.sleep(interval + timeout + 0.5)
        assert (await node.metrics())["pns_connections"] == 1

        child.send_signal(signal.SIGSTOP)  # TCP stays open; nothing answers any more
        took = await node.wait_metric(
            "pns_connections", 0, timeout=interval + timeout + margin, interval=0.1
        )
        print(f"frozen client dropped after {took:.2f}s (ping {interval}s + {timeout}s)")
        assert (await node.metrics())['pns_connects_total{outcome="accepted"}'] == 1
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGKILL)
            child.send_signal(signal.SIGCONT)
        await child.wait()
