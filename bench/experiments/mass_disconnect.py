"""One node with USERS x 2 idle devices: idle CPU profile; then every device drops at once:
how long until the node answers /healthz again (profiled); then 4,000 devices reconnect and the
node gets SIGTERM: how long it takes to stop (profiled).

    .venv/bin/python bench/experiments/mass_disconnect.py pns|peer USERS [VARIANT]
    .venv/bin/python bench/experiments/mass_disconnect.py pns 9500 fastdisconnect
"""

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import common
from common import R


def spy(pid, secs, out):
    return subprocess.Popen(
        [
            str(__import__("pathlib").Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(secs),
            "--rate",
            "100",
            "--threads",
            "--format",
            "raw",
            "--output",
            out,
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def show(out, n=40):
    r = R.summarize_py_spy(Path(out))
    print("   samples", r.get("samples"), r.get("threads_pct"))
    for x in r.get("main_inclusive_pct", [])[6:n]:
        print("     ", x)


async def main(tname, n_users, variant=""):
    async with common.session(tname, variant, profile="full") as (b, target, tmp):
        node = R.Node(target, R.free_port(), tmp / "s.db", None)
        await node.start(b.runner, b.http)
        b.pool_ranges = b.pool.split(0, n_users)
        c = await b.connect([node], (0, n_users))
        print("connected", c["ready"], c["rate_per_s"])
        await asyncio.sleep(2)
        w = R.Window([node], b.pool, b.runner)
        p = spy(node.proc.pid, 6, str(tmp / "idle.txt"))
        await asyncio.sleep(6)
        p.wait()
        print("idle", w.close()["node_cpu_pct"])
        show(str(tmp / "idle.txt"))
        t0 = time.monotonic()
        w = R.Window([node], b.pool, b.runner)
        p = spy(node.proc.pid, 20, str(tmp / "close.txt"))
        await b.pool.all("close", timeout=60)
        print("closed (client side) in", round(time.monotonic() - t0, 2))
        # how long until the node answers /healthz again
        for i in range(120):
            try:
                async with b.http.get(
                    f"http://127.0.0.1:{node.port}/healthz",
                    timeout=aiohttp.ClientTimeout(total=1),
                ) as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            await asyncio.sleep(0.25)
        print("node answers /healthz after", round(time.monotonic() - t0, 2), "s")
        m = await node.metrics(b.http)
        print("connections gauge", m.get("pns_connections"), "at", round(time.monotonic() - t0, 2))
        p.wait()
        print("close window", w.close()["node_cpu_pct"])
        show(str(tmp / "close.txt"))
        b.pool_ranges = b.pool.split(0, 2000)
        c = await b.connect([node], (0, 2000))
        print("reconnect 4000 devices", c["ready"], c["rate_per_s"], c["errors"])
        t0 = time.monotonic()
        p = spy(node.proc.pid, 15, str(tmp / "stop.txt"))
        st = await node.proc.stop(40)
        print("stop took", round(st, 2))
        p.wait()
        show(str(tmp / "stop.txt"))


asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else ""))
