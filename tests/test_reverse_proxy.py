"""Behind nginx, as real deployments run: docs/deploy/nginx.conf as shipped.

Debian's nginx runs the shipped site (tests/support/nginx.py changes only the
lines it marks: the nodes, the port, the certificate) and terminates TLS in
front of real ``pns serve`` nodes sharing one Redis and one SQLite file.
Devices connect through it over WebSocket and over HTTP long-polling; a node
crashes and comes back behind it. With ``PNS_TRUSTED_PROXIES`` set to nginx's
address, a node limits each client by the address nginx saw, which a client
cannot forge; clients at different addresses are 127.0.0.2, 127.0.0.3, ...
(all loopback on Linux), while nginx reaches the nodes from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from pns_sio.http_api import AUTH_FAILURE_BURST
from pns_sio.settings import Settings

from .support.api import AUTH, notify
from .support.devices import ConnectRefused, Device, reconnecting
from .support.nginx import SHIPPED_SITE, NginxProcess, Request, nginx_binary
from .support.processes import NodeProcess, SpawnNode
from .support.redis import RedisProcess
from .support.waiting import eventually

needs_nginx = pytest.mark.skipif(
    nginx_binary() is None,
    reason="nginx is not installed: `make test` installs it (apt-get install nginx, as root)",
)

WAIT = 15.0  # generous deadline for things that normally take milliseconds
SECRET = "reverse-proxy-tests-secret-0123456789"
NGINX_ADDRESS = "127.0.0.1"  # where nginx's connections to the nodes come from
# A node as in production: JWTs, an API token, nginx trusted for X-Forwarded-For.
SECURED: dict[str, Any] = {"demo": False, "jwt_secret": SECRET, "trusted_proxies": NGINX_ADDRESS}

StartNginx = Callable[..., Awaitable[NginxProcess]]
MakeDevice = Callable[..., Device]


@pytest.fixture
async def start_nginx(tmp_path: Path) -> AsyncIterator[StartNginx]:
    """Factory: nginx in front of the given nodes; stopped by its pid at the end."""
    started: list[NginxProcess] = []

    async def start(*nodes: NodeProcess) -> NginxProcess:
        nginx = NginxProcess(
            tmp_path / f"nginx{len(started)}", [f"127.0.0.1:{n.port}" for n in nodes]
        )
        started.append(nginx)
        return await nginx.start()

    try:
        yield start
    finally:
        for nginx in started:
            await nginx.stop()
            print(nginx.report())


def session_at(address: str) -> aiohttp.ClientSession:
    """An HTTP client whose connections come from ``address``, not verifying TLS (the
    test's certificate is self-signed)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0), ssl=False))


@pytest.fixture
async def make_proxied_device() -> AsyncIterator[Callable[..., Device]]:
    """Factory: an unconnected device talking TLS to nginx, from ``address``."""
    made: list[Device] = []
    sessions: list[aiohttp.ClientSession] = []

    def make(address: str = "127.0.0.1", **options: Any) -> Device:
        def new_session() -> aiohttp.ClientSession:
            session = session_at(address)
            sessions.append(session)
            return session

        device = Device(http_session=new_session, ssl_verify=False, **options)
        made.append(device)
        return device

    yield make
    for device in made:
        await device.close()
    for session in sessions:
        await session.close()


async def wait_subscribed(*nodes: NodeProcess) -> None:
    """Until every node hears the others (``/readyz`` says the broker is up)."""
    for node in nodes:
        await node.wait_answer("/readyz", lambda _, body: json.loads(body)["broker"] == "up", WAIT)


def token(user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 600}, SECRET, "HS256")


def reconnected(device: Device) -> Callable[[], bool]:
    """On a later connection than the first, with its first count."""
    return lambda: device.connects >= 2 and device.kept is not None


@needs_nginx
async def test_websocket_and_long_polling_devices_through_nginx_survive_a_node_crash(
    spawn_node: SpawnNode,
    start_nginx: StartNginx,
    make_proxied_device: MakeDevice,
    redis_server: RedisProcess,
) -> None:
    # A ping a second: an idle long-poll is answered (with a ping) every second.
    timing = {
        "redis_url": redis_server.url,
        "ping_interval": 1,
        "ping_timeout": 5,
        "trusted_proxies": NGINX_ADDRESS,
    }
    a, b = await asyncio.gather(spawn_node("a", **timing), spawn_node("b", **timing))
    await wait_subscribed(a, b)
    nginx = await start_nginx(a, b)
    ws = make_proxied_device(name="ws", **reconnecting())
    poll = make_proxied_device(name="poll", **reconnecting())
    await ws.connect(nginx.url, auth={"user_id": "42"}, transports=["websocket"])
    await poll.connect(nginx.url, auth={"user_id": "42"}, transports=["polling"])
    for device in (ws, poll):
        await device.wait_count(0)
    session = poll.sio.eio.sid

    # Created through nginx's HTTP API; each count reaches the long-polling device
    # as the answer to another poll.
    async with session_at("127.0.0.1") as http:
        for n in range(1, 6):
            await notify(http, nginx, "42", {"n": n})
            for device in (ws, poll):
                await device.wait_count(n)

    def session_requests() -> list[Request]:
        return [r for r in nginx.requests() if f"sid={session}" in r.uri]

    def answered_polls() -> int:
        return sum(r.method == "GET" for r in session_requests())

    # Idle through nginx for ping rounds (each ends a poll): both connections stay.
    idle_since = answered_polls()
    await eventually(lambda: answered_polls() >= idle_since + 2, WAIT)
    assert ws.connects == 1 and ws.sio.connected
    assert poll.connects == 1 and poll.sio.eio.sid == session
    assert poll.sio.transport() == "polling"
    # Sticky: every request of the session went to one node, and none failed.
    requests = session_requests()
    assert answered_polls() >= 5 + 2, requests
    assert {r.status for r in requests} == {200}, requests
    assert len({r.upstream for r in requests}) == 1, requests
    # One client address, one node: the WebSocket is there too.
    holder, other = (a, b) if requests[0].upstream == f"127.0.0.1:{a.port}" else (b, a)
    assert (await holder.metrics())["pns_connections"] == 2
    assert (await other.metrics())["pns_connections"] == 0

    # The node holding both crashes. nginx finds it refusing and sends the
    # devices' reconnections to the other node, where the count is the truth.
    await holder.kill()
    for device in (ws, poll):
        await device.until(reconnected(device), WAIT)
        assert device.kept is not None and device.kept["count"] == 5
    assert ws.kept == poll.kept
    assert (await other.metrics())["pns_connections"] == 2

    # Back behind nginx, and a new notification reaches both devices.
    await holder.start()
    await wait_subscribed(holder)
    async with session_at("127.0.0.1") as http:
        await notify(http, nginx, "42", {"n": 6})
    for device in (ws, poll):
        await device.wait_count(6, WAIT)
    assert ws.sio.transport() == "websocket" and poll.sio.transport() == "polling"


async def post_wrong_token(http: aiohttp.ClientSession, url: str, **headers: str) -> int:
    async with http.post(
        f"{url}/api/v1/notifications",
        json={"user_id": "42", "data": {}},
        headers={"Authorization": "Bearer not-the-token-0123456789abcdef0123456789", **headers},
    ) as response:
        return response.status


@needs_nginx
async def test_wrong_api_tokens_are_limited_by_the_address_nginx_saw(
    spawn_node: SpawnNode, start_nginx: StartNginx
) -> None:
    node = await spawn_node("a", **SECURED)
    nginx = await start_nginx(node)
    burst = int(AUTH_FAILURE_BURST)
    async with session_at("127.0.0.2") as mallory, session_at("127.0.0.3") as alice:
        # Mallory forges a new X-Forwarded-For each time. nginx appends the address
        # it saw, and the node takes the right-most one that is not nginx: hers, so
        # her budget runs out as if she had forged nothing.
        statuses: list[int] = []
        while 429 not in statuses and len(statuses) < 3 * burst:
            forged = f"203.0.113.{len(statuses)}"
            statuses.append(
                await post_wrong_token(mallory, nginx.url, **{"X-Forwarded-For": forged})
            )
        assert statuses[-1] == 429, statuses
        assert statuses.count(401) >= burst, statuses

        # Alice comes through the same nginx from another address: a budget of her
        # own. (Judged by nginx's own address, she would share Mallory's, spent.)
        # Her last wrong guess leaves one try: the right token.
        for _ in range(burst - 1):
            assert await post_wrong_token(alice, nginx.url) == 401
        async with alice.post(
            f"{nginx.url}/api/v1/notifications",
            json={"user_id": "42", "data": {}},
            headers=AUTH,
        ) as response:
            assert response.status == 201, await response.text()


@needs_nginx
async def test_handshakes_are_limited_by_the_address_nginx_saw(
    spawn_node: SpawnNode, start_nginx: StartNginx, make_proxied_device: MakeDevice
) -> None:
    node = await spawn_node("a", **SECURED, handshake_rate=0.001, handshake_burst=2)
    nginx = await start_nginx(node)
    # Through /socket.io/: two handshakes from Mallory's address, whatever she forges.
    for n in range(2):
        device = make_proxied_device("127.0.0.2", name=f"mallory{n}")
        await device.connect(
            nginx.url, auth={"token": token("7")}, headers={"X-Forwarded-For": f"203.0.113.{n}"}
        )
        await device.wait_count(0)
    third = make_proxied_device("127.0.0.2", name="mallory2")
    with pytest.raises(ConnectRefused) as refused:
        await third.connect(
            nginx.url, auth={"token": token("7")}, headers={"X-Forwarded-For": "203.0.113.9"}
        )
    assert refused.value.error["data"] == {"code": "rate_limited"}
    # Alice, at another address, is let in.
    alice = make_proxied_device("127.0.0.3", name="alice")
    await alice.connect(nginx.url, auth={"token": token("42")})
    await alice.wait_count(0)


@needs_nginx
async def test_the_same_origin_is_the_one_the_browser_dialled_at_nginx(
    spawn_node: SpawnNode, start_nginx: StartNginx, make_proxied_device: MakeDevice
) -> None:
    # PNS_ALLOWED_ORIGINS unset: only the node's own origin, which behind nginx is
    # the scheme and host nginx passes on (X-Forwarded-Proto, X-Forwarded-Host).
    node = await spawn_node("a", **SECURED)
    nginx = await start_nginx(node)
    page = make_proxied_device(name="same-origin page")
    await page.connect(nginx.url, auth={"token": token("42")}, headers={"Origin": nginx.url})
    await page.wait_count(0)
    # Without those headers the node would know only its own http://127.0.0.1 and
    # refuse that page; with them, http:// is not what the browser dialled.
    plain = make_proxied_device(name="plain-http origin")
    with pytest.raises(ConnectRefused):
        await plain.connect(
            nginx.url,
            auth={"token": token("42")},
            headers={"Origin": nginx.url.replace("https://", "http://")},
        )
    foreign = make_proxied_device(name="foreign page")
    with pytest.raises(ConnectRefused):
        await foreign.connect(
            nginx.url, auth={"token": token("42")}, headers={"Origin": "https://evil.example"}
        )
    assert (await node.metrics())['pns_connects_total{outcome="origin_refused"}'] == 2


@needs_nginx
async def test_nginx_serves_the_client_script_and_keeps_metrics_to_the_nodes(
    spawn_node: SpawnNode, start_nginx: StartNginx
) -> None:
    node = await spawn_node("a", **SECURED)
    nginx = await start_nginx(node)
    async with session_at("127.0.0.1") as http:
        async with http.get(f"{nginx.url}/pns-client.js") as response:
            assert response.status == 200
            assert "PNSClient" in await response.text()
        async with http.get(f"{nginx.url}/readyz") as response:
            assert response.status == 200
        # Through nginx a scrape would reach some node: Prometheus asks each one.
        async with http.get(f"{nginx.url}/metrics") as response:
            assert response.status == 404
    assert (await node.get("/metrics"))[0] == 200


def test_the_proxy_timeouts_outlast_a_ping_round_at_the_default_settings() -> None:
    # A node may be silent for a ping interval, and a client gets the ping timeout
    # to answer: nginx must not cut a connection sooner. (The live tests use short
    # pings; this is the shipped file against the shipped defaults.)
    defaults: dict[str, Any] = {field.name: field.default for field in dataclasses.fields(Settings)}
    ping_round = float(defaults["ping_interval"]) + float(defaults["ping_timeout"])
    text = SHIPPED_SITE.read_text()
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        values = re.findall(rf"^\s*{directive}\s+(\d+)s;", text, re.MULTILINE)
        assert values, f"{directive} is not set in seconds in {SHIPPED_SITE}"
        assert all(int(v) >= 2 * ping_round for v in values), (directive, values, ping_round)
