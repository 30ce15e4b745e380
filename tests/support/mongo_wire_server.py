"""Run mongoeco's MongoDB wire-protocol server until SIGTERM or SIGINT.

No mongod can be installed on the development and CI machines, so the store
tests talk real PyMongo over TCP to this stand-in (docs: DESIGN.md, "Tests").
mongoeco needs Python 3.13+, so this script runs in its own venv
(``.venv-mongo/bin/python tests/support/mongo_wire_server.py --port P``) and
imports nothing from PNS. Data lives in memory and is gone when it stops.

Prints one line, ``ready mongoeco <version> mongodb://<host>:<port>``, once
the port accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import mongoeco
from mongoeco.wire import AsyncMongoEcoProxyServer


async def serve(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = AsyncMongoEcoProxyServer(host=host, port=port)
    address = await server.start()
    try:
        print(
            f"ready mongoeco {mongoeco.__version__} mongodb://{address.host}:{address.port}",
            flush=True,
        )
        await stop.wait()
    finally:
        # close() aborts open client sockets, so it does not wait on PyMongo's pool.
        await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
