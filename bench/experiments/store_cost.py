"""What PNS's SQLite store costs per fetched notification, without the server around it: a
table of 1,000 users x 30 unseen, then per delivery what a fetch does to the store (list 2,
mark 1) plus a create for every second delivery (the notifications arriving meanwhile).

    .venv/bin/python bench/experiments/store_cost.py thread   # 1,000 fetchers at once, the store's threads
    .venv/bin/python bench/experiments/store_cost.py inline   # one at a time, every call on the loop

Prints CPU microseconds per delivery (all threads; system time apart) and wall time.
"""

import asyncio
import resource
import shutil
import sys
import tempfile
import time

import sqlite_inline
import uvloop

from pns_sio.store.sqlite import SQLiteStore

DELIVERIES = 10_000


def cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_stime


async def main(mode: str) -> None:
    d = tempfile.mkdtemp()
    store = await SQLiteStore.open(f"sqlite:///{d}/s.db")
    users = [str(i) for i in range(1000)]
    for chunk in range(30):
        await store.create_many([(u, {"text": "hello", "n": chunk}) for u in users])
    if mode == "inline":
        sqlite_inline.install()

    async def one(i: int) -> None:
        user = users[i % 1000]
        found = await store.list_unseen(user, 2)
        await store.mark_seen(user, [found[0].id])
        if i % 2 == 0:
            await store.create(user, {"text": "x"})

    (c0, s0), t0 = cpu(), time.perf_counter()
    if mode == "inline":
        for i in range(DELIVERIES):
            await one(i)
    else:

        async def fetcher(k: int) -> None:
            for j in range(DELIVERIES // 1000):
                await one(k + 1000 * j)

        await asyncio.gather(*(fetcher(k) for k in range(1000)))
    (c1, s1), t1 = cpu(), time.perf_counter()
    per = 1e6 / DELIVERIES
    print(
        f"{mode}: per delivery CPU {(c1 - c0) * per:.0f} us (system {(s1 - s0) * per:.0f}),"
        f" wall {(t1 - t0) * per:.0f} us"
    )
    await store.close()
    shutil.rmtree(d)


uvloop.run(main(sys.argv[1] if len(sys.argv) > 1 else "thread"))
