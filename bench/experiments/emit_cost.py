"""What one emit to one connection costs: python-socketio's ``AsyncManager.emit`` against
PNS's ``DirectEmit`` (pns_sio/sio/emit.py), with an ack callback (a fetched batch) and
without (a count). The Engine.IO send is a coroutine that returns at once, so the figure
is the manager's own work: encoding, the task per recipient or not, the loop turn.

    .venv/bin/python bench/experiments/emit_cost.py [ROUNDS]

Prints µs of process CPU per emit, each the best of ROUNDS (default 3) runs of 20,000.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import socketio
import uvloop

from pns_sio.sio.emit import DirectEmit

EMITS = 20_000
BATCH = {
    "notifications": [
        {
            "id": "6565e1f0a1b2c3d4e5f60718",
            "data": {"title": "hi"},
            "created_at": "2026-12-07T03:00:00Z",
        }
    ],
    "has_more": False,
}


async def cost(manager: socketio.AsyncManager, with_callback: bool) -> float:
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
    manager.initialize()

    async def send_packet(eio_sid: str, pkt: Any) -> None:
        return None

    sio.eio.send_packet = send_packet  # type: ignore[method-assign]
    sid = await manager.connect("eio-sid", "/")

    def callback(*args: Any) -> None:
        return None

    start = time.process_time()
    for i in range(EMITS):
        if with_callback:
            await manager.emit("pns:new-notifications", BATCH, "/", to=sid, callback=callback)
            del manager.callbacks[sid][i + 1]  # as an ack would
        else:
            await manager.emit("pns:new-notifications-count", {"count": i, "rev": i}, "/", to=sid)
    return (time.process_time() - start) / EMITS * 1e6


async def main(rounds: int) -> None:
    for label, make in (("library", socketio.AsyncManager), ("DirectEmit", DirectEmit)):
        for with_callback in (True, False):
            best = min([await cost(make(), with_callback) for _ in range(rounds)])
            kind = "with an ack callback" if with_callback else "without (a count)"
            print(f"{label:10} {kind:22} {best:6.1f} µs CPU per emit")


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
