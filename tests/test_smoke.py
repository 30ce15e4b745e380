"""The README's `make run`, started as a user would start it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from pns_sio.wire import EV_DISCONNECT

from .support.devices import Device
from .support.ports import free_port
from .support.processes import run_pns

ROOT = Path(__file__).resolve().parent.parent


async def read_until(stream: asyncio.StreamReader, marker: str, timeout: float) -> str:
    seen = []
    async with asyncio.timeout(timeout):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError("make run ended early:\n" + "".join(seen))
            seen.append(line)
            if marker in line:
                return line


async def test_make_run_serves_a_demo_node(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PNS_PORT": str(port),
        "PNS_STORE_URL": f"sqlite:///{tmp_path / 'pns.db'}",
        # The venv is already there: make must not rebuild it under the test.
        "PYTHON": sys.executable,
    }
    proc = await asyncio.create_subprocess_exec(
        "make",
        "--no-print-directory",
        "run",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    device = Device()
    try:
        assert proc.stdout is not None
        banner = await read_until(proc.stdout, "PNS listening on", timeout=60)
        assert f":{port}" in banner and "/demo" in banner
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/healthz") as response:
                assert response.status == 200
            async with http.get(f"{url}/demo") as response:
                assert response.status == 200
                assert "PNS demo" in await response.text()
        await device.connect(url, auth={"user_id": "42"})
        await device.wait_count(0)
        # SIGTERM (what a Procfile platform sends): clients are told to go elsewhere.
        os.killpg(proc.pid, signal.SIGTERM)
        await device.until(lambda: any(e == EV_DISCONNECT for e, _ in device.events))
        assert (EV_DISCONNECT, {"code": "shutdown", "reconnect": True}) in device.events
        async with asyncio.timeout(15):
            await proc.wait()
    finally:
        await device.close()
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


def test_a_taken_port_is_named_with_the_setting_that_changes_it(tmp_path: Path) -> None:
    """`make run` twice: the second node says the port is taken and how to choose
    another, and never says it is ready."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {"PNS_PORT": str(port), "PNS_STORE_URL": f"sqlite:///{tmp_path / 'pns.db'}"}
        done = run_pns("serve", "--demo", env=env)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "PNS_PORT or --port" in done.stderr
    assert "node ready" not in done.stdout + done.stderr
    assert "listening" not in done.stdout


def test_an_unreachable_store_is_named_with_its_cause(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = {
        "PNS_STORE_URL": f"mongodb://app:s3cret-pw@127.0.0.1:{port}/pns",
        "PNS_STORE_TIMEOUT": "1",
        "PNS_PORT": str(free_port()),
    }
    done = run_pns("serve", "--demo", env=env)
    assert done.returncode == 1
    assert f"cannot open the store mongodb://app:***@127.0.0.1:{port}/pns" in done.stderr
    assert "Connect call failed" in done.stderr or "refused" in done.stderr.lower()
    assert "s3cret-pw" not in done.stderr


async def test_the_node_says_where_its_sqlite_file_is_once_it_listens(tmp_path: Path) -> None:
    """A relative sqlite:/// path is relative to the working directory: the node names
    the absolute file when it is ready, and only once it listens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PNS_")}
    env.update(PNS_PORT=str(free_port()), PNS_STORE_URL="sqlite:///data/pns.db")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pns_sio",
        "serve",
        "--demo",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        ready = await read_until(proc.stdout, "node ready", timeout=30)
        assert f"SQLite file {tmp_path / 'data' / 'pns.db'}" in ready
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await proc.wait()
