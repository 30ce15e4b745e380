"""The stack's floor for fan-out and fetch: python-socketio on aiohttp doing only what the
bench needs, with PNS's runtime choices (uvloop, orjson, no permessage-deflate, the GC
tuning) and none of PNS's own work (no store, no validation beyond the JSON, no signal
path, no metrics but one counter, no rate limits).

Devices connect with the bench's JWT and get {"count", "rev"} at once; a POST to
/api/v1/notifications raises the user's count and rev in memory and emits the count to the
user's room. CPU per notification here against PNS's is what PNS's own logic costs; this
against the Node peer's is what the stack costs.

    .venv/bin/python bench/experiments/fan_out.py floor - 1000 500,800 10
    BENCH_FLOOR_STORE=1 .venv/bin/python bench/experiments/fan_out.py floor - 1000 500,800 10

Fetch: the node keeps each user's unseen notifications in a list in memory; a device's
get-new-notifications takes up to `limit` of them, sends them as a new-notifications batch
with an ack callback, and on the ack drops them, lowers the count and emits it to the user's
room, then answers. With PNS_REDIS_URL set (as fetch.py sets it) the server runs
python-socketio's stock AsyncRedisManager, so the count reaches the user's devices on the
other node through Redis. Only the node that took the POSTs holds the lists, which is how
fetch.py drives it (posts and fetchers on node A):

    .venv/bin/python bench/experiments/fetch.py floor 1000 200 10 backlog=20

With BENCH_FLOOR_STORE=1 each POST also stores the notification with PNS's SQLite store
(its create, with its thread): the floor plus the store; with BENCH_FLOOR_STORE=hop it only
makes the round trip to the store's writer thread (an empty transaction). With
BENCH_FLOOR_STORE=1, fetch also lists and marks through PNS's SQLite store (its threads), as
PNS does, and the counts come from the store; BENCH_FLOOR_STORE=inline does the same with
every store call run on the event loop instead of the store's threads (one connection, one
transaction per write). With BENCH_CPROFILE_OUT set, SIGUSR1 starts cProfile and SIGUSR2
writes its stats there (as PNS's `cprofile` variant).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import jwt
import socketio
import sqlite_inline
import uvloop
from aiohttp import web

from pns_sio import jsoncodec
from pns_sio.cli import LISTEN_BACKLOG, tune_gc
from pns_sio.sio.websocket import install as install_websocket
from pns_sio.store.sqlite import SQLiteStore

SECRET = os.environ["PNS_JWT_SECRET"]
API_TOKEN = os.environ["PNS_API_TOKEN"]
PORT = int(os.environ["PNS_PORT"])

REDIS_URL = os.environ.get("PNS_REDIS_URL")
# BENCH_FLOOR_EMIT=0: a POST emits nothing (what the HTTP request alone costs; the loadgen's
# devices then see no counts, so only the CPU figures mean anything).
EMIT_ON_CREATE = os.environ.get("BENCH_FLOOR_EMIT") != "0"

sio = socketio.AsyncServer(
    async_mode="aiohttp",
    json=jsoncodec,
    cors_allowed_origins="*",
    client_manager=socketio.AsyncRedisManager(REDIS_URL) if REDIS_URL else None,
)
install_websocket(sio)
counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # user -> [count, rev]
unseen: dict[str, list[dict[str, Any]]] = defaultdict(list)  # user -> notifications, oldest first
users: dict[str, str] = {}  # sid -> user
created = [0]
store: Any = None


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    try:
        claims = jwt.decode((auth or {}).get("token", ""), SECRET, algorithms=["HS256"])
    except (jwt.InvalidTokenError, AttributeError):
        raise socketio.exceptions.ConnectionRefusedError("unauthorized") from None
    user = str(claims["sub"])
    users[sid] = user
    await sio.enter_room(sid, f"user:{user}")
    count, rev = counts[user]
    await sio.emit("new-notifications-count", {"count": count, "rev": rev}, to=sid)


async def create(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") != f"Bearer {API_TOKEN}":
        return web.json_response({"error": "unauthorized"}, status=401)
    body = jsoncodec.loads(await request.read())
    user = str(body["user_id"])
    created[0] += 1
    entry = counts[user]
    if store is not None and os.environ.get("BENCH_FLOOR_STORE") != "hop":
        made = await store.create(user, body["data"])
        # The store's count and rev, so that fetch's counts (from the store too) agree.
        entry[0], entry[1] = made.count, made.rev
    else:
        if store is not None:
            await store._writer.run(lambda conn: None)  # the round trip, no SQL
        entry[0] += 1
        entry[1] += 1
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        unseen[user].append(
            {"id": str(created[0]), "data": body["data"], "created_at": now, "seen_at": None}
        )
    if EMIT_ON_CREATE:
        await sio.emit(
            "new-notifications-count", {"count": entry[0], "rev": entry[1]}, room=f"user:{user}"
        )
    return web.json_response({"id": str(created[0])}, status=201, dumps=jsoncodec.dumps)


@sio.on("get-new-notifications")
async def fetch(sid: str, request: Any = None) -> dict[str, Any]:
    user = users[sid]
    limit = int((request or {}).get("limit", 10))
    if store is not None and os.environ.get("BENCH_FLOOR_STORE") in ("1", "inline"):
        return await fetch_from_store(sid, user, limit)
    pending = unseen[user]
    batch = pending[:limit]
    if not batch:
        return {"ok": True, "delivered": 0, "has_more": False}
    acked: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    await sio.emit(
        "new-notifications",
        {"notifications": batch, "has_more": len(pending) > limit},
        to=sid,
        callback=lambda *args: acked.done() or acked.set_result(args),
        ignore_queue=True,  # the ack must come back here, as in PNS
    )
    async with asyncio.timeout(10):
        await acked
    taken = {n["id"] for n in batch}
    unseen[user] = [n for n in unseen[user] if n["id"] not in taken]
    entry = counts[user]
    entry[0] = len(unseen[user])
    entry[1] += 1
    await sio.emit(
        "new-notifications-count", {"count": entry[0], "rev": entry[1]}, room=f"user:{user}"
    )
    return {"ok": True, "delivered": len(batch), "has_more": len(unseen[user]) > 0}


async def fetch_from_store(sid: str, user: str, limit: int) -> dict[str, Any]:
    """PNS's two store calls (list, then mark what was acknowledged) with nothing else of PNS:
    no validation, no metrics, no timeouts but the ack's, the payload built by hand."""
    found = await store.list_unseen(user, limit + 1)
    batch, has_more = found[:limit], len(found) > limit
    if not batch:
        return {"ok": True, "delivered": 0, "has_more": False}
    acked: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    payload = [
        {"id": n.id, "data": n.data, "created_at": n.created_at.isoformat(), "seen_at": None}
        for n in batch
    ]
    await sio.emit(
        "new-notifications",
        {"notifications": payload, "has_more": has_more},
        to=sid,
        callback=lambda *args: acked.done() or acked.set_result(args),
        ignore_queue=True,
    )
    async with asyncio.timeout(10):
        await acked
    marked = await store.mark_seen(user, [n.id for n in batch])
    if marked.changed:
        counts[user] = [marked.count, marked.rev]
        await sio.emit(
            "new-notifications-count",
            {"count": marked.count, "rev": marked.rev},
            room=f"user:{user}",
        )
    return {"ok": True, "delivered": marked.changed, "has_more": has_more}


@sio.event
async def disconnect(sid: str, reason: Any = None) -> None:
    users.pop(sid, None)


async def readyz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready", "broker": "embedded"})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=f"pns_notifications_created_total {created[0]}\n")


def profile_on_signals(out: str) -> None:
    """As pns_variant.py's cprofile: SIGUSR1 starts cProfile, SIGUSR2 writes its stats to
    ``out`` (exact call counts per operation, to set against PNS's)."""
    import cProfile

    profiler = cProfile.Profile()

    def stop(*_: Any) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    signal.signal(signal.SIGUSR2, stop)


async def main() -> None:
    global store
    if os.environ.get("BENCH_FLOOR_STORE"):
        store = await SQLiteStore.open(os.environ["PNS_STORE_URL"])
        if os.environ["BENCH_FLOOR_STORE"] == "inline":
            sqlite_inline.install()
    app = web.Application()
    sio.attach(app)
    app.router.add_post("/api/v1/notifications", create)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", PORT, backlog=LISTEN_BACKLOG).start()
    tune_gc()
    if os.environ.get("BENCH_CPROFILE_OUT"):
        profile_on_signals(os.environ["BENCH_CPROFILE_OUT"])
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    uvloop.run(main())
