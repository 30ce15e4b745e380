"""The load generator: Node processes (bench/loadgen/worker.js) that each hold many simulated
devices, driven over stdin/stdout with JSON lines; a Pool sends one command to all of them."""

from __future__ import annotations

import asyncio
import json
import math
import os
from pathlib import Path
from typing import Any

from .config import LOADGEN_DIR
from .machine import proc_cpu_seconds, proc_rss


class Worker:
    """One load-generator process: call() sends a command and awaits the answer with its id;
    it exits by itself after max_seconds, whatever happens to this process."""

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
    """The workers of a run; each holds a contiguous range of the users (split())."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    def split(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """Users [lo, hi) cut into one contiguous range per worker."""
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
        """The same command to every worker at once, ``per_worker[i]`` added to worker i's."""
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


def sum_counts(results: list[dict[str, Any]], key: str) -> dict[str, int]:
    """The workers' {name: count} maps under ``key`` (errors by kind), added up."""
    total: dict[str, int] = {}
    for r in results:
        for k, v in r[key].items():
            total[k] = total.get(k, 0) + v
    return total
