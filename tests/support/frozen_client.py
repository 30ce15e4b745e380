"""A device in a process of its own, for tests that freeze it (SIGSTOP) or kill it.

``python tests/support/frozen_client.py URL USER`` connects with demo auth,
prints ``connected <sid>`` once the connection is up, then only keeps it
(answers pings) until the server closes it. A frozen process answers nothing
while the kernel keeps its TCP connection open: a half-open client, as the
server sees it.
"""

from __future__ import annotations

import asyncio
import sys

import socketio


async def main(url: str, user: str) -> None:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, auth={"user_id": user}, transports=["websocket"], wait_timeout=10)
    print("connected", sio.get_sid(), flush=True)
    await sio.wait()
    print("disconnected", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
