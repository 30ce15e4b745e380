"""Fixtures that start real parts: Redis, stores, nodes, Socket.IO devices."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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

from .support.devices import Device
from .support.nodes import RunningNode, node_settings
from .support.redis import RedisProcess

pytest_plugins = ["tests.support.mongo"]

API_TOKEN = "test-api-token-0123456789abcdef0123456789"


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


def fresh_mongo_database(url: str, test_name: str) -> str:
    """``<session database>_<hash of the test>``: dropped with the session's database."""
    import hashlib
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    suffix = hashlib.sha1(test_name.encode()).hexdigest()[:12]
    path = f"{parts.path}_{suffix}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


StartNode = Callable[..., Awaitable[RunningNode]]


@pytest.fixture
async def start_node(sqlite_url: str) -> AsyncIterator[StartNode]:
    """Factory: start a node (demo auth unless told otherwise); all are stopped at the end."""
    started: list[RunningNode] = []

    async def start(settings: Settings | None = None, **overrides: Any) -> RunningNode:
        if settings is None:
            overrides.setdefault("store_url", sqlite_url)
            settings = node_settings(**overrides)
        node = await RunningNode(settings).start()
        started.append(node)
        return node

    yield start
    for node in reversed(started):
        await node.stop()


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


ConnectDevice = Callable[..., Awaitable[Device]]


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


async def notify(
    http: aiohttp.ClientSession, node: RunningNode, user: str, data: dict[str, Any] | None = None
) -> str:
    """Create a notification through the node's HTTP API; return its id."""
    async with http.post(
        f"{node.url}/api/v1/notifications",
        json={"user_id": user, "data": data or {"text": "hi"}},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as response:
        body = await response.json()
        assert response.status == 201, body
        return str(body["id"])
