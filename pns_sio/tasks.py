"""An owner for background tasks (keeps the references, logs failures, cancels at
shutdown), and running a coroutine at once, as far as it goes without waiting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class TaskOwner:
    """Every background task of a node belongs to one of these (no bare create_task)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> None:
        """Run ``coro`` in the background; refused quietly once the owner is closed."""
        if self._closed:
            coro.close()
            return
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def close(self, timeout: float = 5.0) -> None:
        """Cancel every task and wait (bounded) for them to end; idempotent."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)


def start_now(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
    """Run ``coro`` now, up to its first wait: None when it finished without one, else a
    task that runs the rest. Most sends and store calls never wait, and a task for each
    costs more than they do (a task and its scheduling: 5-8 µs)."""
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    rest = asyncio.ensure_future(Rest(coro, waiting_on))
    # Cancelled before it ran, the task never reaches the coroutine: close it then, so
    # its cleanup runs now and not at garbage collection (a no-op once it has finished).
    rest.add_done_callback(lambda _: coro.close())
    return rest


class Rest(Awaitable[T]):
    """The rest of a coroutine already run up to its first wait (``waiting_on``):
    what ``await`` would have done from there, as ``yield from`` does it."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, T], waiting_on: Any) -> None:
        self._coro = coro
        self._first = waiting_on

    def __await__(self) -> Generator[Any, Any, T]:
        coro, waiting_on = self._coro, self._first
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation, a timeout's included
                try:
                    waiting_on = coro.throw(exc)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
            else:
                try:
                    waiting_on = coro.send(sent)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
