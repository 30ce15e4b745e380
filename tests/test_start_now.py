"""``start_now`` runs a coroutine at once and hands only a waiting rest to a task.

Counts go to a user's devices through it (``pns_sio/sio/emit.py``): each send runs
in turn without a task, and one that waits (a socket being closed) must finish on its
own without holding up the sends after it, and stay cancellable.
"""

from __future__ import annotations

import asyncio

import pytest

from pns_sio.tasks import start_now


async def test_a_coroutine_that_never_waits_runs_whole_at_once() -> None:
    done: list[str] = []

    async def send() -> None:
        done.append("sent")

    assert start_now(send()) is None
    assert done == ["sent"]


async def test_a_coroutine_that_waits_runs_to_its_wait_then_finishes_in_a_task() -> None:
    steps: list[str] = []
    gate = asyncio.get_running_loop().create_future()

    async def send() -> str:
        steps.append("before")
        steps.append(await gate)
        return "finished"

    rest = start_now(send())
    assert steps == ["before"]
    assert rest is not None and not rest.done()
    gate.set_result("after")
    assert await asyncio.wait_for(rest, 5) == "finished"
    assert steps == ["before", "after"]


@pytest.mark.parametrize("started", [False, True], ids=["before-it-ran", "while-waiting"])
async def test_the_rest_of_a_waiting_coroutine_can_be_cancelled(started: bool) -> None:
    cleaned: list[str] = []

    async def send() -> None:
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            cleaned.append("cleaned up")

    rest = start_now(send())
    assert rest is not None
    if started:
        await asyncio.sleep(0)  # the task takes over the wait
    rest.cancel()
    with pytest.raises(asyncio.CancelledError):
        await rest
    assert cleaned == ["cleaned up"]


async def test_an_error_after_the_wait_is_the_tasks() -> None:
    gate = asyncio.get_running_loop().create_future()

    async def send() -> None:
        await gate
        raise ConnectionResetError("closed meanwhile")

    rest = start_now(send())
    assert rest is not None
    gate.set_result(None)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(rest, 5)
