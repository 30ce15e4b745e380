"""Recording the PNS node with py-spy (`--py-spy`), and what the collapsed stacks say."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .config import RESULTS

PY_SPY = Path(sys.executable).parent / "py-spy"


def record(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy on ``pid`` for ``seconds`` (rounded up), every thread, raw stacks into ``out``.

    --nonblocking: py-spy does not pause the node to sample it, so the node's timing is
    what it would be unprofiled (a sample may be torn now and then).
    """
    return subprocess.Popen(
        [
            str(PY_SPY),
            "record",
            "--pid",
            str(pid),
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


async def collect(proc: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    """Wait for py-spy (bounded), summarise its stacks, keep them in results/profiles/."""
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
