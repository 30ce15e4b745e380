"""The processes a run starts: nodes (PNS or the peer) and redis-server.

``Runner`` owns every one of them and stops each by its pid at the end. redis-server is
the tests' ``RedisProcess`` (tests/support/redis.py) and /metrics is parsed by the tests'
``parse_metrics``: one copy of those helpers for the tests and the bench.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.processes import parse_metrics
from tests.support.redis import RedisProcess

from .config import API_TOKEN, BENCH, JWT_SECRET, PEER_DIR, PNS_BIN, log
from .machine import proc_cpu_seconds, proc_rss

# How long a node may take to answer /readyz after its start (import + store on 2 cores).
READY_DEADLINE_S = 30


@dataclass
class Proc:
    """One process the runner started, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    killed: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss(self) -> int:
        return proc_rss(self.pid)

    async def stop(self, timeout: float = 15.0) -> float:
        """SIGTERM, wait (bounded), SIGKILL; returns seconds to exit."""
        t0 = time.monotonic()
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            deadline = t0 + timeout
            while self.popen.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.popen.poll() is None:
                log(f"{self.name} did not stop in {timeout}s: SIGKILL")
                self.killed = True
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait(5)
        return time.monotonic() - t0


class Runner:
    """Owns every process the run starts; stops them all, by pid, at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[Proc] = []
        self.redis: RedisProcess | None = None

    def spawn(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> Proc:
        log_path = self.tmp / f"{name}.log"
        fh = open(log_path, "ab")
        popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        fh.close()
        p = Proc(name, popen, log_path)
        self.procs.append(p)
        return p

    async def start_redis(self) -> str:
        """redis-server on a free port, started once per run (both targets share it); its URL."""
        if self.redis is not None and self.redis_running:
            return self.redis.url
        self.redis = RedisProcess(self.tmp)
        # start() polls with PING and sleeps between tries: off the event loop, whose
        # load-generator readers keep running meanwhile.
        await asyncio.to_thread(self.redis.start)
        return self.redis.url

    @property
    def redis_running(self) -> bool:
        return self.redis is not None and self.redis.running

    def redis_cpu(self) -> float:
        """redis-server's CPU seconds so far; 0 while there is none (before the two-node runs)."""
        if self.redis is None or self.redis.pid is None:
            return 0.0
        return proc_cpu_seconds(self.redis.pid)

    async def stop_all(self) -> None:
        for p in reversed(self.procs):
            if p.popen.poll() is None:
                await p.stop(10)
        # After the nodes, which would otherwise log the lost connection.
        if self.redis is not None:
            self.redis.stop()


@dataclass
class Target:
    """How to start one kind of node: PNS or the peer."""

    name: str
    label: str
    variant: str = (
        ""  # PNS only: bench/experiments/pns_variant.py changes (nodeflate,orjson,uvloop)
    )

    def argv_env(
        self, port: int, store: Path, redis_url: str | None
    ) -> tuple[list[str], dict[str, str], Path | None]:
        # BENCH_PNS_<NAME> passes PNS_<NAME> to PNS nodes (a setting's before/after).
        env = {k: v for k, v in os.environ.items() if not k.startswith("PNS_")}
        if self.name == "pns":
            env.update(
                {k[len("BENCH_") :]: v for k, v in os.environ.items() if k.startswith("BENCH_PNS_")}
            )
        env.update(
            PNS_HOST="127.0.0.1",
            PNS_PORT=str(port),
            PNS_JWT_SECRET=JWT_SECRET,
            PNS_API_TOKEN=API_TOKEN,
            PNS_STORE_URL=f"sqlite:///{store}",
            PNS_LOG_LEVEL="WARNING",
        )
        if redis_url:
            env["PNS_REDIS_URL"] = redis_url
        if self.name == "pns":
            env["PNS_REDIS_CHANNEL"] = "pns-bench"
            # Rate limits off for the runs (the peer has none): 0 turns each off.
            env.update(PNS_EVENT_RATE="0", PNS_HANDSHAKE_RATE="0", PNS_API_RATE="0")
            if self.variant:
                env["PNS_BENCH_VARIANT"] = self.variant
                return (
                    [sys.executable, str(BENCH / "experiments" / "pns_variant.py"), "serve"],
                    env,
                    None,
                )
            return [str(PNS_BIN), "serve"], env, None
        if self.name == "floor":  # experiments only: bench/experiments/floor_server.py
            return [sys.executable, str(BENCH / "experiments" / "floor_server.py")], env, None
        env["PNS_REDIS_CHANNEL"] = "peer-bench"
        return ["node", str(PEER_DIR / "server.js")], env, PEER_DIR


@dataclass
class Node:
    """One node of a target on a fixed port; start() again restarts it on the same port."""

    target: Target
    port: int
    store: Path
    redis_url: str | None
    proc: Proc | None = None
    runner: Runner | None = None
    index: int = 0

    @property
    def addr(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port}

    async def start(self, runner: Runner, http: aiohttp.ClientSession) -> float:
        """Start it; return the seconds until /readyz says its broker is up."""
        self.runner = runner
        argv, env, cwd = self.target.argv_env(self.port, self.store, self.redis_url)
        t0 = time.monotonic()
        self.proc = runner.spawn(f"{self.target.name}-{self.index}-{self.port}", argv, env, cwd)
        deadline = t0 + READY_DEADLINE_S
        while time.monotonic() < deadline:
            if self.proc.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.proc.name} exited: {self.proc.log_path.read_text()[-2000:]}"
                )
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                async with http.get(
                    f"http://127.0.0.1:{self.port}/readyz", timeout=aiohttp.ClientTimeout(total=1)
                ) as r:
                    if r.status == 200:
                        body = await r.json()
                        if body.get("broker") in ("up", "embedded"):
                            return time.monotonic() - t0
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.proc.name} not ready in {READY_DEADLINE_S} s")

    async def metrics(self, http: aiohttp.ClientSession, tries: int = 3) -> dict[str, float]:
        """The node's /metrics as {"name{labels}": value}; {} when it does not answer (logged)."""
        text = ""
        for attempt in range(tries):
            try:
                async with http.get(
                    f"http://127.0.0.1:{self.port}/metrics", timeout=aiohttp.ClientTimeout(total=10)
                ) as r:
                    text = await r.text()
                break
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                if attempt == tries - 1:
                    log(
                        f"{self.target.name} :{self.port} /metrics did not answer ({type(exc).__name__})"
                    )
                    return {}
        return parse_metrics(text)
