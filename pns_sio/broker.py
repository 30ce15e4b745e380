"""Client managers: how a node hears of new notifications and reaches other nodes.

Two python-socketio managers share one set of hooks:

- ``LocalBroker`` (embedded mode): python-socketio's in-process manager.
- ``RedisBroker`` (many nodes): ``AsyncRedisManager``, reworked where its
  defaults hurt PNS: it re-subscribes within seconds (not after a back-off
  growing to 60 s), tells the node when it has re-subscribed so the node
  resyncs its users' counts (Redis pub/sub keeps nothing published while a
  subscriber was away), bounds how long a publish may take, and owns and
  closes its Redis connections.

Both take the event ``pns:notification`` (the application's signal) out of
the emit path: it never reaches a client; it is handed to ``on_signal``, which
only schedules work, because the pub/sub listener handles messages one at a
time and store work inside it would stall all cross-node traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeGuard
from urllib.parse import urlparse

import socketio
from redis import asyncio as aioredis
from socketio.redis_manager import parse_redis_sentinel_url

from . import jsoncodec
from .quiet_log import QuietLog
from .store import UnseenCount
from .wire import EV_RESYNC, EV_SIGNAL, NAMESPACE, USER_ROOM_PREFIX

logger = logging.getLogger(__name__)
_quiet = QuietLog(logger)

RESUBSCRIBE_MIN_DELAY = 0.2
RESUBSCRIBE_MAX_DELAY = 2.0
OUTBOX_LIMIT = 10_000  # messages waiting for Redis; past that they are dropped (and logged)
PIPELINE_MAX = 500  # messages sent in one round trip
LOST_USERS_MAX = 10_000  # users remembered after lost publishes; past that, everyone
LOST_PROBE_INTERVAL = 1.0  # seconds between probes of Redis while messages were lost
PROBE_SUFFIX = ":pns-probe"  # the probe publishes to a channel nobody listens to


def _noop_signal(user_id: str, notification_id: str | None, unseen: UnseenCount | None) -> None:
    """Placeholder until the node wires its count service in."""


def _noop() -> None:
    """Placeholder hook."""


def _noop_sid(sid: str) -> None:
    """Placeholder hook."""


def _noop_lost(users: set[str] | None) -> None:
    """Default: nobody to tell."""


def _user_of(data: Any) -> str | None:
    """The user whose room a manager message is for, if it is one user's room."""
    room = data.get("room") if isinstance(data, dict) else None
    if isinstance(room, str) and room.startswith(USER_ROOM_PREFIX):
        return room[len(USER_ROOM_PREFIX) :]
    return None


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _Hooks:
    """What both managers call back into; the node replaces the no-ops at start."""

    on_signal: Callable[[str, str | None, UnseenCount | None], None] = staticmethod(_noop_signal)
    on_resubscribed: Callable[[], None] = staticmethod(_noop)
    on_connected: Callable[[str], None] = staticmethod(_noop_sid)

    rooms: dict[str, Any]
    # Set while subscribed / while not; tests and readiness wait on them.
    up: asyncio.Event
    down: asyncio.Event

    def _init_hooks(self, subscribed: bool) -> None:
        self.up = asyncio.Event()
        self.down = asyncio.Event()
        (self.up if subscribed else self.down).set()
        self._sid_rooms: dict[tuple[str, str], set[Any]] = {}

    # python-socketio finds a leaving client's rooms by scanning every room of
    # the namespace: one per connection and one per user here, so a mass
    # disconnect (a node's clients dropping together) costs O(n^2) and froze a
    # node with 19,000 clients for minutes. An index of each client's rooms
    # makes every disconnect O(its own rooms).

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self._sid_rooms.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        rooms = self._sid_rooms.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        # python-socketio's own basic_disconnect, with the index instead of the scan.
        rooms = self._sid_rooms.pop((namespace, sid), set())
        if namespace not in self.rooms:
            return
        for room in rooms:
            super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        callbacks: dict[str, Any] = self.callbacks  # type: ignore[attr-defined]
        callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):  # type: ignore[attr-defined]
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

    def _mark(self, subscribed: bool) -> None:
        if subscribed:
            self.down.clear()
            self.up.set()
        else:
            self.up.clear()
            self.down.set()

    def users_here(self) -> list[str]:
        """Ids of the users with at least one connection on this node."""
        rooms = self.rooms.get(NAMESPACE, {})
        return [
            room[len(USER_ROOM_PREFIX) :]
            for room, members in rooms.items()
            if isinstance(room, str) and room.startswith(USER_ROOM_PREFIX) and members
        ]

    def has_user(self, user_id: str) -> bool:
        members = self.rooms.get(NAMESPACE, {}).get(USER_ROOM_PREFIX + user_id)
        return bool(members)

    def _take_signal(self, data: Any) -> None:
        # The payload comes from any process that can publish to the channel:
        # check its shape and drop what does not fit.
        payload = data[0] if isinstance(data, list) and len(data) == 1 else data
        if not isinstance(payload, dict):
            logger.info("ignoring a malformed %s signal", EV_SIGNAL)
            return
        user_id = payload.get("user_id")
        notification_id = payload.get("notification_id")
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            user_id = str(user_id)
        if not isinstance(user_id, str) or not user_id:
            logger.info("ignoring a %s signal without a user_id", EV_SIGNAL)
            return
        count, rev = payload.get("count"), payload.get("rev")
        unseen = None
        if _is_count(count) and _is_count(rev):
            unseen = UnseenCount(count=count, rev=rev)
        self.on_signal(
            user_id, notification_id if isinstance(notification_id, str) else None, unseen
        )

    def broker_status(self) -> str:
        return "embedded"

    async def close(self) -> None:
        """Release what the manager holds; idempotent."""


class LocalBroker(_Hooks, socketio.AsyncManager):
    """The in-process manager of embedded mode (a single node)."""

    def __init__(self) -> None:
        super().__init__()
        self._init_hooks(subscribed=True)

    async def emit(self, event: str, data: Any, namespace: str | None = None, **kwargs: Any) -> Any:
        if event == EV_SIGNAL:
            self._take_signal([data])
            return None
        return await super().emit(event, data, namespace, **kwargs)

    async def connect(self, sid: str, namespace: str) -> Any:
        result = await super().connect(sid, namespace)
        self.on_connected(sid)
        return result


class RedisBroker(_Hooks, socketio.AsyncRedisManager):
    """``AsyncRedisManager`` with fast re-subscription, a resync hook and bounded publishes."""

    def __init__(
        self,
        url: str,
        *,
        channel: str = "socketio",
        publish_timeout: float = 2.0,
        on_publish_lost: Callable[[set[str] | None], None] = _noop_lost,
        on_dropped: Callable[[], None] = _noop,
    ) -> None:
        """``on_publish_lost(users)`` runs once Redis takes messages again after some
        could not be published: ``users`` are those whose room a lost message was
        for (None: too many to list, or messages for no user room)."""
        super().__init__(url, channel=channel, json=jsoncodec)
        self._init_hooks(subscribed=False)
        self.publish_timeout = publish_timeout
        self._on_publish_lost = on_publish_lost
        self._on_dropped = on_dropped
        self._lost: set[str] | None = set()
        self._losing = False
        self.subscribed = False
        self._pub_client: Any = None
        self._sub_client: Any = None
        self._sub: Any = None
        self._closed = False
        # (message, the user whose room it is for, or None)
        self._outbox: asyncio.Queue[tuple[str, str | None]] | None = None
        self._sender: asyncio.Task[None] | None = None
        self.dropped = 0

    # -- connections ---------------------------------------------------------

    def _new_client(self) -> Any:
        options: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_keepalive": True}
        if urlparse(self.redis_url).scheme.endswith("+sentinel"):
            sentinels, service, extra = parse_redis_sentinel_url(self.redis_url)
            options.update(extra)
            # Through Any: redis-py's hints for Sentinel differ between releases.
            sentinel_class: Any = aioredis.sentinel.Sentinel
            sentinel = sentinel_class(sentinels, **options)
            return sentinel.master_for(service or self.channel)
        return aioredis.Redis.from_url(self.redis_url, **options)

    @staticmethod
    async def _discard(client: Any) -> None:
        if client is not None:
            try:
                await client.aclose()
            except Exception:  # closing a broken connection may fail too
                logger.debug("error closing a redis connection", exc_info=True)

    async def _publish(self, data: Any) -> Any:
        """Queue a message for the other nodes; never waits for Redis.

        One sender task sends what is queued in one pipelined round trip on one
        connection: concurrent emits used to open a connection each. If Redis
        is down the sender gives up after two tries and logs; the store is the
        truth and the other nodes resync when their subscription comes back.
        """
        if self._closed:
            return None
        if self._outbox is None:
            self._outbox = asyncio.Queue(OUTBOX_LIMIT)
            self._sender = asyncio.create_task(self._send_loop(), name="redis-publisher")
        message = (self.json.dumps(data), _user_of(data))
        try:
            self._outbox.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            self._lose([message])
            if self.dropped % 1000 == 1:
                logger.warning("redis is not keeping up: %d messages dropped", self.dropped)
        return None

    def _lose(self, messages: list[tuple[str, str | None]]) -> None:
        """Remember whose messages were lost: their counts are published again once Redis
        takes messages (the store is the truth; this is how the other nodes hear it)."""
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
        self._on_publish_lost(lost)

    async def _send_loop(self) -> None:
        assert self._outbox is not None
        outbox = self._outbox
        while True:
            if self._losing:
                # Lost messages wait for Redis to answer again, even if nothing new
                # is published meanwhile: probe it now and then.
                try:
                    async with asyncio.timeout(LOST_PROBE_INTERVAL):
                        first = await outbox.get()
                except TimeoutError:
                    await self._send([])
                    continue
            else:
                first = await outbox.get()
            batch = [first]
            while len(batch) < PIPELINE_MAX and not outbox.empty():
                batch.append(outbox.get_nowait())
            try:
                await self._send(batch)
            finally:
                for _ in batch:
                    outbox.task_done()

    async def _send(self, batch: list[tuple[str, str | None]]) -> None:
        """Publish ``batch`` in one round trip (an empty one is a probe); two tries, then
        the batch counts as lost (``_lose``)."""
        for attempt in (1, 2):
            try:
                if self._pub_client is None:
                    self._pub_client = self._new_client()
                async with asyncio.timeout(self.publish_timeout):
                    if batch:
                        pipe = self._pub_client.pipeline(transaction=False)
                        for message, _ in batch:
                            pipe.publish(self.channel, message)
                        await pipe.execute()
                    else:
                        # A publish, not a PING: a stalled Redis (CLIENT PAUSE, a blocked
                        # primary) may answer PING while it still takes no PUBLISH.
                        await self._pub_client.publish(self.channel + PROBE_SUFFIX, "")
                self._recovered()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                client, self._pub_client = self._pub_client, None
                await self._discard(client)
                if attempt == 2:
                    if batch:
                        logger.warning(
                            "cannot publish %d messages to redis (%s); their users' counts "
                            "go out again when it answers",
                            len(batch),
                            type(exc).__name__,
                        )
                    self._lose(batch)

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        delay = RESUBSCRIBE_MIN_DELAY
        first = True
        while not self._closed:
            try:
                self._sub_client = self._new_client()
                self._sub = self._sub_client.pubsub(ignore_subscribe_messages=True)
                await self._sub.subscribe(self.channel)
                self.subscribed = True
                self._mark(True)
                delay = RESUBSCRIBE_MIN_DELAY
                if first:
                    first = False
                else:
                    logger.warning("re-subscribed to redis; resyncing counts")
                    self.on_resubscribed()
                async for message in self._sub.listen():
                    yield message
                raise ConnectionError("redis subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.subscribed or delay == RESUBSCRIBE_MIN_DELAY:
                    logger.warning(
                        "lost redis subscription (%s); retrying in %.1fs",
                        type(exc).__name__,
                        delay,
                    )
                self.subscribed = False
                self._mark(False)
                await self._drop_subscription()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESUBSCRIBE_MAX_DELAY)

    async def _drop_subscription(self) -> None:
        sub, self._sub = self._sub, None
        client, self._sub_client = self._sub_client, None
        if sub is not None:
            try:
                await sub.aclose()
            except Exception:
                logger.debug("error closing a redis subscription", exc_info=True)
        await self._discard(client)

    async def _listen(self) -> AsyncIterator[Any]:
        channel = self.channel.encode("utf-8")
        async for message in self._redis_listen_with_retries():
            if (
                message.get("channel") == channel
                and message.get("type") == "message"
                and "data" in message
            ):
                # Read here, not by python-socketio (which drops what it cannot read
                # without a word): anyone who can publish on the channel is heard.
                try:
                    data = self.json.loads(message["data"])
                except ValueError as exc:  # MalformedJSON: not JSON, or nested too deep
                    self._drop(f"not JSON ({exc})")
                    continue
                if not isinstance(data, dict):
                    self._drop("not a JSON object")
                    continue
                yield data

    def _drop(self, why: str) -> None:
        self._on_dropped()
        _quiet.info("dropped a message from redis: %s", why)

    # -- PNS hooks -------------------------------------------------------------

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        # Called for this node's own emits and for every other node's.
        if message.get("event") == EV_SIGNAL:
            self._take_signal(message.get("data"))
            return
        if message.get("event") == EV_RESYNC:
            # A node lost messages for too many users to list: every node resyncs.
            self.on_resubscribed()
            return
        await super()._handle_emit(message)

    async def connect(self, sid: str, namespace: str) -> Any:
        result = await super().connect(sid, namespace)
        self.on_connected(sid)
        return result

    def broker_status(self) -> str:
        return "up" if self.subscribed else "down"

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._outbox is not None and self._sender is not None:
            # Counts pushed while stopping (acks finished in the grace) still go out.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.publish_timeout):
                    await self._outbox.join()
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        thread = getattr(self, "thread", None)
        if thread is not None:
            thread.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await thread
        await self._drop_subscription()
        client, self._pub_client = self._pub_client, None
        await self._discard(client)
