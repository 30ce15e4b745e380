"""Test devices: real python-socketio clients over TCP that record what they receive.

A device keeps its count by the protocol's rev rule, exactly as a real client
must. Tests await events and conditions with a deadline; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from pns_sio.wire import EV_BATCH, EV_COUNT, EV_FETCH

DEFAULT_WAIT = 10.0


class ConnectRefused(Exception):
    def __init__(self, error: Any) -> None:
        super().__init__(error)
        self.error = error


def reconnecting(delay: float = 0.1, delay_max: float = 0.5) -> dict[str, Any]:
    """``Device(**reconnecting())``: reconnects by itself after a lost connection, fast."""
    return {
        "reconnection": True,
        "reconnection_delay": delay,
        "reconnection_delay_max": delay_max,
        "randomization_factor": 0,
    }


class Device:
    """One Socket.IO connection.

    ``ack_mode``: ``"auto"`` accepts every batch at once; ``"manual"`` leaves
    each batch's acknowledgement to the test (``next_batch()``).
    """

    def __init__(self, *, ack_mode: str = "auto", name: str = "device", **client: Any) -> None:
        """``client``: python-socketio ``AsyncClient`` options; by default it never
        reconnects (``reconnecting()`` gives the options of one that does, quickly)."""
        self.name = name
        self.ack_mode = ack_mode
        self.sio = socketio.AsyncClient(**{"reconnection": False, **client})
        # Connections opened so far (a reconnecting client opens several).
        self.connects = 0
        self.events: list[tuple[str, Any]] = []
        self.kept: dict[str, int] | None = None
        self.batches: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[Any]]] = asyncio.Queue()
        self.delivered_ids: list[str] = []
        # When set, decides each batch's acknowledgement (return value = ack arguments).
        self.ack_with: Callable[[dict[str, Any]], Any] | None = None
        self.connect_error: Any = None
        # Manual acknowledgements not given yet: close() gives up on them.
        self._unanswered: set[asyncio.Future[Any]] = set()
        self.disconnected = asyncio.Event()
        self._changed = asyncio.Event()
        self.sio.on("*", self._on_any)
        self.sio.on(EV_COUNT, self._on_count)
        self.sio.on(EV_BATCH, self._on_batch)
        self.sio.on("connect", self._on_connect)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("disconnect", self._on_disconnect)

    # -- handlers --------------------------------------------------------------

    def _record(self, event: str, data: Any) -> None:
        self.events.append((event, data))
        self._changed.set()

    async def _on_any(self, event: str, *args: Any) -> None:
        self._record(event, args[0] if len(args) == 1 else args)

    async def _on_count(self, data: dict[str, int]) -> None:
        # PROTOCOL: keep the highest rev; an equal rev replaces the kept value.
        if self.kept is None or data["rev"] >= self.kept["rev"]:
            self.kept = data
        self._record(EV_COUNT, data)

    async def _on_batch(self, data: dict[str, Any]) -> Any:
        self.delivered_ids.extend(n["id"] for n in data["notifications"])
        self._record(EV_BATCH, data)
        if self.ack_with is not None:
            decided = self.ack_with(data)
            return await decided if inspect.isawaitable(decided) else decided
        if self.ack_mode == "auto":
            return None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._unanswered.add(future)
        future.add_done_callback(self._unanswered.discard)
        await self.batches.put((data, future))
        return await future

    def _on_connect(self) -> None:
        # Not a coroutine: it runs before the connection's first event is handled.
        # PROTOCOL: the kept count is the highest rev "on the current connection".
        self.connects += 1
        self.kept = None
        self._changed.set()

    async def _on_connect_error(self, data: Any) -> None:
        self.connect_error = data

    async def _on_disconnect(self, *args: Any) -> None:
        self.disconnected.set()
        self._changed.set()

    # -- actions ---------------------------------------------------------------

    async def connect(
        self,
        url: str,
        *,
        auth: Any = None,
        headers: dict[str, str] | None = None,
        transports: list[str] | None = None,
    ) -> Device:
        try:
            await self.sio.connect(
                url,
                auth=auth,
                headers=headers or {},
                transports=transports or ["websocket"],
                wait_timeout=DEFAULT_WAIT,
            )
        except socketio.exceptions.ConnectionError as exc:
            raise ConnectRefused(self.connect_error) from exc
        return self

    async def fetch(self, payload: Any = None, *, timeout: float = DEFAULT_WAIT) -> Any:
        """Send get-new-notifications and return the server's answer."""
        args = () if payload is None else payload
        return await self.sio.call(EV_FETCH, args, timeout=timeout)

    async def emit_call(self, event: str, *args: Any, timeout: float = DEFAULT_WAIT) -> Any:
        data: Any = args[0] if len(args) == 1 else args
        return await self.sio.call(event, data, timeout=timeout)

    async def next_batch(self, timeout: float = DEFAULT_WAIT) -> tuple[dict[str, Any], Any]:
        async with asyncio.timeout(timeout):
            return await self.batches.get()

    async def close(self) -> None:
        # A batch the test never acknowledged holds a handler of the client: end it.
        for future in list(self._unanswered):
            future.cancel()
        if self.sio.connected:
            await self.sio.disconnect()
        await self.sio.shutdown()

    # -- waiting -----------------------------------------------------------------

    async def until(self, predicate: Callable[[], bool], timeout: float = DEFAULT_WAIT) -> None:
        """Wait until ``predicate()`` holds, re-checking after every received event."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_count(self, count: int, timeout: float = DEFAULT_WAIT) -> dict[str, int]:
        await self.until(lambda: self.kept is not None and self.kept["count"] == count, timeout)
        assert self.kept is not None
        return self.kept

    async def first_event(self, timeout: float = DEFAULT_WAIT) -> tuple[str, Any]:
        await self.until(lambda: bool(self.events), timeout)
        return self.events[0]

    def count_events(self) -> list[dict[str, int]]:
        return [data for event, data in self.events if event == EV_COUNT]


# The connect fixture: a connected device of a node.
ConnectDevice = Callable[..., Awaitable[Device]]
