"""Two nodes + redis, USERS x 2 devices, a backlog of 5 per user, then device 0 of every user
fetches and acknowledges (limit 1, closed loop) for SECONDS while notifications arrive at
POSTS_PER_S: deliveries acknowledged per second, answer time, ack -> count on the other node.

    .venv/bin/python bench/experiments/fetch.py pns|peer USERS POSTS_PER_S SECONDS [one [noredis]] [spy] [v=VARIANT] [backlog=N]
    .venv/bin/python bench/experiments/fetch.py pns 1000 200 5 v=redispipe,redisver

With the default backlog (5 per user) a fast node runs out of work before SECONDS end
("delivered" = the whole supply); backlog=60 with SECONDS <= 20 keeps every fetcher of the
fastest server here busy. The window opens once the node has written the whole backlog
(until session 5 a node that created slower than the backlog was posted carried the rest
of it into the window, which understated PNS's fetch by a third).
"""

import asyncio
import sys

import common
from common import R


async def main(
    tname,
    users,
    posts_rate,
    fetch_s,
    one_node=False,
    spy=False,
    variant="",
    backlog=5,
    no_redis=False,
):
    async with common.session(tname, variant, py_spy=spy) as (b, target, tmp):
        # `one noredis`: a single node on its embedded broker, no Redis at all.
        redis = None if no_redis else await b.runner.start_redis()
        store = tmp / "store.db"
        a = R.Node(target, R.free_port(), store, redis, index=1)
        await a.start(b.runner, b.http)
        nodes = [a]
        if not one_node:
            bb = R.Node(target, R.free_port(), store, redis, index=2)
            await bb.start(b.runner, b.http)
            nodes.append(bb)
        b.pool_ranges = b.pool.split(0, users)
        c = await b.connect(nodes, (0, users))
        c.pop("rss_samples")
        print("connect", c["ready"], c["rate_per_s"])
        # The backlog is posted faster than a node creates: wait for every answer (the
        # grace), then for the node's store counters to stop moving, or the fetch window
        # would also carry the backlog's late creates.
        st = await b.post(users * backlog / 4, 4, [a], users=(0, users), watch=False, grace_s=120)
        waited = await b.settle(nodes, timeout_s=60)
        print("backlog posted", st["http_ok"], "errors", st["http_errors"], "settled", waited, "s")
        posted = st["http_ok"]
        w = R.Window(nodes, b.pool, b.runner)
        m0 = await a.metrics(b.http)
        sp = b.start_py_spy(target, a, f"exp-fetch-{tname}", fetch_s)
        ft = asyncio.create_task(
            b.pool.all(
                "fetch",
                duration_s=fetch_s,
                limit=1,
                fetcher_index=0,
                grace_s=1,
                user_range=[0, users],
            )
        )
        if posts_rate:
            during = await b.post(
                posts_rate, fetch_s, [a], users=(0, users), watch=False, grace_s=1
            )
            posted += during["http_ok"]
        res = await ft
        win = w.close()
        if sp:
            win["py_spy"] = await b.finish_py_spy(*sp)
        m1 = await a.metrics(b.http)
        d = sum(r["delivered"] for r in res)
        print(
            tname,
            "supply",  # notifications the node took: when delivered equals it, it ran dry
            posted,
            "delivered",
            d,
            "req",
            sum(r["requests"] for r in res),
            "per s",
            d / fetch_s,
        )
        print(" ack->other", R.summarize(R.merge_hists([r["ack_to_other"] for r in res])))
        print(" answer", R.summarize(R.merge_hists([r["answer"] for r in res])))
        print(" unmatched", sum(r["ack_waits_unmatched"] for r in res), "errors", res[0]["errors"])
        print(" window", {k: v for k, v in win.items() if k != "py_spy"})
        print(
            " queries A",
            {k: v - R.store_queries(m0).get(k, 0) for k, v in R.store_queries(m1).items()},
        )
        print(" store ms A", R.store_mean_ms(m0, m1))
        if spy:
            common.show_py_spy(win["py_spy"], 45)


args = sys.argv[1:]
asyncio.run(
    main(
        args[0],
        int(args[1]),
        float(args[2]),
        float(args[3]),
        one_node=("one" in args),
        spy=("spy" in args),
        variant=next((x[2:] for x in args if x.startswith("v=")), ""),
        no_redis=("noredis" in args),
        backlog=int(next((x[8:] for x in args if x.startswith("backlog=")), "5")),
    )
)
