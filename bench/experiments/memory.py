"""Where a node's memory per connection goes: tracemalloc's growth by source line while N
devices connect (PNS with the tracemalloc variant), beside the process's RSS growth.

    .venv/bin/python bench/experiments/memory.py USERS [VARIANT,...]
    .venv/bin/python bench/experiments/memory.py 1000
"""

import asyncio
import os
import signal
import sys

import common
from common import R


async def main(users: int, variant: str) -> None:
    variants = ",".join(v for v in ("tracemalloc", variant) if v)
    async with common.session("pns", variants, prefix="exp-mem-") as (b, target, tmp):
        out = tmp / "tracemalloc.txt"
        os.environ["BENCH_TRACEMALLOC_OUT"] = str(out)  # PNS_* are not passed on
        node = R.Node(target, R.free_port(), tmp / "s.db", None)
        await node.start(b.runner, b.http)
        await asyncio.sleep(0.5)
        os.kill(node.proc.pid, signal.SIGUSR1)
        rss0 = node.proc.rss()
        b.pool_ranges = b.pool.split(0, users)
        c = await b.connect([node], (0, users))
        await asyncio.sleep(2)
        rss1 = node.proc.rss()
        os.kill(node.proc.pid, signal.SIGUSR1)
        for _ in range(600):  # the snapshot of a large heap takes a while: up to 60 s
            if out.exists() and "== growth" in out.read_text():
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        n = c["ready"]
        print(f"{n} devices: RSS +{(rss1 - rss0) / 1024 / n:.1f} KiB per connection")
        text = out.read_text()
        print(text[text.index("== growth") :] if "== growth" in text else text)


asyncio.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else ""))
