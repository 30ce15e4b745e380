"""What the run reads from /proc (CPU and RSS of a pid, the whole machine's CPU, listen
overflows) and what it records of the machine and the commit."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import resource
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

from .config import LOADGEN_DIR, PEER_DIR, REPO

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
    except (OSError, ValueError):
        pass
    return found


def proc_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process, its reaped children and its live
    descendants: a node's whole cost, its store process included."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        own = sum(int(x) for x in fields[11:15]) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return float("nan")
    children = (proc_cpu_seconds(child) for child in _children(pid))
    return own + sum(c for c in children if not math.isnan(c))


def proc_rss(pid: int) -> int:
    """Resident bytes of a process and its live descendants."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            own = int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0
    return own + sum(proc_rss(child) for child in _children(pid))


class CpuTimes(NamedTuple):
    """All CPUs' seconds since boot, from one read of /proc/stat."""

    busy: float  # every state but idle and iowait (steal included)
    steal: float  # the hypervisor ran something else while this VM wanted to run


def machine_busy() -> CpuTimes:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    busy = sum(parts[:8]) - idle
    return CpuTimes(busy / CLK_TCK, parts[7] / CLK_TCK)


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full."""
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
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "versions": versions,
    }


def git_commit() -> str:
    r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return r.stdout.strip() + (" (work tree has uncommitted changes)" if dirty else "")
