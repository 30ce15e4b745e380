"""How long a node with USERS x 2 connected devices takes to stop after SIGTERM, and what its
log says of each phase of the stop.

    .venv/bin/python bench/experiments/sigterm.py pns|peer USERS [VARIANT|-] [spy]
    .venv/bin/python bench/experiments/sigterm.py pns 5000 - spy
"""

import asyncio
import sys
from pathlib import Path

import common
from common import R


def stop_lines(tmp: Path, tname: str) -> list[str]:
    """What the node logged about stopping (warnings: the bench runs nodes at WARNING)."""
    return [
        line
        for log in sorted(tmp.glob(f"{tname}-*.log"))
        for line in log.read_text().splitlines()
        if "stop" in line or "drain" in line or "signal" in line
    ]


async def main(tname: str, users: int, variant: str, spy: bool) -> None:
    async with common.session(tname, variant, prefix="exp-stop-", py_spy=spy) as (b, target, tmp):
        node = R.Node(target, R.free_port(), tmp / "s.db", None)
        await node.start(b.runner, b.http)
        b.pool_ranges = b.pool.split(0, users)
        c = await b.connect([node], (0, users))
        print(f"{tname}: {c['ready']} devices connected at {c['rate_per_s']}/s")
        sp = b.start_py_spy(target, node, "sigterm", 30)
        took = await node.proc.stop(60)
        print(f"{tname}: stopped {took:.2f} s after SIGTERM (killed: {node.proc.killed})")
        for line in stop_lines(tmp, tname):
            print("   ", line)
        if sp:
            common.show_py_spy(await b.finish_py_spy(*sp))


args = sys.argv[1:]
variant = args[2] if len(args) > 2 and args[2] != "-" else ""
asyncio.run(main(args[0], int(args[1]), variant, "spy" in args[3:]))
