"""Routed mode: each user's messages on a channel of their own (``PNS_ROUTING=routed``).

In broadcast mode every node receives, decodes and mostly drops every message of the
deployment (python-socketio's manager has one channel). In routed mode a message for
the room ``user:<id>`` goes on that user's channel, ``<channel>#user:<id>``
(``wire.user_channel``), and a node subscribes to the channels of the users it holds:
when their first connection joins, and until ``linger`` seconds after their last one
left (a reconnecting page does not unsubscribe and subscribe again). Everything else
(resync requests, an application's own write-only manager) stays on the classic
channel, which every node still hears.

A channel per user, not per bucket of users: with buckets a node holding thousands of
users would hold nearly every bucket and hear nearly everything again. Redis keeps a
subscription in a few hundred bytes, and its work per PUBLISH grows with the
subscribers of that channel only.

No count may slip between a device's first count and its node's subscription: a
user's first device on a node is accepted only once Redis confirmed the subscription
(``expect_user``), and its first count is read after that.
After a lost subscription every channel is subscribed again and every count resent,
as in broadcast mode.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..deadlines import Deadlines
from ..wire import user_channel
from .managers import RedisBroker

logger = logging.getLogger(__name__)

LINGER_SECONDS = 15.0
SUBSCRIBE_CHUNK = 1000  # channels per SUBSCRIBE command


class RoutedRedisBroker(RedisBroker):
    """``RedisBroker`` that publishes a user's messages on the user's channel and
    subscribes to the channels of the users it holds."""

    _hears_confirmations = True

    def __init__(self, url: str, *, linger: float = LINGER_SECONDS, **options: Any) -> None:
        super().__init__(url, **options)
        self.linger = linger
        self._prefix = user_channel(self.channel, "")
        self._prefix_bytes = self._prefix.encode("utf-8")
        # Users whose channel this node wants, and who wait for its confirmation.
        self._wanted: set[str] = set()
        self._waiting: dict[str, asyncio.Future[None]] = {}
        # What the current pub/sub connection still has to be told.
        self._to_subscribe: set[str] = set()
        self._to_unsubscribe: set[str] = set()
        self._changed = asyncio.Event()
        self._updater: asyncio.Task[None] | None = None
        self._leaving = Deadlines(self._gone_for_good)

    def broker_mode(self) -> str:
        return "routed"

    @property
    def channels(self) -> int:
        """User channels this node subscribes to (or will, once Redis answers)."""
        return len(self._wanted)

    # -- publishing --------------------------------------------------------------

    def _channel_for(self, user: str | None) -> str:
        return self.channel if user is None else self._prefix + user

    # -- which users -------------------------------------------------------------

    def _user_arrived(self, user_id: str) -> None:
        self._leaving.cancel(user_id)
        if user_id not in self._wanted:
            self._subscribe_user(user_id)

    def _subscribe_user(self, user_id: str) -> None:
        self._wanted.add(user_id)
        self._waiting[user_id] = asyncio.get_running_loop().create_future()
        self._to_unsubscribe.discard(user_id)
        self._to_subscribe.add(user_id)
        self._wake()

    def _user_gone(self, user_id: str) -> None:
        self._leaving.set(user_id, asyncio.get_running_loop().time() + self.linger)

    def _gone_for_good(self, user_id: str) -> None:
        if self.has_user(user_id) or user_id not in self._wanted:
            return
        self._wanted.discard(user_id)
        waiter = self._waiting.pop(user_id, None)
        if waiter is not None and not waiter.done():
            waiter.cancel()
        self._to_subscribe.discard(user_id)
        self._to_unsubscribe.add(user_id)
        self._wake()

    def expect_user(self, user_id: str) -> asyncio.Future[None] | None:
        """Subscribe to ``user_id``'s channel before the device joins. The future is done
        once Redis confirmed it; None when it already did, or when Redis is down (the
        resync after the outage brings every count). If no device joins after all, the
        channel is left after the linger."""
        if user_id not in self._wanted:
            self._subscribe_user(user_id)
        if not self.has_user(user_id):
            # Also pushes a lingering channel's end out: it must not end between now
            # and the device's join.
            self._user_gone(user_id)
        return self._waiting.get(user_id) if self.subscribed else None

    # -- the subscription ----------------------------------------------------------

    def _wake(self) -> None:
        if self._closed:
            return
        if self._updater is None:
            self._updater = asyncio.create_task(self._update_loop(), name="redis-routes")
        self._changed.set()

    async def _update_loop(self) -> None:
        """Send SUBSCRIBE/UNSUBSCRIBE for what changed, many channels per command: a
        reconnect storm of thousands of users costs a few commands."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self.up.wait()
            sub = self._sub
            if sub is None:
                continue
            adding, self._to_subscribe = self._to_subscribe, set()
            removing, self._to_unsubscribe = self._to_unsubscribe, set()
            try:
                for chunk in _chunks([self._prefix + u for u in adding]):
                    await sub.subscribe(*chunk)
                for chunk in _chunks([self._prefix + u for u in removing]):
                    await sub.unsubscribe(*chunk)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The listener notices the broken connection and subscribes everything
                # again on the next one.
                logger.debug("could not update the redis subscription", exc_info=True)

    async def _subscribe_all(self, sub: Any) -> None:
        # A new connection: it starts with nothing, and is told everything.
        self._to_subscribe.clear()
        self._to_unsubscribe.clear()
        channels = [self.channel, *(self._prefix + u for u in self._wanted)]
        for chunk in _chunks(channels):
            await sub.subscribe(*chunk)

    def _hears(self, channel: bytes) -> bool:
        return channel == self._channel_bytes or (
            isinstance(channel, bytes) and channel.startswith(self._prefix_bytes)
        )

    def _confirmed(self, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        if message.get("type") not in ("subscribe", "ssubscribe") or not isinstance(channel, bytes):
            return
        if not channel.startswith(self._prefix_bytes):
            return
        user_id = channel[len(self._prefix_bytes) :].decode("utf-8", "replace")
        waiter = self._waiting.pop(user_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def close(self) -> None:
        if self._closed:
            return
        updater, self._updater = self._updater, None
        self._leaving.clear()
        await super().close()
        if updater is not None:
            updater.cancel()
            await asyncio.gather(updater, return_exceptions=True)
        for waiter in self._waiting.values():
            waiter.cancel()
        self._waiting.clear()


def _chunks(channels: list[str]) -> list[list[str]]:
    return [channels[i : i + SUBSCRIBE_CHUNK] for i in range(0, len(channels), SUBSCRIBE_CHUNK)]
