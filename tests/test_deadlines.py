"""Deadlines (pns_sio/deadlines.py): many keys on one loop timer, never early, at most
one resolution late, cancelled and moved keys never fire at their old time."""

from __future__ import annotations

import asyncio
import itertools

from pns_sio.deadlines import Deadlines

RES = 0.02


class Recorder:
    """Collects (key, loop time) of every fire; ``wait(n)`` until n fires have come."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, float]] = []
        self._more = asyncio.Event()

    def __call__(self, key: str) -> None:
        self.fired.append((key, asyncio.get_running_loop().time()))
        self._more.set()

    async def wait(self, n: int) -> None:
        async with asyncio.timeout(5):
            while len(self.fired) < n:
                self._more.clear()
                await self._more.wait()


async def test_each_key_fires_once_not_before_its_time_and_within_a_resolution() -> None:
    record = Recorder()
    deadlines: Deadlines[str] = Deadlines(record, resolution=RES)
    now = asyncio.get_running_loop().time()
    wanted = {f"k{i}": now + 0.01 * i for i in range(1, 30)}
    for key, when in reversed(wanted.items()):  # set out of order: the earliest arms last
        deadlines.set(key, when)
    await record.wait(len(wanted))
    assert sorted(key for key, _ in record.fired) == sorted(wanted)
    for key, at in record.fired:
        assert wanted[key] <= at <= wanted[key] + RES + 0.05, (key, at - wanted[key])
    assert len(deadlines) == 0


async def test_a_cancelled_key_never_fires_and_a_moved_key_fires_only_at_its_new_time() -> None:
    record = Recorder()
    deadlines: Deadlines[str] = Deadlines(record, resolution=RES)
    now = asyncio.get_running_loop().time()
    deadlines.set("cancelled", now + 0.02)
    deadlines.set("moved", now + 0.02)
    deadlines.set("marker", now + 0.15)
    deadlines.cancel("cancelled")
    deadlines.set("moved", now + 0.1)
    await record.wait(2)
    assert [key for key, _ in record.fired] == ["moved", "marker"]
    assert record.fired[0][1] >= now + 0.1


async def test_a_failing_callback_costs_the_other_keys_nothing() -> None:
    record = Recorder()

    def fire(key: str) -> None:
        record(key)
        if key == "bad":
            raise RuntimeError("boom")

    deadlines: Deadlines[str] = Deadlines(fire, resolution=RES)
    now = asyncio.get_running_loop().time()
    deadlines.set("bad", now + 0.01)
    deadlines.set("good", now + 0.01)
    deadlines.set("later", now + 0.08)
    await record.wait(3)
    assert {key for key, _ in record.fired} == {"bad", "good", "later"}


async def test_a_callback_may_set_its_key_again() -> None:
    # How the silence watch and the pings re-arm themselves.
    times: list[float] = []
    done = asyncio.get_running_loop().create_future()
    deadlines: Deadlines[str]

    def again(key: str) -> None:
        times.append(asyncio.get_running_loop().time())
        if len(times) < 5:
            deadlines.set(key, times[-1] + 0.03)
        else:
            done.set_result(None)

    deadlines = Deadlines(again, resolution=RES)
    deadlines.set("watch", asyncio.get_running_loop().time() + 0.03)
    async with asyncio.timeout(5):
        await done
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.03 for gap in gaps), gaps


async def test_nothing_left_means_no_timer_left() -> None:
    # A timer armed for keys that were all cancelled would hold the loop for nothing.
    record = Recorder()
    deadlines: Deadlines[str] = Deadlines(record, resolution=RES)
    now = asyncio.get_running_loop().time()
    deadlines.set("a", now + 10)
    deadlines.set("b", now + 20)
    deadlines.cancel("a")
    deadlines.cancel("b")
    assert not deadlines.armed and len(deadlines) == 0
    deadlines.set("c", now + 0.01)
    await record.wait(1)
    assert [key for key, _ in record.fired] == ["c"]
