"""What each way of creating a notification costs, per notification.

Starts its own redis-server and one PNS node (SQLite store) on loopback, keeps
one device connected, and times N sequential notifications each way: the
asyncio Publisher, the SyncPublisher (from a plain thread), the HTTP API
(keep-alive client), and `pns notify` (one process per notification, and
bulk JSON lines). Bounded: N per way, and every wait has a deadline.

    .venv/bin/python bench/publish_cost.py [N]
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

# The harness puts the repository root on sys.path for tests.support (the tests' helpers).
import harness  # noqa: F401
import socketio

from pns_sio import Publisher, SyncPublisher
from tests.support.ports import free_port
from tests.support.redis import RedisProcess

BIN = Path(sys.executable).parent
TOKEN = "bench-api-token-0123456789abcdef0123456789"


async def wait_http(url: str, deadline: float) -> None:
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(url)


async def main(n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pns-bench-"))
    node_port = free_port()
    redis = RedisProcess(tmp)
    redis.start()
    env = {
        **os.environ,
        "PNS_STORE_URL": f"sqlite:///{tmp / 'pns.db'}",
        "PNS_REDIS_URL": redis.url,
        "PNS_API_TOKEN": TOKEN,
        "PNS_PORT": str(node_port),
        "PNS_LOG_LEVEL": "WARNING",
    }
    node = subprocess.Popen([str(BIN / "pns"), "serve", "--demo"], env=env)
    url = f"http://127.0.0.1:{node_port}"
    results: list[tuple[str, int, float]] = []
    try:
        await wait_http(f"{url}/readyz", time.monotonic() + 30)
        device = socketio.AsyncClient()
        counts: asyncio.Queue[int] = asyncio.Queue()
        device.on("new-notifications-count", lambda c: counts.put_nowait(c["count"]))
        await device.connect(url, auth={"user_id": "42"}, transports=["websocket"])
        seen = 0

        async def until_count(target: int) -> None:
            nonlocal seen
            async with asyncio.timeout(60):
                while seen < target:
                    seen = max(seen, await counts.get())

        await until_count(0)
        total = 0

        async def timed(name: str, count: int, work) -> None:  # type: ignore[no-untyped-def]
            nonlocal total
            start = time.perf_counter()
            await work()
            total += count
            await until_count(total)
            results.append((name, count, (time.perf_counter() - start) / count))

        async with Publisher(store_url=env["PNS_STORE_URL"], redis_url=env["PNS_REDIS_URL"]) as p:
            await p.notify("warmup", {})

            async def async_publisher() -> None:
                for i in range(n):
                    await p.notify("42", {"i": i})

            await timed("Publisher.notify (asyncio)", n, async_publisher)

        sync = SyncPublisher(store_url=env["PNS_STORE_URL"], redis_url=env["PNS_REDIS_URL"])

        def sync_publisher() -> None:
            for i in range(n):
                sync.notify("42", {"i": i})

        sync.notify("warmup", {})
        await timed("SyncPublisher.notify (thread)", n, lambda: asyncio.to_thread(sync_publisher))
        sync.close()

        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:

            async def http_api() -> None:
                for i in range(n):
                    async with http.post(
                        f"{url}/api/v1/notifications", json={"user_id": "42", "data": {"i": i}}
                    ) as response:
                        assert response.status == 201

            await timed("HTTP API POST (keep-alive)", n, http_api)

        cli_n = max(3, n // 50)

        def cli_each() -> None:
            for i in range(cli_n):
                subprocess.run(
                    [str(BIN / "pns"), "notify", "--user", "42", "--data", json.dumps({"i": i})],
                    env=env,
                    check=True,
                    capture_output=True,
                    timeout=60,
                )

        await timed("pns notify (one process each)", cli_n, lambda: asyncio.to_thread(cli_each))
        lines = "".join(json.dumps({"user_id": "42", "data": {"i": i}}) + "\n" for i in range(n))

        def cli_bulk() -> None:
            subprocess.run(
                [str(BIN / "pns"), "notify"],
                input=lines,
                text=True,
                env=env,
                check=True,
                capture_output=True,
                timeout=120,
            )

        await timed("pns notify (bulk JSON lines)", n, lambda: asyncio.to_thread(cli_bulk))
        await device.disconnect()
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=30)
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'way':34} {'n':>6} {'ms per notification (until the device saw it)':>48}")
    for name, count, seconds in results:
        print(f"{name:34} {count:>6} {seconds * 1000:>48.2f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
