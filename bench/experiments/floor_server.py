"""The stack's floor for fan-out: python-socketio on aiohttp doing only what the fan-out
bench needs, with PNS's runtime choices (uvloop, orjson, no permessage-deflate, the GC
tuning) and none of PNS's own work (no store, no validation beyond the JSON, no signal
path, no metrics but one counter, no rate limits).

Devices connect with the bench's JWT and get {"count", "rev"} at once; a POST to
/api/v1/notifications raises the user's count and rev in memory and emits the count to the
user's room. CPU per notification here against PNS's is what PNS's own logic costs; this
against the Node peer's is what the stack costs.

    .venv/bin/python bench/experiments/fan_out.py floor - 1000 500,800 10
    BENCH_FLOOR_STORE=1 .venv/bin/python bench/experiments/fan_out.py floor - 1000 500,800 10

With BENCH_FLOOR_STORE=1 each POST also stores the notification with PNS's SQLite store
(its create, with its thread): the floor plus the store; with BENCH_FLOOR_STORE=hop it only
makes the round trip to the store's writer thread (an empty transaction).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import defaultdict
from typing import Any

import jwt
import socketio
import uvloop
from aiohttp import web

from pns_sio import jsoncodec
from pns_sio.cli import LISTEN_BACKLOG, tune_gc
from pns_sio.store.sqlite import SQLiteStore
from pns_sio.transport import install as install_websocket

SECRET = os.environ["PNS_JWT_SECRET"]
API_TOKEN = os.environ["PNS_API_TOKEN"]
PORT = int(os.environ["PNS_PORT"])

sio = socketio.AsyncServer(async_mode="aiohttp", json=jsoncodec, cors_allowed_origins="*")
install_websocket(sio)
counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # user -> [count, rev]
created = [0]
store: Any = None


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    try:
        claims = jwt.decode((auth or {}).get("token", ""), SECRET, algorithms=["HS256"])
    except (jwt.InvalidTokenError, AttributeError):
        raise socketio.exceptions.ConnectionRefusedError("unauthorized") from None
    user = str(claims["sub"])
    await sio.enter_room(sid, f"user:{user}")
    count, rev = counts[user]
    await sio.emit("new-notifications-count", {"count": count, "rev": rev}, to=sid)


async def create(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") != f"Bearer {API_TOKEN}":
        return web.json_response({"error": "unauthorized"}, status=401)
    body = jsoncodec.loads(await request.read())
    user = str(body["user_id"])
    if store is not None:
        if os.environ.get("BENCH_FLOOR_STORE") == "hop":
            await store._writer.run(lambda conn: None)  # the round trip, no SQL
        else:
            await store.create(user, body["data"])
    entry = counts[user]
    entry[0] += 1
    entry[1] += 1
    created[0] += 1
    await sio.emit(
        "new-notifications-count", {"count": entry[0], "rev": entry[1]}, room=f"user:{user}"
    )
    return web.json_response({"id": str(created[0])}, status=201, dumps=jsoncodec.dumps)


async def readyz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready", "broker": "embedded"})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=f"pns_notifications_created_total {created[0]}\n")


async def main() -> None:
    global store
    if os.environ.get("BENCH_FLOOR_STORE"):
        store = await SQLiteStore.open(os.environ["PNS_STORE_URL"])
    app = web.Application()
    sio.attach(app)
    app.router.add_post("/api/v1/notifications", create)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", PORT, backlog=LISTEN_BACKLOG).start()
    tune_gc()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    uvloop.run(main())
