"""What every experiment here starts and stops: a Bench with its load generator, and an
HTTP session; the caller starts the nodes it needs (they stop with the Bench's runner)."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import run as R


@contextlib.asynccontextmanager
async def session(
    tname: str,
    variant: str = "",
    *,
    profile: str = "short",
    prefix: str = "exp-",
    **bench_options: Any,
) -> AsyncIterator[tuple[R.Bench, R.Target, Path]]:
    """Yield (bench, target, temporary directory); stop the load generator and every
    process the bench started, however the experiment ends."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    b = R.Bench(profile, [], tmp, **bench_options)
    async with aiohttp.ClientSession() as b.http:
        b.pool = None
        try:
            b.pool = await b.new_pool()
            yield b, R.Target(tname, tname, variant), tmp
        finally:
            if b.pool is not None:
                await b.pool.all("close")
                for worker in b.pool.workers:
                    await worker.stop()
            await b.runner.stop_all()


def show_py_spy(summary: dict[str, Any], top: int = 40) -> None:
    """Print a py-spy summary (bench/harness/pyspy.py's summarize_py_spy): threads, then the event
    loop's time by function, inclusive."""
    print("py-spy samples", summary.get("samples"), summary.get("threads_pct"))
    for row in summary.get("main_inclusive_pct", [])[:top]:
        print("   ", row)
