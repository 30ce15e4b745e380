"""The SQLite retention purge on a table of 300,000 records, half of them seen: how long it
takes, and the longest a create queued meanwhile waits for the writer.

    .venv/bin/python bench/experiments/purge.py
"""

import asyncio
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta

from pns_sio.store import sqlite as s


async def main() -> None:
    d = tempfile.mkdtemp()
    store = await s.SQLiteStore.open(f"sqlite:///{d}/p.db")
    users = [str(i) for i in range(1000)]
    for chunk in range(300):
        await store.create_many([(u, {"n": chunk}) for u in users])

    def mark(conn):  # half of them seen, long ago
        conn.execute("UPDATE notifications SET seen_date = creation_date WHERE rowid % 2 = 0")

    await store._writer.run(mark)
    t = time.perf_counter()

    # a write queued during the purge: how long does it wait?
    async def writer_probe() -> float:
        waits = []
        for _ in range(50):
            t0 = time.perf_counter()
            await store.create("x", {})
            waits.append(time.perf_counter() - t0)
            await asyncio.sleep(0.005)
        return max(waits)

    probe = asyncio.create_task(writer_probe())
    n = await store.purge_seen(datetime.now(UTC) + timedelta(seconds=1))
    took = time.perf_counter() - t
    print(
        f"purged {n} of 300,000 in {took:.2f} s; longest create meanwhile {1e3 * await probe:.0f} ms"
    )
    await store.close()
    shutil.rmtree(d)


asyncio.run(main())
