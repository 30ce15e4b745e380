"""PNS benchmark: PNS nodes against the Node socket.io peer, same load generator, same run.

    .venv/bin/python bench/run.py --profile short   # `make bench`, < 3 minutes
    .venv/bin/python bench/run.py --profile full    # `make bench-full`

Starts everything it measures itself (redis-server on a free port, PNS nodes through
`pns serve`, peer nodes through `node server.js`, load-generator workers), on 127.0.0.1
only, each process bounded in time, and stops every process it started by its pid.
Writes bench/results/latest.json (and <profile>-<utc time>.json), PNG plots beside
them, and prints a table: PNS against the peer, with ratios.

Scenarios, per target (PNS, then the peer), all in one run:
  idle        ramp to N devices on one node, hold; connect rate, RSS per connection, idle CPU
  fanout      users x 2 devices on one node; notifications through the HTTP API at rising
              fixed rates; notify -> count-on-device latency, delivered share, sustained rate
  store work  count queries per notification (from /metrics); a burst to one user
  storm       the node restarts under its devices; time until every device is back with the
              right count, and the store queries that cost
  two nodes   (redis) devices of a user on both nodes: cross-node fan-out latency; fetch and
              acknowledge throughput and ack -> count on the other node; store queries on a
              node that holds the user and on one that does not
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEER_DIR = BENCH / "peers" / "node-socketio"
LOADGEN_DIR = BENCH / "loadgen"
RESULTS = BENCH / "results"
PNS_BIN = Path(sys.executable).parent / "pns"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

JWT_SECRET = "bench-jwt-secret-0123456789abcdef0123456789"
API_TOKEN = "bench-api-token-0123456789abcdef0123456789"

# Histogram geometry: the same as bench/loadgen/hist.js.
H_MIN_MS = 0.01
H_GROWTH = 1.01

PROFILES: dict[str, dict[str, Any]] = {
    "short": {
        "workers": 2,
        "idle_users": 1000,  # x 2 devices
        "idle_hold_s": 4,
        "fanout_users": 1000,  # reuses the idle devices when equal
        "fanout_rates": [250, 500, 1000, 2000, 4000],
        "fanout_step_s": 5,
        "fanout_grace_s": 2,
        "fanout_stop_after_fail": True,
        "storm": True,
        "storm_timeout_s": 40,
        "two_users": 1000,
        "two_fanout_rates": [500, 1000],
        "two_fanout_step_s": 5,
        "two_writers_rate": 250,
        "fetch_s": 5,
        "fetch_latency_s": 4,
        "fetch_latency_users": 20,
        "fetch_post_rate": 200,
        "fetch_limit": 1,
        "holder_users": 50,
        "holder_posts_each": 2,
        "burst": 20,
        "max_seconds": 400,
    },
    "full": {
        "workers": 2,
        "idle_users": 9500,  # 19,000 devices
        "idle_hold_s": 20,
        "fanout_users": 5000,
        "fanout_rates": [500, 1000, 2000, 3000, 4000, 5000, 6000, 8000],
        "fanout_step_s": 60,
        "fanout_grace_s": 3,
        "fanout_stop_after_fail": True,
        "storm": True,
        "storm_timeout_s": 120,
        "two_users": 5000,
        "two_fanout_rates": [1000, 2000, 3000, 4000, 5000],
        "two_fanout_step_s": 30,
        "two_writers_rate": 500,
        "fetch_s": 60,
        "fetch_latency_s": 30,
        "fetch_latency_users": 50,
        "fetch_post_rate": 500,
        "fetch_limit": 1,
        "holder_users": 200,
        "holder_posts_each": 3,
        "burst": 50,
        "max_seconds": 3600,
    },
}

SUSTAIN_P99_MS = 100.0
SUSTAIN_DELIVERED = 0.999


def log(*args: Any) -> None:
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its reaped children are not mixed: the process only."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return float("nan")


def proc_threads_cpu(pid: int) -> float:
    return proc_cpu_seconds(pid)


def proc_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def machine_busy() -> tuple[float, float]:
    """(busy seconds, total seconds) of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def listen_overflows() -> int:
    try:
        text = Path("/proc/net/netstat").read_text().splitlines()
        for head, vals in zip(text[::2], text[1::2], strict=False):
            if head.startswith("TcpExt:"):
                d = dict(zip(head.split()[1:], vals.split()[1:], strict=False))
                return int(d.get("ListenOverflows", 0))
    except OSError:
        pass
    return 0


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


@dataclass
class Proc:
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
        self.redis: Proc | None = None
        self.redis_url: str | None = None

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
        if self.redis is not None and self.redis.popen.poll() is None:
            assert self.redis_url
            return self.redis_url
        exe = shutil.which("redis-server")
        if not exe:
            raise SystemExit("redis-server is missing (make system-deps installs it)")
        port = free_port()
        self.redis = self.spawn(
            "redis",
            [
                exe,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.tmp),
            ],
            dict(os.environ),
        )
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            await asyncio.sleep(0.05)
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        return self.redis_url

    async def stop_all(self) -> None:
        for p in reversed(self.procs):
            if p.popen.poll() is None:
                await p.stop(10)


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
        env = {k: v for k, v in os.environ.items() if not k.startswith("PNS_")}
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
        self.runner = runner
        argv, env, cwd = self.target.argv_env(self.port, self.store, self.redis_url)
        t0 = time.monotonic()
        self.proc = runner.spawn(f"{self.target.name}-{self.index}-{self.port}", argv, env, cwd)
        deadline = t0 + 30
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
        raise RuntimeError(f"{self.proc.name} not ready in 30 s")

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
        out: dict[str, float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[key] = float(value)
        return out


def mdelta(after: dict[str, float], before: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


Q_UNSEEN = 'pns_store_queries_total{op="unseen"}'
# Notifications, not store calls: PNS stores HTTP creates with create_many, the peer with create.
Q_CREATED = "pns_notifications_created_total"


def store_queries(m: dict[str, float]) -> dict[str, float]:
    out = {}
    for k, v in m.items():
        mm = re.match(r'pns_store_queries_total\{op="([a-z_]+)"\}', k)
        if mm:
            out[mm.group(1)] = v
    return out


def store_mean_ms(m0: dict[str, float], m1: dict[str, float]) -> dict[str, float]:
    """Mean store call time (queueing included) per op between two /metrics readings."""
    out = {}
    for k, v in m1.items():
        mm = re.match(r'pns_store_seconds_sum\{op="([a-z_]+)"\}', k)
        if not mm:
            continue
        n_key = f'pns_store_seconds_count{{op="{mm.group(1)}"}}'
        n = m1.get(n_key, 0) - m0.get(n_key, 0)
        if n:
            out[mm.group(1)] = round((v - m0.get(k, 0)) / n * 1000, 2)
    return out


# -- load-generator workers --------------------------------------------------------------------


class Worker:
    def __init__(self, index: int, max_seconds: int) -> None:
        self.index = index
        self.max_seconds = max_seconds
        self.proc: asyncio.subprocess.Process | None = None
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.next_id = 1
        self.ready = 0
        self.reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def local_addresses(self) -> list[str]:
        # 8 source addresses per worker: 127.0.0.2.. (ports run out past ~28,000 per address).
        return [f"127.0.0.{2 + self.index * 8 + i}" for i in range(8)]

    async def start(self, log_dir: Path) -> None:
        self.stderr = open(log_dir / f"loadgen-{self.index}.log", "ab")
        self.proc = await asyncio.create_subprocess_exec(
            "node",
            *os.environ.get("BENCH_LOADGEN_NODE_ARGS", "").split(),
            str(LOADGEN_DIR / "worker.js"),
            f"--max-seconds={self.max_seconds}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self.stderr,
            cwd=LOADGEN_DIR,
            limit=64 * 1024 * 1024,
            start_new_session=True,
        )
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc and self.proc.stdout
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                for fut in self.pending.values():
                    if not fut.done():
                        fut.set_exception(RuntimeError(f"loadgen worker {self.index} exited"))
                return
            msg = json.loads(line)
            if "id" in msg:
                fut = self.pending.pop(msg["id"], None)
                if fut and not fut.done():
                    fut.set_result(msg)
            elif msg.get("event") == "progress":
                self.ready = msg["ready"]

    async def call(self, cmd: str, timeout: float = 600, **kw: Any) -> dict[str, Any]:
        assert self.proc and self.proc.stdin
        cid = self.next_id
        self.next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[cid] = fut
        self.proc.stdin.write((json.dumps({"id": cid, "cmd": cmd, **kw}) + "\n").encode())
        await self.proc.stdin.drain()
        result = await asyncio.wait_for(fut, timeout)
        if not result.get("ok"):
            raise RuntimeError(f"loadgen {self.index} {cmd}: {result.get('error')}")
        return result

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid) if self.proc else 0.0

    def rss(self) -> int:
        return proc_rss(self.pid) if self.proc else 0

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self.reader:
            self.reader.cancel()
        self.stderr.close()


class Pool:
    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    def split(self, lo: int, hi: int) -> list[tuple[int, int]]:
        n = len(self.workers)
        step = math.ceil((hi - lo) / n)
        return [(lo + i * step, min(hi, lo + (i + 1) * step)) for i in range(n)]

    async def all(
        self,
        cmd: str,
        per_worker: list[dict[str, Any]] | None = None,
        timeout: float = 600,
        **kw: Any,
    ) -> list[dict[str, Any]]:
        calls = []
        for i, w in enumerate(self.workers):
            extra = per_worker[i] if per_worker else {}
            calls.append(w.call(cmd, timeout=timeout, **kw, **extra))
        return list(await asyncio.gather(*calls))

    def cpu(self) -> float:
        return sum(w.cpu() for w in self.workers)

    def rss(self) -> int:
        return sum(w.rss() for w in self.workers)

    @property
    def ready(self) -> int:
        return sum(w.ready for w in self.workers)


# -- histograms (merge of the workers' sparse histograms) -----------------------------------------


def merge_hists(hs: list[dict[str, Any]]) -> dict[str, Any]:
    buckets: dict[int, int] = {}
    n = 0
    mx = 0.0
    total = 0.0
    for h in hs:
        n += h["n"]
        mx = max(mx, h["max"])
        total += h["sum"]
        for i, c in h["b"]:
            buckets[i] = buckets.get(i, 0) + c
    return {"n": n, "max": mx, "sum": total, "b": sorted(buckets.items())}


def pct(h: dict[str, Any], q: float) -> float | None:
    if h["n"] == 0:
        return None
    rank = math.ceil(q * h["n"])
    seen = 0
    for i, c in h["b"]:
        seen += c
        if seen >= rank:
            upper = H_MIN_MS if i == 0 else H_MIN_MS * H_GROWTH**i
            return min(upper, h["max"])
    return float(h["max"])


def summarize(h: dict[str, Any]) -> dict[str, Any]:
    return {
        "n": h["n"],
        "p50_ms": r3(pct(h, 0.50)),
        "p90_ms": r3(pct(h, 0.90)),
        "p99_ms": r3(pct(h, 0.99)),
        "p999_ms": r3(pct(h, 0.999)),
        "max_ms": r3(h["max"]) if h["n"] else None,
        "mean_ms": r3(h["sum"] / h["n"]) if h["n"] else None,
    }


def r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


# -- measuring windows ------------------------------------------------------------------------------


class Window:
    """CPU of the nodes, the workers, redis and the whole machine over one phase."""

    def __init__(self, nodes: list[Node], pool: Pool, runner: Runner) -> None:
        self.nodes = nodes
        self.pool = pool
        self.runner = runner
        self.t0 = time.monotonic()
        self.node_cpu0 = [n.proc.cpu() if n.proc else 0.0 for n in nodes]
        self.lg0 = pool.cpu()
        self.redis0 = (
            runner.redis.cpu() if runner.redis and runner.redis.popen.poll() is None else 0.0
        )
        self.busy0, self.total0 = machine_busy()
        self.ovf0 = listen_overflows()
        t = os.times()
        self.driver0 = t.user + t.system

    def close(self) -> dict[str, Any]:
        dt = time.monotonic() - self.t0
        busy1, total1 = machine_busy()
        ours_nodes = [
            ((n.proc.cpu() if n.proc else 0.0) - c0)
            for n, c0 in zip(self.nodes, self.node_cpu0, strict=True)
        ]
        lg = self.pool.cpu() - self.lg0
        rd = (
            (self.runner.redis.cpu() - self.redis0)
            if self.runner.redis and self.runner.redis.popen.poll() is None
            else 0.0
        )
        machine = busy1 - self.busy0
        ncpu = os.cpu_count() or 1
        t = os.times()
        driver = t.user + t.system - self.driver0
        other = machine - sum(ours_nodes) - lg - rd - driver
        return {
            "seconds": round(dt, 3),
            "node_cpu_pct": [round(100 * c / dt, 1) for c in ours_nodes],
            "loadgen_cpu_pct": round(100 * lg / dt, 1),
            "redis_cpu_pct": round(100 * rd / dt, 1),
            "driver_cpu_pct": round(100 * driver / dt, 1),
            "machine_cpu_pct": round(100 * machine / dt, 1),
            "machine_cpu_capacity_pct": 100 * ncpu,
            "other_cpu_pct": round(100 * max(0.0, other) / dt, 1),
            "listen_overflows": listen_overflows() - self.ovf0,
        }


# -- the scenarios ---------------------------------------------------------------------------------------


class Bench:
    def __init__(
        self,
        profile: str,
        only: list[str],
        tmp: Path,
        *,
        py_spy: bool = False,
        offer_deflate: bool = True,
    ) -> None:
        self.profile_name = profile
        self.p = PROFILES[profile]
        self.py_spy = py_spy
        self.offer_deflate = offer_deflate
        self.profiles: dict[str, Any] = {}
        self.only = only
        self.tmp = tmp
        self.runner = Runner(tmp)
        self.http: aiohttp.ClientSession
        self.pool: Pool
        self.plots: dict[str, Any] = {}

    async def new_pool(self) -> Pool:
        workers = [Worker(i, self.p["max_seconds"]) for i in range(self.p["workers"])]
        for w in workers:
            await w.start(self.tmp)
        return Pool(workers)

    async def connect(
        self,
        nodes: list[Node],
        users: tuple[int, int],
        per_user: int = 2,
        placement_offset: int = 0,
        sample: Node | None = None,
        reconnect: bool = False,
        timeout_s: float = 300,
    ) -> dict[str, Any]:
        """Connect users x per_user devices (device d on nodes[d % len]); sample RSS on the way."""
        targets = [n.addr for n in nodes]
        ranges = self.pool.split(*users)
        per = [
            {"users": list(r), "local_addresses": w.local_addresses()}
            for r, w in zip(ranges, self.pool.workers, strict=True)
        ]
        samples: list[tuple[int, int]] = []
        stop = asyncio.Event()

        async def sampler() -> None:
            base = self.pool.ready
            while not stop.is_set():
                if sample and sample.proc:
                    samples.append((self.pool.ready - base, sample.proc.rss()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.25)

        for w in self.pool.workers:
            w.ready = 0
        task = asyncio.create_task(sampler())
        try:
            res = await self.pool.all(
                "connect",
                per,
                timeout=timeout_s + 30,
                secret=JWT_SECRET,
                targets=targets,
                per_user=per_user,
                placement_offset=placement_offset,
                concurrency=100,
                reconnect=reconnect,
                timeout_s=timeout_s,
                offer_deflate=self.offer_deflate,
            )
        finally:
            stop.set()
            await task
        ready = sum(r["ready"] for r in res)
        failed = sum(r["failed"] for r in res)
        firsts = [r["first_ready"] for r in res if r["first_ready"]]
        lasts = [r["last_ready"] for r in res if r["last_ready"]]
        span = (max(lasts) - min(firsts)) / 1000 if firsts and lasts else None
        t0 = min(r["t0"] for r in res)
        wall = (max(lasts) - t0) / 1000 if lasts else None
        errors: dict[str, int] = {}
        for r in res:
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        return {
            "devices": (users[1] - users[0]) * per_user,
            "ready": ready,
            "failed": failed,
            "seconds": r3(wall),
            "rate_per_s": round(ready / wall, 1) if wall else None,
            "span_rate_per_s": round(ready / span, 1) if span else None,
            "handshake_to_count": summarize(merge_hists([r["connect_hist"] for r in res])),
            "errors": errors,
            "rss_samples": samples,
        }

    async def post(
        self,
        rate: float,
        duration_s: float,
        targets: list[Node],
        users: tuple[int, int] | None = None,
        watch: bool = True,
        grace_s: float = 2.0,
    ) -> dict[str, Any]:
        """Open-loop posts, each worker for the users of ``users`` it holds, the rate split by users held."""
        lo, hi = (
            users
            if users is not None
            else (min(r[0] for r in self.pool_ranges), max(r[1] for r in self.pool_ranges))
        )
        shares = [max(0, min(hi, r[1]) - max(lo, r[0])) for r in self.pool_ranges]
        total = sum(shares) or 1
        per = [{"rate": rate * sh / total, "user_range": [lo, hi]} for sh in shares]
        res = await self.pool.all(
            "post",
            per,
            timeout=duration_s + grace_s + 60,
            duration_s=duration_s,
            targets=[t.addr for t in targets],
            api_token=API_TOKEN,
            watch=watch,
            grace_s=grace_s,
        )
        lat = merge_hists([r["latency"] for r in res])
        httph = merge_hists([r["http"] for r in res])
        lag = merge_hists([r["lag"] for r in res])
        errors: dict[str, int] = {}
        for r in res:
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        sent = sum(r["sent"] for r in res)
        expected = sum(r["expected"] for r in res)
        delivered = sum(r["delivered"] for r in res)
        return {
            "rate": rate,
            "sent": sent,
            "http_ok": sum(r["http_ok"] for r in res),
            "http_errors": errors,
            "send_seconds": round(max(r["elapsed_send_s"] for r in res), 3),
            "achieved_rate": round(sent / max(0.001, max(r["elapsed_send_s"] for r in res)), 1),
            "expected_deliveries": expected,
            "delivered": delivered,
            "delivered_share": round(delivered / expected, 6) if expected else None,
            "latency": summarize(lat),
            "http_latency": summarize(httph),
            "post_lag": summarize(lag),
        }

    # -- per target -------------------------------------------------------------------------------

    async def run_target(self, target: Target) -> dict[str, Any]:
        out: dict[str, Any] = {"target": target.label}
        tdir = self.tmp / target.name
        tdir.mkdir()
        store = tdir / "store.db"
        p = self.p
        self.pool = await self.new_pool()
        try:
            node = Node(target, free_port(), store, None, index=0)
            out["start_seconds"] = round(await node.start(self.runner, self.http), 3)
            await asyncio.sleep(0.5)
            rss0 = node.proc.rss() if node.proc else 0
            out["rss_empty_bytes"] = rss0

            # idle ----------------------------------------------------------------------------
            n_idle = p["idle_users"]
            self.pool_ranges = self.pool.split(0, n_idle)
            log(f"{target.name}: idle: connecting {n_idle * 2} devices")
            w = Window([node], self.pool, self.runner)
            spy = self.start_py_spy(target, node, "idle-ramp", max(2, n_idle * 2 // 500))
            conn = await self.connect([node], (0, n_idle), sample=node)
            ramp = w.close()
            if spy:
                ramp["py_spy"] = await self.finish_py_spy(*spy)
            await asyncio.sleep(1.0)
            w = Window([node], self.pool, self.runner)
            await asyncio.sleep(p["idle_hold_s"])
            hold = w.close()
            rss1 = node.proc.rss() if node.proc else 0
            samples = conn.pop("rss_samples")
            self.plots.setdefault("rss", {})[target.label] = samples + [(conn["ready"], rss1)]
            out["idle"] = {
                **conn,
                "node_cpu_ms_per_connection": round(
                    ramp["node_cpu_pct"][0] / 100 * ramp["seconds"] * 1000 / max(1, conn["ready"]),
                    3,
                ),
                "loadgen_cpu_ms_per_connection": round(
                    ramp["loadgen_cpu_pct"] / 100 * ramp["seconds"] * 1000 / max(1, conn["ready"]),
                    3,
                ),
                "rss_bytes": rss1,
                "rss_per_connection_kib": round((rss1 - rss0) / 1024 / max(1, conn["ready"]), 2),
                "ramp": ramp,
                "hold": hold,
                "idle_cpu_pct": hold["node_cpu_pct"][0],
                "loadgen_rss_bytes": self.pool.rss(),
            }
            log(
                f"{target.name}: idle: {conn['ready']} ready at {conn['rate_per_s']}/s, "
                f"{out['idle']['rss_per_connection_kib']} KiB/conn, idle cpu {hold['node_cpu_pct'][0]}%"
            )

            # fan-out, one node ----------------------------------------------------------------
            n_fan = p["fanout_users"]
            if n_fan != n_idle:
                out["idle_disconnect_all"] = await self.disconnect_all(node)
                self.pool_ranges = self.pool.split(0, n_fan)
                log(f"{target.name}: fanout: connecting {n_fan * 2} devices")
                out["fanout_connect"] = {
                    k: v
                    for k, v in (await self.connect([node], (0, n_fan))).items()
                    if k != "rss_samples"
                }
            steps = []
            for rate in p["fanout_rates"]:
                m0 = await node.metrics(self.http)
                w = Window([node], self.pool, self.runner)
                spy = self.start_py_spy(target, node, f"fanout-{rate}", p["fanout_step_s"])
                step = await self.post(
                    rate, p["fanout_step_s"], [node], grace_s=p["fanout_grace_s"]
                )
                step["window"] = w.close()
                if spy:
                    step["py_spy"] = await self.finish_py_spy(*spy)
                m1 = await node.metrics(self.http)
                created = mdelta(m1, m0, Q_CREATED) or 1
                step["store_queries"] = {
                    k: v - store_queries(m0).get(k, 0) for k, v in store_queries(m1).items()
                }
                step["count_queries_per_notification"] = round(
                    mdelta(m1, m0, Q_UNSEEN) / created, 4
                )
                add_cpu_costs(step)
                step["sustained"] = sustained(step)
                steps.append(step)
                log(
                    f"{target.name}: fanout {rate}/s: p50 {step['latency']['p50_ms']} p99 {step['latency']['p99_ms']} ms, "
                    f"delivered {step['delivered_share']}, node cpu {step['window']['node_cpu_pct']}, "
                    f"loadgen cpu {step['window']['loadgen_cpu_pct']}%"
                )
                if not step["sustained"] and p["fanout_stop_after_fail"]:
                    break
                await asyncio.sleep(0.5)
            ok_rates = [s["rate"] for s in steps if s["sustained"]]
            out["fanout"] = {
                "users": n_fan,
                "devices": n_fan * 2,
                "steps": steps,
                "max_sustained_rate": max(ok_rates) if ok_rates else 0,
            }

            # store work: a burst of notifications to one user held here ------------------------
            # (after the node has worked off what the last fan-out step left queued)
            out["settle_seconds_after_fanout"] = await self.settle([node])
            m0 = await node.metrics(self.http)
            burst = await self.post(p["burst"] * 20, 0.05, [node], users=(0, 1), grace_s=2)
            m1 = await node.metrics(self.http)
            out["burst_one_node"] = {
                "notifications": burst["sent"],
                "count_queries": mdelta(m1, m0, Q_UNSEEN),
                "latency": burst["latency"],
                "delivered_share": burst["delivered_share"],
            }

            # reconnect storm -------------------------------------------------------------------
            if p["storm"]:
                status = await self.pool.all("status")
                right_before = sum(s["right"] for s in status)
                log(
                    f"{target.name}: storm: {sum(s['ready'] for s in status)} devices, {right_before} with the right count"
                )
                await self.pool.all("storm_watch")
                w = Window([node], self.pool, self.runner)
                t_kill = time.time()
                old = node.proc
                stop_s = await old.stop(30) if old else 0
                t_stopped = time.time()
                node.proc = None
                start_s = await node.start(self.runner, self.http)
                t_listen = time.time()
                w.node_cpu0 = [node.proc.cpu() if node.proc else 0.0]
                m_new0 = await node.metrics(self.http)
                res = await self.pool.all(
                    "storm_wait", timeout=p["storm_timeout_s"] + 30, timeout_s=p["storm_timeout_s"]
                )
                win = w.close()
                m_new1 = await node.metrics(self.http)
                last = max((r["last_back"] or 0) for r in res) / 1000
                back = sum(r["back"] for r in res)
                total = sum(r["devices"] for r in res)
                q = {
                    k: v - store_queries(m_new0).get(k, 0) for k, v in store_queries(m_new1).items()
                }
                out["storm"] = {
                    "devices": total,
                    "right_before": right_before,
                    "back_with_right_count": back,
                    "wrong": sum(r["wrong"] for r in res),
                    "missing": sum(r["missing"] for r in res),
                    "old_node_stop_seconds": round(stop_s, 3),
                    "old_node_killed_after_30s": bool(old and old.killed),
                    "new_node_start_seconds": round(start_s, 3),
                    "seconds_from_sigterm": round(last - t_kill, 3) if back else None,
                    "seconds_from_listening": round(last - t_listen, 3) if back else None,
                    "accept_rate_per_s": round(back / (last - t_listen), 1)
                    if back and last > t_listen
                    else None,
                    "store_queries": q,
                    "store_queries_per_device": round(sum(q.values()) / max(1, back), 3),
                    "window": win,
                    "back_times_from_listening": [
                        round(t / 1000 - t_listen, 3)
                        for t in sorted(x for r in res for x in r["back_times"])
                    ],
                }
                del t_stopped
                log(
                    f"{target.name}: storm: {back}/{total} back in {out['storm']['seconds_from_listening']} s "
                    f"after listening ({out['storm']['accept_rate_per_s']}/s), queries {q}"
                )
            out["disconnect_all"] = await self.disconnect_all(node)
            if node.proc:
                await node.proc.stop(30)

            # two nodes ---------------------------------------------------------------------------
            out["two_nodes"] = await self.two_nodes(target, store)
        finally:
            await self.pool.all("close", timeout=60)
            for w_ in self.pool.workers:
                await w_.stop()
        return out

    async def two_nodes(self, target: Target, store: Path) -> dict[str, Any]:
        p = self.p
        redis_url = await self.runner.start_redis()
        a = Node(target, free_port(), store, redis_url, index=1)
        b = Node(target, free_port(), store, redis_url, index=2)
        await asyncio.gather(a.start(self.runner, self.http), b.start(self.runner, self.http))
        out: dict[str, Any] = {}
        try:
            n = p["two_users"]
            self.pool_ranges = self.pool.split(0, n)
            log(
                f"{target.name}: two nodes: connecting {n} users x 2 devices (device 0 on A, device 1 on B)"
            )
            conn = await self.connect([a, b], (0, n))
            conn.pop("rss_samples")
            out["connect"] = conn

            # store work: users held on A only, and users held nowhere ----------------------------
            hu = p["holder_users"]
            lo = 1_000_000
            # Held on A only: one device each, connected through worker 0.
            w0 = self.pool.workers[0]
            await w0.call(
                "connect",
                secret=JWT_SECRET,
                targets=[a.addr],
                users=[lo, lo + hu],
                per_user=1,
                concurrency=50,
                timeout_s=60,
                local_addresses=w0.local_addresses(),
                offer_deflate=self.offer_deflate,
            )
            saved = self.pool_ranges
            self.pool_ranges = [(lo, lo + hu)] + [(0, 0)] * (len(self.pool.workers) - 1)
            await self.settle([a, b])
            ma0, mb0 = await a.metrics(self.http), await b.metrics(self.http)
            held = await self.post(
                hu * 10, p["holder_posts_each"] / 10, [b], users=(lo, lo + hu), grace_s=2
            )
            ma1, mb1 = await a.metrics(self.http), await b.metrics(self.http)
            notes = held["sent"] or 1
            self.pool_ranges = [(lo + 10_000, lo + 10_000 + hu)] + [(0, 0)] * (
                len(self.pool.workers) - 1
            )
            # Held nowhere: worker 0 posts for users it does not hold (no deliveries to watch).
            await w0.call(
                "connect",
                secret=JWT_SECRET,
                targets=[a.addr],
                users=[lo + 10_000, lo + 10_000 + hu],
                per_user=0,
                concurrency=50,
                timeout_s=10,
                local_addresses=w0.local_addresses(),
            )
            ma2, mb2 = await a.metrics(self.http), await b.metrics(self.http)
            ghost = await self.post(
                hu * 10,
                p["holder_posts_each"] / 10,
                [a, b],
                users=(lo + 10_000, lo + 10_000 + hu),
                watch=False,
                grace_s=1,
            )
            ma3, mb3 = await a.metrics(self.http), await b.metrics(self.http)
            self.pool_ranges = saved
            out["store_work"] = {
                "held_on_A_only": {
                    "notifications": held["sent"],
                    "posted_through": "B",
                    "count_queries_per_notification_on_holder_A": round(
                        mdelta(ma1, ma0, Q_UNSEEN) / notes, 4
                    ),
                    "count_queries_per_notification_on_other_B": round(
                        mdelta(mb1, mb0, Q_UNSEEN) / notes, 4
                    ),
                    "delivered_share": held["delivered_share"],
                    "latency": held["latency"],
                },
                "held_nowhere": {
                    "notifications": ghost["sent"],
                    "count_queries_A": mdelta(ma3, ma2, Q_UNSEEN),
                    "count_queries_B": mdelta(mb3, mb2, Q_UNSEEN),
                },
            }
            # A burst to one user held on both nodes.
            await self.settle([a, b])
            ma0, mb0 = await a.metrics(self.http), await b.metrics(self.http)
            burst = await self.post(p["burst"] * 20, 0.05, [a], users=(0, 1), grace_s=2)
            ma1, mb1 = await a.metrics(self.http), await b.metrics(self.http)
            out["store_work"]["burst_one_user"] = {
                "notifications": burst["sent"],
                "count_queries_A": mdelta(ma1, ma0, Q_UNSEEN),
                "count_queries_B": mdelta(mb1, mb0, Q_UNSEEN),
                "delivered_share": burst["delivered_share"],
                "latency": burst["latency"],
            }
            log(f"{target.name}: store work: {json.dumps(out['store_work'], default=str)[:400]}")

            # cross-node fan-out ---------------------------------------------------------------------
            steps = []
            # Posts go through A: both nodes share one SQLite file, and a second process writing
            # to it is starved by SQLite's busy handler (measured apart below, "two writers").
            for rate in p["two_fanout_rates"]:
                w = Window([a, b], self.pool, self.runner)
                spy = self.start_py_spy(
                    target, a, f"two-node-fanout-{rate}-node-A", p["two_fanout_step_s"]
                )
                step = await self.post(
                    rate, p["two_fanout_step_s"], [a], users=(0, n), grace_s=p["fanout_grace_s"]
                )
                step["window"] = w.close()
                if spy:
                    step["py_spy"] = await self.finish_py_spy(*spy)
                add_cpu_costs(step)
                step["sustained"] = sustained(step)
                steps.append(step)
                log(
                    f"{target.name}: 2-node fanout {rate}/s: p50 {step['latency']['p50_ms']} p99 {step['latency']['p99_ms']} ms, "
                    f"delivered {step['delivered_share']}, node cpu {step['window']['node_cpu_pct']}, redis {step['window']['redis_cpu_pct']}%"
                )
                if not step["sustained"]:
                    break
            ok_rates = [s["rate"] for s in steps if s["sustained"]]
            out["fanout"] = {
                "steps": steps,
                "max_sustained_rate": max(ok_rates) if ok_rates else 0,
                "posted_through": "A",
            }

            # The same, with posts alternating between A and B: two processes write one SQLite file.
            out["settle_seconds_after_fanout"] = await self.settle([a, b])
            rate = p["two_writers_rate"]
            w = Window([a, b], self.pool, self.runner)
            step = await self.post(
                rate, p["two_fanout_step_s"], [a, b], users=(0, n), grace_s=p["fanout_grace_s"]
            )
            step["window"] = w.close()
            add_cpu_costs(step)
            step["sustained"] = sustained(step)
            out["two_writers"] = step
            log(
                f"{target.name}: 2-node fanout {rate}/s, posts alternating A/B: p50 {step['latency']['p50_ms']} "
                f"p99 {step['latency']['p99_ms']} ms, delivered {step['delivered_share']}, HTTP p99 {step['http_latency']['p99_ms']} ms"
            )
            await asyncio.sleep(1)

            # fetch and acknowledge while notifications arrive --------------------------------------
            # (1) latency: only a few users fetch, so A is not saturated and the time from an
            #     ack to the count on the user's device on B is the path's, not a queue's;
            # (2) capacity: every user's device 0 (on A) fetches in a closed loop (limit 1).
            await self.settle([a, b])
            k = max(1, min(n, p["fetch_latency_users"]))
            out["fetch_latency"] = await self.fetch_phase(
                target, a, b, (0, k), p["fetch_latency_s"], "latency"
            )
            out["fetch"] = await self.fetch_phase(target, a, b, (0, n), p["fetch_s"], "capacity")
        finally:
            await self.pool.all("close", timeout=60)
            for nd in (a, b):
                if nd.proc:
                    await nd.proc.stop(20)
        return out

    async def settle(
        self, nodes: list[Node], quiet_s: float = 1.0, timeout_s: float = 20.0
    ) -> float:
        """Wait until the nodes' store counters stop moving for quiet_s (bounded); seconds waited."""
        t0 = time.monotonic()
        last: list[dict[str, float]] | None = None
        quiet_since = t0
        while time.monotonic() - t0 < timeout_s:
            now = [store_queries(await n.metrics(self.http)) for n in nodes]
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                break
            await asyncio.sleep(0.25)
        return round(time.monotonic() - t0, 2)

    async def disconnect_all(self, node: Node, timeout_s: float = 300.0) -> dict[str, Any]:
        """Close every device at once; seconds until the node says it holds 0 connections."""
        before = (await node.metrics(self.http)).get("pns_connections", 0.0)
        t0 = time.monotonic()
        await self.pool.all("close", timeout=60)
        answered_late = 0
        gauge = before
        while time.monotonic() - t0 < timeout_s:
            try:
                m = await node.metrics(self.http, tries=1)
                if not m:
                    raise OSError("no answer")
                gauge = m.get("pns_connections", 0.0)
            except (TimeoutError, aiohttp.ClientError, OSError):
                answered_late += 1
                gauge = -1
            if gauge == 0:
                break
            await asyncio.sleep(0.25)
        out = {
            "connections": int(before),
            "seconds_until_zero": round(time.monotonic() - t0, 2),
            "metrics_requests_timed_out": answered_late,
            "left": gauge,
        }
        log(
            f"{node.target.name}: disconnect of {int(before)} connections at once: "
            f"the node holds 0 after {out['seconds_until_zero']} s"
        )
        return out

    async def fetch_phase(
        self, target: Target, a: Node, b: Node, users: tuple[int, int], seconds: float, label: str
    ) -> dict[str, Any]:
        p = self.p
        n_all = p["two_users"]
        w = Window([a, b], self.pool, self.runner)
        ma0, mb0 = await a.metrics(self.http), await b.metrics(self.http)
        spy = self.start_py_spy(target, a, f"fetch-{label}-node-A", seconds)
        fetch_task = asyncio.create_task(
            self.pool.all(
                "fetch",
                timeout=seconds + 60,
                duration_s=seconds,
                limit=p["fetch_limit"],
                fetcher_index=0,
                grace_s=1,
                user_range=list(users),
            )
        )
        posting = asyncio.create_task(
            self.post(p["fetch_post_rate"], seconds, [a], users=(0, n_all), watch=False, grace_s=1)
        )
        res = await fetch_task
        posted = await posting
        win = w.close()
        if spy:
            win["py_spy"] = await self.finish_py_spy(*spy)
        ma1, mb1 = await a.metrics(self.http), await b.metrics(self.http)
        elapsed = max(r["elapsed_s"] for r in res)
        delivered = sum(r["delivered"] for r in res)
        errors: dict[str, int] = {}
        for r in res:
            for key, v in r["errors"].items():
                errors[key] = errors.get(key, 0) + v
        out = {
            "seconds": round(elapsed, 3),
            "limit": p["fetch_limit"],
            "fetchers": users[1] - users[0],
            "requests": sum(r["requests"] for r in res),
            "delivered": delivered,
            "acked_per_s": round(delivered / elapsed, 1),
            "empty_answers": sum(r["empty"] for r in res),
            "ack_to_other_device": summarize(merge_hists([r["ack_to_other"] for r in res])),
            "fetch_answer": summarize(merge_hists([r["answer"] for r in res])),
            "ack_waits_unmatched": sum(r["ack_waits_unmatched"] for r in res),
            "posted_meanwhile": posted["sent"],
            "posts_per_s": p["fetch_post_rate"],
            "store_queries_A": {
                key: v - store_queries(ma0).get(key, 0) for key, v in store_queries(ma1).items()
            },
            "store_queries_B": {
                key: v - store_queries(mb0).get(key, 0) for key, v in store_queries(mb1).items()
            },
            "window": win,
            "node_cpu_ms_per_delivery": round(
                sum(win["node_cpu_pct"]) / 100 * win["seconds"] * 1000 / max(1, delivered), 3
            ),
            "errors": errors,
        }
        log(
            f"{target.name}: fetch ({label}, {out['fetchers']} fetchers): {out['acked_per_s']} acked/s, answer p50 "
            f"{out['fetch_answer']['p50_ms']} ms, ack->other node p50 {out['ack_to_other_device']['p50_ms']} "
            f"p99 {out['ack_to_other_device']['p99_ms']} ms, node cpu {win['node_cpu_pct']}, loadgen {win['loadgen_cpu_pct']}%"
        )
        await asyncio.sleep(0.5)
        return out

    # -- profiling the PNS node with py-spy (--py-spy) --------------------------------------------------

    def start_py_spy(
        self, target: Target, node: Node, label: str, seconds: float
    ) -> tuple[Any, Path, str] | None:
        if not self.py_spy or target.name != "pns" or not node.proc:
            return None
        exe = Path(sys.executable).parent / "py-spy"
        if not exe.exists():
            log("py-spy is missing (pip install -e '.[bench]')")
            return None
        out = (
            self.tmp
            / f"pyspy-{target.name}{'-' + target.variant if target.variant else ''}-{label}.txt"
        )
        proc = subprocess.Popen(
            [
                str(exe),
                "record",
                "--pid",
                str(node.proc.pid),
                "--duration",
                str(int(math.ceil(seconds))),
                "--rate",
                "250",
                "--threads",
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return proc, out, label

    async def finish_py_spy(self, proc: Any, out: Path, label: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
        summary = summarize_py_spy(out)
        dest = RESULTS / "profiles"
        dest.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            shutil.copy(out, dest / out.name)
        summary["collapsed_stacks"] = str(dest / out.name)
        return summary

    # -- whole run -----------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        t_start = time.time()
        result: dict[str, Any] = {
            "profile": self.profile_name,
            "settings": self.p,
            "machine": machine_info(),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
            "loadavg_start": loadavg(),
            "commit": git_commit(),
            "command": " ".join([Path(sys.executable).as_posix(), *sys.argv]),
            "offer_deflate": self.offer_deflate,
            "targets": {},
        }
        busy0, total0 = machine_busy()
        async with aiohttp.ClientSession() as self.http:
            try:
                for target in TARGETS:
                    if self.only and target.name not in self.only:
                        continue
                    log(f"== {target.label}")
                    result["targets"][target.name] = await self.run_target(target)
            finally:
                await self.runner.stop_all()
        busy1, total1 = machine_busy()
        result["loadavg_end"] = loadavg()
        result["seconds"] = round(time.time() - t_start, 1)
        result["machine_cpu_pct_whole_run"] = round(
            100 * (busy1 - busy0) / (time.time() - t_start), 1
        )
        return result


def summarize_py_spy(path: Path, top: int = 30) -> dict[str, Any]:
    """From py-spy's collapsed stacks (--threads): each thread's share of the samples, and the
    event loop's (MainThread's) time by function (self and inclusive) and by file (self).

    Shares are of all samples of all threads, so MainThread's rows add up to its own share."""
    self_s: dict[str, int] = {}
    incl: dict[str, int] = {}
    by_file: dict[str, int] = {}
    threads: dict[str, int] = {}
    total = 0
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {"error": "no py-spy output"}
    for line in lines:
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = [f for f in stack.split(";") if f]
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        thread = "?"
        if frames and frames[0].startswith("thread "):
            thread = frames[0].split(": ", 1)[-1].rstrip("0123456789_").rstrip("_") or frames[0]
            frames = frames[1:]
        total += count
        threads[thread] = threads.get(thread, 0) + count
        if thread != "MainThread" or not frames:
            continue
        leaf = frames[-1]
        self_s[leaf] = self_s.get(leaf, 0) + count
        for f in set(frames):
            incl[f] = incl.get(f, 0) + count
        m = re.search(r"\((.*?):\d+\)$", leaf)
        file = m.group(1) if m else leaf
        for key in ("site-packages/", "lib/python3"):
            if key in file:
                file = file.split(key, 1)[1]
        by_file[file] = by_file.get(file, 0) + count

    def share(d: dict[str, int], k: int = top) -> list[tuple[str, float]]:
        return [
            (name, round(100 * v / max(1, total), 2))
            for name, v in sorted(d.items(), key=lambda kv: -kv[1])[:k]
        ]

    return {
        "samples": total,
        "threads_pct": share(threads, 10),
        "main_self_pct": share(self_s),
        "main_inclusive_pct": share(incl, 60),
        "main_self_by_file_pct": share(by_file),
    }


def add_cpu_costs(step: dict[str, Any]) -> None:
    """CPU milliseconds per notification: robust to other load on the machine, unlike latency."""
    w = step["window"]
    n = max(1, step["http_ok"])
    step["node_cpu_ms_per_notification"] = round(
        sum(w["node_cpu_pct"]) / 100 * w["seconds"] * 1000 / n, 3
    )
    step["loadgen_cpu_ms_per_notification"] = round(
        w["loadgen_cpu_pct"] / 100 * w["seconds"] * 1000 / n, 3
    )


def sustained(step: dict[str, Any]) -> bool:
    p99 = step["latency"]["p99_ms"]
    share = step["delivered_share"]
    errs = sum(step["http_errors"].values())
    return (
        p99 is not None
        and p99 < SUSTAIN_P99_MS
        and share is not None
        and share >= SUSTAIN_DELIVERED
        and errs <= 0.001 * max(1, step["sent"])
        and step["achieved_rate"] >= 0.98 * step["rate"]
    )


TARGETS = [Target("pns", "PNS (python-socketio)"), Target("peer", "Node socket.io peer")]


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    node_v = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    pyv = platform.python_version()
    versions: dict[str, str] = {}
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        for pkg in ("python-socketio", "python-engineio", "aiohttp", "redis"):
            versions[pkg] = version(pkg)
    with contextlib.suppress(Exception):
        for pkg in (
            "socket.io",
            "@socket.io/redis-adapter",
            "better-sqlite3",
            "jsonwebtoken",
            "redis",
        ):
            pj = json.loads((PEER_DIR / "node_modules" / pkg / "package.json").read_text())
            versions["node:" + pkg] = pj["version"]
    with contextlib.suppress(Exception):
        versions["node:ws (loadgen)"] = json.loads(
            (LOADGEN_DIR / "node_modules" / "ws" / "package.json").read_text()
        )["version"]
    redis_v = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True
    ).stdout.split()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_bytes": mem,
        "kernel": platform.release(),
        "python": pyv,
        "node": node_v,
        "redis": next((x.split("=")[1] for x in redis_v if x.startswith("v=")), ""),
        "open_files_limit": __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)[
            0
        ],
        "versions": versions,
    }


def git_commit() -> str:
    r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return r.stdout.strip() + (" (work tree has uncommitted changes)" if dirty else "")


# -- report -----------------------------------------------------------------------------------------------


def fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if abs(x) >= 100:
            return f"{x:,.0f}{unit}"
        return f"{x:.3g}{unit}"
    if isinstance(x, int):
        return f"{x:,}{unit}"
    return f"{x}{unit}"


def ratio(a: Any, b: Any) -> str:
    if a is None or b is None or not b:
        return "-"
    return f"{a / b:.2f}x"


def table_rows(result: dict[str, Any]) -> list[tuple[str, Any, Any, str]]:
    """(what, PNS, peer, better-is) rows; ratio is PNS / peer."""
    t = result["targets"]
    pns, peer = t.get("pns", {}), t.get("peer", {})

    def g(d: dict[str, Any], *path: Any) -> Any:
        for k in path:
            if d is None:
                return None
            if isinstance(k, int):
                d = d[k] if isinstance(d, list) and len(d) > k else None
            else:
                d = d.get(k) if isinstance(d, dict) else None
        return d

    def step_at(d: dict[str, Any], rate: float) -> dict[str, Any] | None:
        for s in g(d, "fanout", "steps") or []:
            if s["rate"] == rate:
                return s
        return None

    rows: list[tuple[str, Any, Any, str]] = [
        ("idle: devices connected", g(pns, "idle", "ready"), g(peer, "idle", "ready"), "higher"),
        (
            "idle: connections accepted/s (ramp)",
            g(pns, "idle", "rate_per_s"),
            g(peer, "idle", "rate_per_s"),
            "higher",
        ),
        (
            "idle: RSS per connection, KiB",
            g(pns, "idle", "rss_per_connection_kib"),
            g(peer, "idle", "rss_per_connection_kib"),
            "lower",
        ),
        (
            "idle: node CPU while idle, %",
            g(pns, "idle", "idle_cpu_pct"),
            g(peer, "idle", "idle_cpu_pct"),
            "lower",
        ),
        (
            "idle: node CPU during ramp, %",
            g(pns, "idle", "ramp", "node_cpu_pct", 0),
            g(peer, "idle", "ramp", "node_cpu_pct", 0),
            "-",
        ),
        (
            "idle: node CPU ms per connection",
            g(pns, "idle", "node_cpu_ms_per_connection"),
            g(peer, "idle", "node_cpu_ms_per_connection"),
            "lower",
        ),
        (
            "idle: loadgen CPU ms per connection",
            g(pns, "idle", "loadgen_cpu_ms_per_connection"),
            g(peer, "idle", "loadgen_cpu_ms_per_connection"),
            "-",
        ),
        (
            "idle: loadgen CPU during ramp, %",
            g(pns, "idle", "ramp", "loadgen_cpu_pct"),
            g(peer, "idle", "ramp", "loadgen_cpu_pct"),
            "-",
        ),
    ]
    rates = sorted({s["rate"] for d in (pns, peer) for s in (g(d, "fanout", "steps") or [])})
    for rate in rates:
        a, b = step_at(pns, rate), step_at(peer, rate)
        rows += [
            (
                f"fan-out {rate:g}/s: notify->device p50, ms",
                g(a, "latency", "p50_ms"),
                g(b, "latency", "p50_ms"),
                "lower",
            ),
            (
                f"fan-out {rate:g}/s: p99, ms",
                g(a, "latency", "p99_ms"),
                g(b, "latency", "p99_ms"),
                "lower",
            ),
            (
                f"fan-out {rate:g}/s: max, ms",
                g(a, "latency", "max_ms"),
                g(b, "latency", "max_ms"),
                "lower",
            ),
            (
                f"fan-out {rate:g}/s: delivered share",
                g(a, "delivered_share"),
                g(b, "delivered_share"),
                "higher",
            ),
            (
                f"fan-out {rate:g}/s: HTTP POST p99, ms",
                g(a, "http_latency", "p99_ms"),
                g(b, "http_latency", "p99_ms"),
                "lower",
            ),
            (
                f"fan-out {rate:g}/s: node CPU, %",
                g(a, "window", "node_cpu_pct", 0),
                g(b, "window", "node_cpu_pct", 0),
                "lower",
            ),
            (
                f"fan-out {rate:g}/s: node CPU ms/notification",
                g(a, "node_cpu_ms_per_notification"),
                g(b, "node_cpu_ms_per_notification"),
                "lower",
            ),
            (
                f"fan-out {rate:g}/s: loadgen CPU, %",
                g(a, "window", "loadgen_cpu_pct"),
                g(b, "window", "loadgen_cpu_pct"),
                "-",
            ),
            (
                f"fan-out {rate:g}/s: other CPU on machine, %",
                g(a, "window", "other_cpu_pct"),
                g(b, "window", "other_cpu_pct"),
                "-",
            ),
            (
                f"fan-out {rate:g}/s: count queries/notification",
                g(a, "count_queries_per_notification"),
                g(b, "count_queries_per_notification"),
                "lower",
            ),
        ]
    rows += [
        (
            "fan-out: highest sustained rate (1 node), /s",
            g(pns, "fanout", "max_sustained_rate"),
            g(peer, "fanout", "max_sustained_rate"),
            "higher",
        ),
        (
            "burst to one user (1 node): count queries",
            g(pns, "burst_one_node", "count_queries"),
            g(peer, "burst_one_node", "count_queries"),
            "lower",
        ),
        (
            "storm: devices back with right count",
            g(pns, "storm", "back_with_right_count"),
            g(peer, "storm", "back_with_right_count"),
            "higher",
        ),
        (
            "storm: seconds from listening to all back",
            g(pns, "storm", "seconds_from_listening"),
            g(peer, "storm", "seconds_from_listening"),
            "lower",
        ),
        (
            "storm: seconds from SIGTERM to all back",
            g(pns, "storm", "seconds_from_sigterm"),
            g(peer, "storm", "seconds_from_sigterm"),
            "lower",
        ),
        (
            "storm: reconnects accepted/s",
            g(pns, "storm", "accept_rate_per_s"),
            g(peer, "storm", "accept_rate_per_s"),
            "higher",
        ),
        (
            "storm: store queries per device",
            g(pns, "storm", "store_queries_per_device"),
            g(peer, "storm", "store_queries_per_device"),
            "lower",
        ),
        (
            "storm: old node's stop after SIGTERM, s",
            g(pns, "storm", "old_node_stop_seconds"),
            g(peer, "storm", "old_node_stop_seconds"),
            "lower",
        ),
        (
            "all devices drop at once: s until the node holds 0",
            g(pns, "disconnect_all", "seconds_until_zero"),
            g(peer, "disconnect_all", "seconds_until_zero"),
            "lower",
        ),
        (
            "19,000 drop at once (full): s until the node holds 0",
            g(pns, "idle_disconnect_all", "seconds_until_zero"),
            g(peer, "idle_disconnect_all", "seconds_until_zero"),
            "lower",
        ),
        (
            "2 nodes: connections accepted/s",
            g(pns, "two_nodes", "connect", "rate_per_s"),
            g(peer, "two_nodes", "connect", "rate_per_s"),
            "higher",
        ),
    ]
    rates2 = sorted(
        {s["rate"] for d in (pns, peer) for s in (g(d, "two_nodes", "fanout", "steps") or [])}
    )
    for rate in rates2:

        def s2(d: dict[str, Any], rate: float = rate) -> dict[str, Any] | None:
            return next(
                (s for s in (g(d, "two_nodes", "fanout", "steps") or []) if s["rate"] == rate), None
            )

        a, b = s2(pns), s2(peer)
        rows += [
            (
                f"2 nodes fan-out {rate:g}/s: p50, ms",
                g(a, "latency", "p50_ms"),
                g(b, "latency", "p50_ms"),
                "lower",
            ),
            (
                f"2 nodes fan-out {rate:g}/s: p99, ms",
                g(a, "latency", "p99_ms"),
                g(b, "latency", "p99_ms"),
                "lower",
            ),
            (
                f"2 nodes fan-out {rate:g}/s: delivered share",
                g(a, "delivered_share"),
                g(b, "delivered_share"),
                "higher",
            ),
            (
                f"2 nodes fan-out {rate:g}/s: node CPU ms/notification (A+B)",
                g(a, "node_cpu_ms_per_notification"),
                g(b, "node_cpu_ms_per_notification"),
                "lower",
            ),
            (
                f"2 nodes fan-out {rate:g}/s: redis CPU, %",
                g(a, "window", "redis_cpu_pct"),
                g(b, "window", "redis_cpu_pct"),
                "lower",
            ),
        ]
    rows += [
        (
            "2 nodes, posts via A and B (two SQLite writers): p99, ms",
            g(pns, "two_nodes", "two_writers", "latency", "p99_ms"),
            g(peer, "two_nodes", "two_writers", "latency", "p99_ms"),
            "lower",
        ),
        (
            "2 nodes, two SQLite writers: HTTP POST p99, ms",
            g(pns, "two_nodes", "two_writers", "http_latency", "p99_ms"),
            g(peer, "two_nodes", "two_writers", "http_latency", "p99_ms"),
            "lower",
        ),
        (
            "fetch: deliveries acknowledged/s",
            g(pns, "two_nodes", "fetch", "acked_per_s"),
            g(peer, "two_nodes", "fetch", "acked_per_s"),
            "higher",
        ),
        (
            "fetch (all fetch): answer p50, ms",
            g(pns, "two_nodes", "fetch", "fetch_answer", "p50_ms"),
            g(peer, "two_nodes", "fetch", "fetch_answer", "p50_ms"),
            "lower",
        ),
        (
            "fetch (few fetch): ack -> count on other node p50, ms",
            g(pns, "two_nodes", "fetch_latency", "ack_to_other_device", "p50_ms"),
            g(peer, "two_nodes", "fetch_latency", "ack_to_other_device", "p50_ms"),
            "lower",
        ),
        (
            "fetch (few fetch): ack -> count on other node p99, ms",
            g(pns, "two_nodes", "fetch_latency", "ack_to_other_device", "p99_ms"),
            g(peer, "two_nodes", "fetch_latency", "ack_to_other_device", "p99_ms"),
            "lower",
        ),
        (
            "fetch (few fetch): answer p50, ms",
            g(pns, "two_nodes", "fetch_latency", "fetch_answer", "p50_ms"),
            g(peer, "two_nodes", "fetch_latency", "fetch_answer", "p50_ms"),
            "lower",
        ),
        (
            "fetch: node CPU ms per delivery (A+B)",
            g(pns, "two_nodes", "fetch", "node_cpu_ms_per_delivery"),
            g(peer, "two_nodes", "fetch", "node_cpu_ms_per_delivery"),
            "lower",
        ),
        (
            "fetch: node A CPU, %",
            g(pns, "two_nodes", "fetch", "window", "node_cpu_pct", 0),
            g(peer, "two_nodes", "fetch", "window", "node_cpu_pct", 0),
            "-",
        ),
        (
            "fetch: loadgen CPU, %",
            g(pns, "two_nodes", "fetch", "window", "loadgen_cpu_pct"),
            g(peer, "two_nodes", "fetch", "window", "loadgen_cpu_pct"),
            "-",
        ),
        (
            "store: count queries/notification, holder node",
            g(
                pns,
                "two_nodes",
                "store_work",
                "held_on_A_only",
                "count_queries_per_notification_on_holder_A",
            ),
            g(
                peer,
                "two_nodes",
                "store_work",
                "held_on_A_only",
                "count_queries_per_notification_on_holder_A",
            ),
            "lower",
        ),
        (
            "store: count queries/notification, other node",
            g(
                pns,
                "two_nodes",
                "store_work",
                "held_on_A_only",
                "count_queries_per_notification_on_other_B",
            ),
            g(
                peer,
                "two_nodes",
                "store_work",
                "held_on_A_only",
                "count_queries_per_notification_on_other_B",
            ),
            "= 0",
        ),
        (
            "store: count queries, user held nowhere (A+B)",
            sum_or_none(
                g(pns, "two_nodes", "store_work", "held_nowhere", "count_queries_A"),
                g(pns, "two_nodes", "store_work", "held_nowhere", "count_queries_B"),
            ),
            sum_or_none(
                g(peer, "two_nodes", "store_work", "held_nowhere", "count_queries_A"),
                g(peer, "two_nodes", "store_work", "held_nowhere", "count_queries_B"),
            ),
            "= 0",
        ),
        (
            "store: burst to one user, count queries A / B",
            pair(
                g(pns, "two_nodes", "store_work", "burst_one_user", "count_queries_A"),
                g(pns, "two_nodes", "store_work", "burst_one_user", "count_queries_B"),
            ),
            pair(
                g(peer, "two_nodes", "store_work", "burst_one_user", "count_queries_A"),
                g(peer, "two_nodes", "store_work", "burst_one_user", "count_queries_B"),
            ),
            "lower",
        ),
    ]
    return rows


def sum_or_none(*xs: Any) -> Any:
    return None if any(x is None for x in xs) else sum(xs)


def pair(a: Any, b: Any) -> Any:
    return None if a is None or b is None else f"{a:g} / {b:g}"


def render_table(result: dict[str, Any], markdown: bool = False) -> str:
    rows = table_rows(result)
    head = ("", "PNS", "peer", "PNS/peer", "better")
    cells = [head] + [
        (
            w,
            fmt(a),
            fmt(b),
            ratio(a, b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else "-",
            better,
        )
        for w, a, b, better in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "| --- | ---: | ---: | ---: | --- |"]
        lines += ["| " + " | ".join(c) + " |" for c in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    return "\n".join(
        "  ".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(5))
        for c in cells
    )


def make_plots(result: dict[str, Any], plots: dict[str, Any], prefix: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing (pip install -e '.[bench]'): no plots")
        return []
    made = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (_name, t) in enumerate(result["targets"].items()):
        steps = t.get("fanout", {}).get("steps", [])
        if not steps:
            continue
        xs = [s["rate"] for s in steps]
        color = f"C{i}"
        ax.plot(
            xs,
            [s["latency"]["p99_ms"] for s in steps],
            marker="o",
            color=color,
            label=f"{t['target']} p99",
        )
        ax.plot(
            xs,
            [s["latency"]["p50_ms"] for s in steps],
            marker="x",
            linestyle="--",
            color=color,
            label=f"{t['target']} p50",
        )
    ax.axhline(SUSTAIN_P99_MS, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("notifications/s (HTTP API, one node)")
    ax.set_ylabel("notify -> count on device, ms")
    ax.set_yscale("log")
    ax.set_title(f"Fan-out latency against rate ({result['profile']})")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    path = prefix.with_name(prefix.name + "-latency-vs-rate.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    made.append(str(path))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, samples in plots.get("rss", {}).items():
        if samples:
            xs = [s[0] for s in samples]
            ys = [s[1] / 2**20 for s in samples]
            ax.plot(xs, ys, marker=".", label=label)
    ax.set_xlabel("connected devices (one node)")
    ax.set_ylabel("node RSS, MiB")
    ax.set_title(f"RSS against connections ({result['profile']})")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    path = prefix.with_name(prefix.name + "-rss-vs-connections.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    made.append(str(path))
    return made


def check_prerequisites() -> None:
    missing = []
    if not PNS_BIN.exists():
        missing.append(f"{PNS_BIN} (pip install -e '.[bench]')")
    for d in (PEER_DIR, LOADGEN_DIR):
        if not (d / "node_modules").is_dir():
            missing.append(f"{d}/node_modules (cd {d} && npm ci)")
    if not shutil.which("node"):
        missing.append("node (Node.js 20)")
    if not shutil.which("redis-server"):
        missing.append("redis-server")
    if missing:
        raise SystemExit("bench: missing: " + "; ".join(missing))


async def amain(args: argparse.Namespace) -> int:
    check_prerequisites()
    for item in args.set:
        key, _, raw = item.partition("=")
        if key not in PROFILES[args.profile]:
            raise SystemExit(
                f"bench: --set {key}: no such setting (known: {', '.join(PROFILES[args.profile])})"
            )
        try:
            PROFILES[args.profile][key] = json.loads(raw)
        except json.JSONDecodeError:
            raise SystemExit(f"bench: --set {item}: the value must be JSON") from None
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="pns-bench-"))
    if args.variant:
        TARGETS[0].variant = args.variant
        TARGETS[0].label = f"PNS ({args.variant})"
    bench = Bench(
        args.profile, args.only, tmp, py_spy=args.py_spy, offer_deflate=not args.no_deflate_offer
    )
    log(f"bench {args.profile}: logs and stores in {tmp}")
    try:
        result = await asyncio.wait_for(bench.run(), bench.p["max_seconds"])
    finally:
        await bench.runner.stop_all()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    prefix = RESULTS / ("latest" if not args.out else args.out)
    result["plots"] = make_plots(result, bench.plots, RESULTS / args.profile)
    result["rss_samples"] = bench.plots.get("rss", {})
    text = json.dumps(result, indent=1, default=str)
    (RESULTS / f"{args.profile}-{stamp}.json").write_text(text)
    prefix.with_suffix(".json").write_text(text)
    print()
    print(
        f"PNS benchmark, profile {args.profile}, {result['seconds']} s, commit {result['commit']}"
    )
    print(
        f"machine: {result['machine']['nproc']} x {result['machine']['cpu_model']}, load average "
        f"{result['loadavg_start']} -> {result['loadavg_end']}, machine CPU over the run "
        f"{result['machine_cpu_pct_whole_run']}% of {100 * (result['machine']['nproc'] or 1)}%"
    )
    print(render_table(result))
    print(f"\nwritten: {prefix.with_suffix('.json')} and plots {', '.join(result['plots'])}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--profile", choices=sorted(PROFILES), default="short")
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        choices=[t.name for t in TARGETS],
        help="run only this target (repeatable); default both",
    )
    ap.add_argument(
        "--out", default=None, help="name of the JSON written in bench/results (default latest)"
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, stores)"
    )
    ap.add_argument(
        "--variant",
        default="",
        help="PNS only, an experiment: nodeflate,orjson,uvloop "
        "(bench/experiments/pns_variant.py; pns_sio/ is not changed)",
    )
    ap.add_argument(
        "--py-spy",
        action="store_true",
        help="record the PNS node with py-spy during the ramp and fan-out",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting of the profile (a JSON value), e.g. --set fanout_step_s=10 "
        "--set 'fanout_rates=[1000,2000]'",
    )
    ap.add_argument(
        "--no-deflate-offer",
        action="store_true",
        help="devices do not offer permessage-deflate (browsers always do; default: offer)",
    )
    args = ap.parse_args()
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
