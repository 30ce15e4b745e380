"""What a node publishes for the other nodes: one queue, one sender task, one
pipelined round trip per batch (python-socketio's own manager opens a connection per
concurrent emit and waits for Redis in the emitting task).

Publishing never waits for Redis. When Redis does not take a batch (two tries), the
users it was for are remembered, and once Redis takes messages again their counts
go out again (the store is the truth; this is how the other nodes hear it). Past
``LOST_USERS_MAX`` users, or a message for no user, it is every user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

OUTBOX_LIMIT = 10_000  # messages waiting for Redis; past that they are dropped (and logged)
PIPELINE_MAX = 500  # messages sent in one round trip
LOST_USERS_MAX = 10_000  # users remembered after lost publishes; past that, everyone
LOST_PROBE_INTERVAL = 1.0  # seconds between probes of Redis while messages were lost

# (the encoded message, the user whose room it is for, or None)
Message = tuple[str, str | None]


class Outbox:
    """``publish(batch)`` sends a batch in one round trip (an empty batch is a probe)
    and raises when Redis did not take it; ``on_recovered(users)`` hears whose
    messages were lost (None: everyone's) once Redis takes messages again."""

    def __init__(
        self,
        publish: Callable[[list[Message]], Awaitable[None]],
        on_recovered: Callable[[set[str] | None], None],
    ) -> None:
        self._publish = publish
        self._on_recovered = on_recovered
        self._queue: asyncio.Queue[Message] = asyncio.Queue(OUTBOX_LIMIT)
        self._sender: asyncio.Task[None] | None = None
        self._lost: set[str] | None = set()
        self._losing = False
        self.dropped = 0

    def put(self, message: Message) -> None:
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop(), name="redis-publisher")
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            self._lose([message])
            if self.dropped % 1000 == 1:
                logger.warning("redis is not keeping up: %d messages dropped", self.dropped)

    async def close(self, timeout: float) -> None:
        """Send what is queued (counts pushed while stopping still go out), for at most
        ``timeout`` seconds, then stop the sender."""
        if self._sender is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._queue.join()
        self._sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender

    def _lose(self, messages: list[Message]) -> None:
        self._losing = True
        for _, user in messages:
            if self._lost is None:
                return
            if user is None or len(self._lost) >= LOST_USERS_MAX:
                self._lost = None
                return
            self._lost.add(user)

    def _recovered(self) -> None:
        if not self._losing:
            return
        lost, self._lost, self._losing = self._lost, set(), False
        logger.warning(
            "redis takes messages again; re-publishing the counts of %s",
            "every user" if lost is None else f"{len(lost)} users",
        )
        self._on_recovered(lost)

    async def _send_loop(self) -> None:
        queue = self._queue
        while True:
            if self._losing:
                # Lost messages wait for Redis to answer again, even if nothing new
                # is published meanwhile: probe it now and then.
                try:
                    async with asyncio.timeout(LOST_PROBE_INTERVAL):
                        first = await queue.get()
                except TimeoutError:
                    await self._send([])
                    continue
            else:
                first = await queue.get()
            batch = [first]
            while len(batch) < PIPELINE_MAX and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._send(batch)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _send(self, batch: list[Message]) -> None:
        """Two tries; then the batch counts as lost."""
        for attempt in (1, 2):
            try:
                await self._publish(batch)
            except Exception as exc:  # not a cancellation: that is a BaseException
                if attempt == 2:
                    if batch:
                        logger.warning(
                            "cannot publish %d messages to redis (%s); their users' counts "
                            "go out again when it answers",
                            len(batch),
                            type(exc).__name__,
                        )
                    self._lose(batch)
                continue
            self._recovered()
            return
