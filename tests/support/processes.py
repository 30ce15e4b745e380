"""Real ``pns serve`` nodes as subprocesses, for tests that crash and stop them.

A ``NodeProcess`` is one node on a fixed loopback port: ``start()`` waits (with
a deadline) for its banner and for ``/healthz``; ``kill()`` is a crash
(SIGKILL), ``terminate()`` what a Procfile platform sends (SIGTERM, the node
drains), and ``start()`` again brings it back on the same port. Signals go to
the node's own pid, never to a process found by name.

Each node writes stdout and stderr to ``<workdir>/<name>.log``;
``NodeProcesses.report()`` gives the tail of every log, for the test output.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO, Any

import aiohttp

from .api import API_TOKEN
from .ports import free_port

PNS_BINARY = Path(sys.executable).with_name("pns")
BANNER = "PNS listening on"
START_DEADLINE = 30.0  # import + store + broker on a busy 2-core machine
STOP_DEADLINE = 20.0
POLL_INTERVAL = 0.05
HTTP_TIMEOUT = 2.0
LOG_TAIL_CHARS = 6000

# What a test node runs with unless told otherwise: demo auth, short timeouts.
DEFAULT_SETTINGS: dict[str, Any] = {
    "host": "127.0.0.1",
    "demo": True,
    "api_token": API_TOKEN,
    "ack_timeout": 5,
    "store_timeout": 2,
    "ping_interval": 5,
    "ping_timeout": 5,
    "shutdown_grace": 5,
    "log_level": "INFO",
}


class NodeStartError(RuntimeError):
    pass


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def stable_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    A node restarted after a crash binds its port again; a port from the
    ephemeral range could meanwhile become the local end of some outgoing
    connection (the clients reconnecting), and the restart would fail.
    """
    low = _ephemeral_low()
    pick = random.SystemRandom()
    for _ in range(100):
        port = pick.randrange(10000, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def settings_env(settings: Mapping[str, Any]) -> dict[str, str]:
    """``{"ack_timeout": 1}`` -> ``{"PNS_ACK_TIMEOUT": "1"}``; None leaves a variable unset."""
    env: dict[str, str] = {}
    for name, value in settings.items():
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        env["PNS_" + name.upper()] = text
    return env


def _child_env(settings: Mapping[str, Any]) -> dict[str, str]:
    # Nothing of the caller's own PNS configuration leaks into the node.
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PNS_") and key != "PORT"
    }
    return {**inherited, "PYTHONUNBUFFERED": "1", **settings_env(settings)}


def _open_log(path: Path, header: str) -> IO[bytes]:
    out = path.open("ab")
    out.write(f"--- {header} ---\n".encode())
    out.flush()
    return out


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def run_pns(
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run the ``pns`` command (``python -m pns_sio ARGS``) to its end: none of the
    caller's own ``PNS_*`` variables, ``env`` on top; output captured as text."""
    child = {k: v for k, v in os.environ.items() if not k.startswith("PNS_")}
    child.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pns_sio", *args],
        env=child,
        input=stdin,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> ``{'pns_connections': 2.0, 'pns_fetches_total{outcome="ok"}': 5.0}``."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            samples[name] = float(value)
    return samples


class NodeProcess:
    """One ``pns serve`` subprocess; keeps its port across restarts."""

    def __init__(self, workdir: Path, name: str, settings: Mapping[str, Any]) -> None:
        self.name = name
        self.settings = {**DEFAULT_SETTINGS, **settings}
        self.port = int(self.settings.get("port") or stable_port())
        self.settings["port"] = self.port
        self.log = workdir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, deadline: float = START_DEADLINE) -> NodeProcess:
        """Start the node and return once it printed its banner and ``/healthz`` answers.

        Raises ``NodeStartError`` (with the log's tail) if it exits or is not
        up within ``deadline`` seconds; then the process is killed.
        """
        assert not self.running, f"{self.name} is already running"
        self.starts += 1
        offset = self.log.stat().st_size if self.log.exists() else 0
        out = _open_log(self.log, f"{self.name} start #{self.starts}")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                str(PNS_BINARY),
                "serve",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=_child_env(self.settings),
            )
        finally:
            out.close()
        try:
            await self._wait_ready(offset, deadline)
        except BaseException:
            await self.kill()
            raise
        return self

    async def _wait_ready(self, offset: int, deadline: float) -> None:
        assert self.proc is not None
        until = time.monotonic() + deadline
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < until:
                if self.proc.returncode is not None:
                    raise NodeStartError(
                        f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                    )
                if BANNER in _read_from(self.log, offset) and await self._healthy(http):
                    return
                await asyncio.sleep(POLL_INTERVAL)
        raise NodeStartError(f"{self.name} not ready in {deadline:.0f}s:\n{self.tail()}")

    async def _healthy(self, http: aiohttp.ClientSession) -> bool:
        try:
            async with http.get(
                f"{self.url}/healthz", timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def send_signal(self, signum: int) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signum)

    async def kill(self) -> int | None:
        """Crash it (SIGKILL by pid) and reap it; return the exit status."""
        if self.proc is None:
            return None
        self.send_signal(signal.SIGKILL)
        return await self.proc.wait()

    def terminate(self) -> None:
        """SIGTERM: the node drains, tells its clients to go elsewhere, then exits."""
        self.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float) -> int:
        """The exit status, once it exits; ``TimeoutError`` after ``timeout`` seconds."""
        assert self.proc is not None
        async with asyncio.timeout(timeout):
            return await self.proc.wait()

    async def stop(self, timeout: float = STOP_DEADLINE) -> int | None:
        """Graceful stop (SIGTERM), then SIGKILL if it is still there after ``timeout``."""
        if self.proc is None:
            return None
        self.terminate()
        try:
            return await self.wait(timeout)
        except TimeoutError:
            return await self.kill()

    async def restart(self) -> NodeProcess:
        await self.stop()
        return await self.start()

    async def get(self, path: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.url}{path}", timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT)) as r,
        ):
            return r.status, await r.text()

    async def wait_answer(
        self,
        path: str,
        accept: Callable[[int, str], bool],
        timeout: float,
        interval: float = POLL_INTERVAL,
    ) -> tuple[int, str]:
        """Poll ``GET path`` until ``accept(status, body)``; ``TimeoutError`` after ``timeout``.

        (The node is another process: there is no event to await.)
        """
        last: tuple[int, str] | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    last = await self.get(path)
                    if accept(*last):
                        return last
                    await asyncio.sleep(interval)
        except TimeoutError:
            raise TimeoutError(f"{self.name}: GET {path} still {last} after {timeout}s") from None

    async def metrics(self) -> dict[str, float]:
        status, text = await self.get("/metrics")
        assert status == 200, text
        return parse_metrics(text)

    async def wait_metric(
        self, sample: str, expected: float, timeout: float, interval: float = POLL_INTERVAL
    ) -> float:
        """Poll ``/metrics`` (another process: no event to await) until ``sample`` equals
        ``expected``; return the seconds it took. ``TimeoutError`` after ``timeout``."""
        started = time.monotonic()
        last: float | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    last = (await self.metrics()).get(sample)
                    if last == expected:
                        return time.monotonic() - started
                    await asyncio.sleep(interval)
        except TimeoutError:
            raise TimeoutError(
                f"{self.name}: {sample} still {last}, not {expected}, after {timeout}s"
            ) from None

    def tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        if not self.log.exists():
            return "(no log)"
        text = self.log.read_text(errors="replace")
        return text[-chars:]


class NodeProcesses:
    """Owns the nodes it spawns; ``close()`` stops each one by its pid."""

    def __init__(self, workdir: Path, **defaults: Any) -> None:
        self.workdir = workdir
        self.defaults = defaults
        self.nodes: list[NodeProcess] = []

    async def spawn(self, name: str | None = None, **settings: Any) -> NodeProcess:
        """Start a node with ``DEFAULT_SETTINGS`` + the group's defaults + ``settings``
        (names of ``Settings`` fields: ``store_url=``, ``redis_url=``, ``ack_timeout=``)."""
        node = NodeProcess(
            self.workdir,
            name or f"node{len(self.nodes) + 1}",
            {**self.defaults, **settings},
        )
        self.nodes.append(node)
        return await node.start()

    async def close(self) -> None:
        # Graceful, so a node's own shutdown problems show in its log; bounded.
        await asyncio.gather(*(node.stop() for node in self.nodes))

    def report(self) -> str:
        parts = []
        for node in self.nodes:
            status = "running" if node.running else f"exit {node.proc and node.proc.returncode}"
            parts.append(f"===== {node.name} ({node.url}, {status}) {node.log}\n{node.tail()}")
        return "\n".join(parts)


# The spawn_node fixture: start a named ``pns serve`` node with these settings.
SpawnNode = Callable[..., Awaitable[NodeProcess]]
