"""Fixtures that start real parts: Redis, stores, nodes, Socket.IO devices."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp

# Imported up front: hypothesis' pytest plugin otherwise imports it at the end
# of the run, deep in a call stack, where CPython 3.11's assertion-rewriting
# compile fails with "AST constructor recursion depth mismatch".
import hypothesis  # noqa: F401
import pytest

from pns_sio.settings import Settings
from pns_sio.store import NotificationStore, open_store

from .support.databases import fresh_mongo_database
from .support.devices import ConnectDevice, Device
from .support.nodes import RunningNode, StartNode, node_settings
from .support.processes import NodeProcesses, SpawnNode
from .support.redis import RedisProcess

pytest_plugins = ["tests.support.mongo"]

# Seconds a test's own tasks get to end after its fixtures are torn down (closing
# sockets finish their close handshakes); past that, a task still running is a leak.
LEAK_GRACE = 2.0
# Tasks a library starts and ends by itself, holding nothing of the test: python-engineio's
# ping task of a long-polling (or upgraded) socket sleeps out its ping interval after the
# socket closed, then returns.
LIBRARY_TASKS = ("AsyncSocket._send_ping",)


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves a task running once everything it started was stopped:
    a task nobody owns outlives its test silently otherwise (the loop closes it)."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    left = {
        t
        for t in asyncio.all_tasks()
        if t not in before
        and t is not current
        and getattr(t.get_coro(), "__qualname__", "") not in LIBRARY_TASKS
    }
    if not left:
        return
    _, pending = await asyncio.wait(left, timeout=LEAK_GRACE)
    if pending:
        names = sorted(f"{t.get_name()} ({t.get_coro()!r:.80})" for t in pending)
        for task in pending:
            task.cancel()
        pytest.fail(f"{len(pending)} tasks still running after the test: {'; '.join(names)}")


def pytest_report_header(config: pytest.Config) -> str:
    """Which optional parts run (the MongoDB one is in tests/support/mongo.py)."""
    from .support.nginx import nginx_binary

    found = nginx_binary()
    return f"nginx: {found}" if found else "nginx: not installed (the reverse-proxy tests skip)"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pns.db'}"


@pytest.fixture(params=["sqlite", "mongo", "mongo-standalone"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[NotificationStore]:
    """Each real store backend, empty. ``mongo-standalone``: MongoDB as PNS uses a server
    that refuses transactions (writes in order, counts taken at each read)."""
    opened: NotificationStore
    if request.param == "sqlite":
        opened = await open_store(f"sqlite:///{tmp_path / 'store.db'}", timeout=5.0)
    else:
        from pns_sio.store.mongo import MongoStore

        url = fresh_mongo_database(request.getfixturevalue("mongo_url"), request.node.name)
        transactions = request.param == "mongo"
        opened = await MongoStore.open(url, timeout=5.0, transactions=transactions)
    yield opened
    await opened.close()


@pytest.fixture
def routing() -> str:
    """How nodes with Redis route messages; modules of cross-node tests run both modes."""
    return "broadcast"


@pytest.fixture
async def start_node(sqlite_url: str, routing: str) -> AsyncIterator[StartNode]:
    """Factory: start a node (demo auth unless told otherwise); all are stopped at the end."""
    started: list[RunningNode] = []

    async def start(settings: Settings | None = None, **overrides: Any) -> RunningNode:
        if settings is None:
            overrides.setdefault("store_url", sqlite_url)
            overrides.setdefault("routing", routing)
            settings = node_settings(**overrides)
        node = await RunningNode(settings).start()
        started.append(node)
        return node

    yield start
    for node in reversed(started):
        await node.stop()


@pytest.fixture
async def spawn_node(tmp_path: Path, sqlite_url: str) -> AsyncIterator[SpawnNode]:
    """Factory: a ``pns serve`` subprocess on the test's SQLite store; all stopped at the end."""
    nodes = NodeProcesses(tmp_path, store_url=sqlite_url)
    try:
        yield nodes.spawn
    finally:
        await nodes.close()
        print(nodes.report())  # pytest shows it only when the test failed


@pytest.fixture
async def node(start_node: StartNode) -> RunningNode:
    return await start_node()


@pytest.fixture
async def cluster(start_node: StartNode, redis_server: RedisProcess, sqlite_url: str):
    """Two nodes sharing one Redis and one store, both subscribed."""
    nodes = [await start_node(redis_url=redis_server.url) for _ in range(2)]
    for running in nodes:
        await running.node.broker_ready.wait()
    return nodes


@pytest.fixture
async def connect() -> AsyncIterator[ConnectDevice]:
    """Factory: a connected device; ``user=`` uses demo auth. All are closed at the end."""
    devices: list[Device] = []

    async def connect_device(
        node: RunningNode,
        user: str | None = None,
        *,
        auth: Any = None,
        ack_mode: str = "auto",
        **kwargs: Any,
    ) -> Device:
        device = Device(ack_mode=ack_mode, name=f"{user}@{node.settings.port}")
        devices.append(device)
        if auth is None and user is not None:
            auth = {"user_id": user}
        return await device.connect(node.url, auth=auth, **kwargs)

    yield connect_device
    for device in devices:
        await device.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
