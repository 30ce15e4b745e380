"""One user's deep backlog: what a create costs with it in place, then the backlog drained
page by page as a device would (list, then mark), on the SQLite store. The backlog
arrives in batches (a batch shares one timestamp, so its records tie in the
oldest-first order).

    .venv/bin/python bench/experiments/deep_backlog.py [UNSEEN [BATCH [PAGE]]]   # 100000 1000 100

Prints the mean create time for that user, the mean and largest list time per page, and
the whole drain.
"""

import asyncio
import shutil
import sys
import tempfile
import time

from pns_sio.store.sqlite import SQLiteStore


async def main(unseen: int, batch: int, page: int) -> None:
    d = tempfile.mkdtemp()
    store = await SQLiteStore.open(f"sqlite:///{d}/s.db")
    try:
        for start in range(0, unseen, batch):
            n = min(batch, unseen - start)
            await store.create_many([("deep", {"text": "hello", "n": start + i}) for i in range(n)])
        # Other users' records around it, as in a shared table.
        await store.create_many([(str(u), {"text": "hello"}) for u in range(1000)])
        creates = 200
        t = time.perf_counter()
        for i in range(creates):
            await store.create("deep", {"text": "one more", "n": unseen + i})
        per_create = (time.perf_counter() - t) / creates
        unseen += creates
        lists: list[float] = []
        t0 = time.perf_counter()
        for _ in range(unseen // page + 2):  # bounded: one page more than the backlog
            t = time.perf_counter()
            found = await store.list_unseen("deep", page + 1)
            lists.append(time.perf_counter() - t)
            if not found:
                break
            await store.mark_seen("deep", [n.id for n in found[:page]])
        total = time.perf_counter() - t0
        left = (await store.unseen("deep")).count
        print(
            f"unseen {unseen} in batches of {batch}, pages of {page}: "
            f"create {per_create * 1000:.2f} ms; "
            f"list mean {sum(lists) / len(lists) * 1000:.2f} ms, max {max(lists) * 1000:.2f} ms; "
            f"drain {total:.1f} s for {len(lists)} pages; left {left}"
        )
    finally:
        await store.close()
        shutil.rmtree(d)


args = [int(a) for a in sys.argv[1:]]
asyncio.run(main(*(args + [100_000, 1000, 100][len(args) :])))
