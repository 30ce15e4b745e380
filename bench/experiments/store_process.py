"""Experiment (variant ``storeprocess`` of pns_variant.py): the SQLite store in a process
of its own, so its threads never wait for the node's GIL. Not part of PNS: measured in
bench/RESULTS.md (session 7), it raised fetch throughput by a quarter at the same CPU
per delivery, and cost a quarter more CPU per notification in fan-out.

The SQLite store runs its statements on two threads. In a node under load those
threads take turns with the event loop for one GIL: measured at 1,340 deliveries/s,
the loop held the GIL in 91 % of the samples and the writer spent 89 % of its time
waiting to get it back (bench/RESULTS.md, session 5), so acknowledgements queued
behind a writer that was mostly not running. ``ProcessStore`` runs the backend in a
child process (this file, run as a script) with a GIL of its own; the loop's
side of each call is one framed message each way on the child's stdin and stdout.

Calls are pickled ``(id, method, args, kwargs)`` frames, answered by ``(id, ok,
value)`` frames, many in flight at once (the child runs them concurrently, so the
SQLite writer still batches them). The child is PNS's own, started by this module
with the same interpreter: its frames are trusted.

If the child dies, every call in flight and every call after answers
``StoreUnavailable``, and the next call starts a new child (at most one start a
second): the store is the source of truth, and nothing a call wrote is lost with
the process. The child ends when its stdin closes (the node closed the store, or
died), and ignores SIGINT and SIGTERM: a signal sent to the node's process group
must not take the store away in the middle of the node's drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import signal
import struct
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pns_sio.errors import StoreUnavailable
from pns_sio.store import Claim, Created, JSONObject, Marked, Notification, UnseenCount

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
START_TIMEOUT_MARGIN = 30.0  # seconds for the interpreter and the store's imports
RESTART_INTERVAL = 1.0  # at most one start of a child a second
STOP_TIMEOUT = 10.0


def _frame(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    """The next message, or None at the end of the stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        return pickle.loads(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return None


class ProcessStore:
    """``NotificationStore`` whose backend runs in a child process."""

    def __init__(self, url: str, *, timeout: float, retention: Any = None) -> None:
        self.url = url
        self.timeout = timeout
        self.retention = retention
        self.EXPIRES_ITSELF = False
        self._child: asyncio.subprocess.Process | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._starting: asyncio.Lock | None = None
        self._last_start = 0.0
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, timeout: float, retention: Any = None) -> ProcessStore:
        """Start the child and open the store in it; ``StoreUnavailable`` (or
        ``SettingsError``) as the backend's own ``open`` would raise."""
        store = cls(url, timeout=timeout, retention=retention)
        await store._start()
        return store

    async def _start(self) -> asyncio.subprocess.Process:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._child is not None and self._child.returncode is None:
                return self._child
            if self._closed:
                raise StoreUnavailable("the notification store is closed")
            wait = self._last_start + RESTART_INTERVAL - time.monotonic()
            if wait > 0:
                raise StoreUnavailable("the store process is restarting")
            self._last_start = time.monotonic()
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                # Large frames (a batch of records) in one read.
                limit=2**24,
            )
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(_frame((self.url, self.timeout, self.retention)))
            try:
                async with asyncio.timeout(self.timeout + START_TIMEOUT_MARGIN):
                    ready = await _read_frame(child.stdout)
            except TimeoutError:
                ready = (False, StoreUnavailable("the store process did not start in time"))
            if ready is None or not ready[0]:
                await self._reap(child)
                error = ready[1] if ready else StoreUnavailable("the store process exited")
                raise error
            self.EXPIRES_ITSELF = bool(ready[1])
            self._child = child
            self._reader_task = asyncio.create_task(self._read(child), name="store-process")
            return child

    async def _read(self, child: asyncio.subprocess.Process) -> None:
        assert child.stdout is not None
        try:
            while (message := await _read_frame(child.stdout)) is not None:
                call_id, ok, value = message
                future = self._pending.pop(call_id, None)
                if future is None or future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        finally:
            # The child is gone: nothing in flight will be answered.
            if self._child is child:
                self._child = None
            pending, self._pending = self._pending, {}
            for future in pending.values():
                if not future.done():
                    future.set_exception(StoreUnavailable("the store process exited"))
            if not self._closed:
                logger.warning("the store process exited (status %s)", child.returncode)
            await self._reap(child)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        child = self._child
        if child is None or child.returncode is not None:
            child = await self._start()
        assert child.stdin is not None
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        try:
            child.stdin.write(_frame((call_id, method, args, kwargs)))
        except (ConnectionError, RuntimeError) as exc:
            self._pending.pop(call_id, None)
            raise StoreUnavailable("the store process is gone") from exc
        try:
            return await future
        finally:
            self._pending.pop(call_id, None)

    @staticmethod
    async def _reap(child: asyncio.subprocess.Process) -> None:
        if child.stdin is not None and not child.stdin.is_closing():
            child.stdin.close()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await child.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()

    # -- NotificationStore -----------------------------------------------------------

    async def create(self, user_id: str, data: JSONObject) -> Created:
        return (await self.create_many([(user_id, data)]))[0]

    async def create_many(
        self, items: list[tuple[str, JSONObject]], *, ids: list[str] | None = None
    ) -> list[Created]:
        result: list[Created] = await self._call("create_many", items, ids=ids)
        return result

    async def unseen(self, user_id: str) -> UnseenCount:
        result: UnseenCount = await self._call("unseen", user_id)
        return result

    async def list_unseen(self, user_id: str, limit: int) -> list[Notification]:
        result: list[Notification] = await self._call("list_unseen", user_id, limit)
        return result

    async def mark_seen(self, user_id: str, ids: list[str]) -> Marked:
        result: Marked = await self._call("mark_seen", user_id, ids)
        return result

    async def bump_rev(self, user_id: str) -> int:
        result: int = await self._call("bump_rev", user_id)
        return result

    async def get(self, notification_id: str) -> Notification | None:
        result: Notification | None = await self._call("get", notification_id)
        return result

    async def purge_seen(self, before: datetime) -> int:
        result: int = await self._call("purge_seen", before)
        return result

    async def claim_key(self, key: str, fingerprint: str) -> Claim:
        result: Claim = await self._call("claim_key", key, fingerprint)
        return result

    async def complete_key(self, key: str, response: JSONObject) -> None:
        await self._call("complete_key", key, response)

    async def release_key(self, key: str) -> None:
        await self._call("release_key", key)

    async def ping(self) -> None:
        await self._call("ping")

    async def close(self) -> None:
        """Close the child's stdin (it closes its store and exits) and wait for it."""
        self._closed = True
        child, self._child = self._child, None
        if child is not None:
            await self._reap(child)
        if self._reader_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task


# -- the child ---------------------------------------------------------------------------

CALLS = frozenset(
    {
        "create_many",
        "unseen",
        "list_unseen",
        "mark_seen",
        "bump_rev",
        "get",
        "purge_seen",
        "claim_key",
        "complete_key",
        "release_key",
        "ping",
    }
)


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.dumps(exc)
    except Exception:
        return StoreUnavailable(f"the store failed: {type(exc).__name__}")
    return exc


async def _serve() -> None:
    from pns_sio.store import open_store

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, sys.stdout
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)

    opening = await _read_frame(reader)
    if opening is None:
        return
    url, timeout, retention = opening
    try:
        store = await open_store(url, timeout=timeout, retention=retention)
    except Exception as exc:
        writer.write(_frame((False, _picklable(exc))))
        await writer.drain()
        return
    writer.write(_frame((True, getattr(store, "EXPIRES_ITSELF", False))))

    running: set[asyncio.Task[None]] = set()

    async def answer(call_id: int, method: str, args: Any, kwargs: Any) -> None:
        try:
            if method not in CALLS:
                raise StoreUnavailable(f"unknown store call {method!r}")
            value = await getattr(store, method)(*args, **kwargs)
            frame = _frame((call_id, True, value))
        except Exception as exc:
            frame = _frame((call_id, False, _picklable(exc)))
        writer.write(frame)

    try:
        while (message := await _read_frame(reader)) is not None:
            task = asyncio.create_task(answer(*message))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.wait(running, timeout=timeout + 1)
    finally:
        await store.close()
        with contextlib.suppress(Exception):
            await writer.drain()


def main() -> None:
    # The node ends this process by closing its stdin, after its own drain.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve())
    # stdout's pipe was the loop's, closed with it; nothing is left to flush.
    os._exit(0)


if __name__ == "__main__":
    main()
