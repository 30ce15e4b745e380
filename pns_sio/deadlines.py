"""Many far-apart deadlines on one event-loop timer.

Every connection has deadlines: its next ping, the moment its silence means it
is gone, its token's expiry. A timer handle per deadline costs about half a
KiB per connection each (uvloop's handle, its libuv timer, the callback and
its context), more than everything else a connection adds. ``Deadlines``
keeps each key in a slot of ``resolution`` seconds and runs one loop timer, at
the earliest slot that holds anything: a key costs two dict entries, and the
loop wakes once per slot for all the keys due in it.

A deadline fires at most ``resolution`` late (plus the loop's own lag), never early:
a timer that wakes early (uvloop rounds to milliseconds) finds nothing due and
re-arms.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

RESOLUTION = 0.05  # seconds: late enough to share a wake-up, early enough for any ping


class Deadlines(Generic[K]):
    """``fire(key)`` runs once each key's deadline has passed, unless cancelled first."""

    def __init__(self, fire: Callable[[K], None], resolution: float = RESOLUTION) -> None:
        self._fire = fire
        self._resolution = resolution
        self._slot_of: dict[K, int] = {}
        self._slots: dict[int, dict[K, None]] = {}  # slot -> its keys, in the order set
        self._order: list[int] = []  # heap of the slots in _slots (and some emptied)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_slot: int | None = None
        self._running = False

    def __len__(self) -> int:
        return len(self._slot_of)

    @property
    def armed(self) -> bool:
        """True while a loop timer is set for this object's keys."""
        return self._timer is not None

    def set(self, key: K, when: float) -> None:
        """Fire for ``key`` at ``when`` (the running loop's clock), instead of any
        deadline ``key`` had."""
        self.cancel(key)
        slot = math.ceil(when / self._resolution)
        keys = self._slots.get(slot)
        if keys is None:
            keys = self._slots[slot] = {}
            heapq.heappush(self._order, slot)
        keys[key] = None
        self._slot_of[key] = slot
        if not self._running and (self._timer_slot is None or slot < self._timer_slot):
            self._arm(slot)

    def cancel(self, key: K) -> None:
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return
        keys = self._slots[slot]
        del keys[key]
        if not keys:
            # The heap keeps the slot until its time: one idle wake-up at most.
            del self._slots[slot]
        if not self._slot_of and not self._running:
            # Nothing left: no timer either (it would keep its loop alive, closed or not).
            self._order.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                self._timer_slot = None

    def clear(self) -> None:
        """Cancel every key."""
        for key in list(self._slot_of):
            self.cancel(key)

    def _arm(self, slot: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(slot * self._resolution, self._run)
        self._timer_slot = slot

    def _run(self) -> None:
        self._timer = None
        self._timer_slot = None
        now = asyncio.get_running_loop().time()
        self._running = True  # keys set by the callbacks are armed for once, below
        try:
            while self._order and self._order[0] * self._resolution <= now:
                keys = self._slots.pop(heapq.heappop(self._order), None)
                if not keys:
                    continue
                for key in keys:
                    del self._slot_of[key]
                for key in keys:
                    try:
                        self._fire(key)
                    except Exception:  # one key's failure must not cost the others theirs
                        logger.exception("deadline callback failed")
        finally:
            self._running = False
            while self._order and self._order[0] not in self._slots:
                heapq.heappop(self._order)
            if self._order:
                self._arm(self._order[0])


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Deadlines[Any]]] = (
    weakref.WeakKeyDictionary()
)


def shared(name: str, fire: Callable[[Any], None]) -> Deadlines[Any]:
    """The running loop's ``Deadlines`` called ``name`` (made with ``fire`` the first
    time): one timer per loop for a kind of deadline of every connection."""
    table = _per_loop.setdefault(asyncio.get_running_loop(), {})
    deadlines = table.get(name)
    if deadlines is None:
        deadlines = table[name] = Deadlines(fire)
    return deadlines
