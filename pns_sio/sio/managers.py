"""Client managers: how a node hears of new notifications and reaches other nodes.

- ``LocalBroker`` (embedded mode): python-socketio's in-process manager.
- ``RedisBroker`` (many nodes): python-socketio's ``AsyncRedisManager``, so
  applications that emit through their own write-only manager reach PNS's devices.

Both send to this node's connections through ``DirectEmit`` (``emit.py``): no task
per recipient.

Both take the event ``pns:notification`` (the application's signal) out of the
emit path: it never reaches a client; it goes to the server's ``on_signal`` hook,
which only schedules work, because the pub/sub listener handles messages one at a
time and store work inside it would stall all cross-node traffic.

``RedisBroker`` is built on ``AsyncPubSubManager``'s extension points where they
reach: ``_publish`` (into the node's ``Outbox``: one queue and one pipelined
connection for every publish, bounded in time, lost messages remembered so their
users' counts go out again)
and ``_listen`` (PNS reads each message itself: what is not JSON or nests too deep
is dropped and counted, not silently lost in the library). Three parts cannot be
done through them, and override ``AsyncRedisManager``/``AsyncPubSubManager``
internals instead (listed in ``internals.py``, checked by
tests/test_library_internals.py):

- ``_redis_listen_with_retries``: the library re-subscribes after a back-off
  growing to 60 s and says nothing when it is back; PNS re-subscribes within
  seconds and then resyncs its users' counts (pub/sub keeps nothing published
  while a subscriber was away);
- ``_handle_emit``: the only place a message from another node can be taken out
  of the emit path (signals, resync requests);
- ``thread``: the listener task the library starts, cancelled at ``close``.
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

from .. import jsoncodec
from ..quiet_log import QuietLog
from ..settings import redact_url
from ..store import UnseenCount
from ..wire import EV_RESYNC, EV_SIGNAL, room_user
from .emit import DirectEmit
from .outbox import Message, Outbox
from .rooms import RoomIndex
from .server import NodeHooks

logger = logging.getLogger(__name__)
_quiet = QuietLog(logger)

RESUBSCRIBE_MIN_DELAY = 0.2
RESUBSCRIBE_MAX_DELAY = 2.0
PROBE_SUFFIX = ":pns-probe"  # the probe publishes to a channel nobody listens to
COMPLAINT_MIN_GAP = 5.0  # seconds between warnings while Redis does not answer, doubling
COMPLAINT_MAX_GAP = 300.0


def _noop() -> None:
    """Default report hook."""


def _ignore_state(subscribed: bool) -> None:
    """Default state hook."""


def _user_of(data: Any) -> str | None:
    """The user whose room a manager message is for, if it is one user's room."""
    return room_user(data.get("room")) if isinstance(data, dict) else None


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _Broker(RoomIndex):
    """What both managers share: the room index, the hooks, the subscription state."""

    server: Any  # python-socketio's: the Server whose manager this is (set_server)
    # Set while subscribed / while not; tests and readiness wait on them.
    up: asyncio.Event
    down: asyncio.Event

    def _init_state(self, subscribed: bool, on_state: Callable[[bool], None]) -> None:
        self._on_state = on_state
        on_state(subscribed)
        self.up = asyncio.Event()
        self.down = asyncio.Event()
        (self.up if subscribed else self.down).set()
        self._init_index()

    @property
    def hooks(self) -> NodeHooks:
        hooks: NodeHooks = self.server.hooks
        return hooks

    def _mark(self, subscribed: bool) -> None:
        self._on_state(subscribed)
        if subscribed:
            self.down.clear()
            self.up.set()
        else:
            self.up.clear()
            self.down.set()

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
        self.hooks.on_signal(
            user_id, notification_id if isinstance(notification_id, str) else None, unseen
        )

    def broker_status(self) -> str:
        return "embedded"

    def expect_user(self, user_id: str) -> asyncio.Future[None] | None:
        """A device of ``user_id`` is about to join: a future done once this node hears
        the messages for the user's room (routed mode subscribes to them), or None if
        there is nothing to wait for."""
        return None

    async def close(self) -> None:
        """Release what the manager holds; idempotent."""


class LocalBroker(_Broker, DirectEmit):
    """The in-process manager of embedded mode (a single node)."""

    def __init__(self, *, on_state: Callable[[bool], None] = _ignore_state) -> None:
        super().__init__()
        self._init_state(True, on_state)

    async def emit(self, event: str, data: Any, namespace: str | None = None, **kwargs: Any) -> Any:
        if event == EV_SIGNAL:
            self._take_signal([data])
            return None
        return await super().emit(event, data, namespace, **kwargs)

    async def connect(self, sid: str, namespace: str) -> Any:
        result = await super().connect(sid, namespace)
        self.hooks.on_connected(sid)
        return result


class RedisBroker(_Broker, socketio.AsyncRedisManager, DirectEmit):
    """``AsyncRedisManager`` with fast re-subscription, a resync hook and bounded publishes."""

    def __init__(
        self,
        url: str,
        *,
        channel: str = "socketio",
        publish_timeout: float = 2.0,
        on_dropped: Callable[[], None] = _noop,
        on_state: Callable[[bool], None] = _ignore_state,
        on_received: Callable[[], None] = _noop,
    ) -> None:
        """``on_dropped`` counts messages from Redis that could not be read, ``on_received``
        every message read; ``on_state`` hears whether the node is subscribed, at each
        change."""
        super().__init__(url, channel=channel, json=jsoncodec)
        self._init_state(False, on_state)
        self.publish_timeout = publish_timeout
        self._on_dropped = on_dropped
        self._on_received = on_received
        self.channel: str = channel
        self._channel_bytes = channel.encode("utf-8")
        self.subscribed = False
        self._pub_client: Any = None
        self._sub_client: Any = None
        self._sub: Any = None
        self._closed = False
        self._outbox = Outbox(self._publish_batch, self._publish_lost)
        # How this node's own messages end, as jsoncodec writes python-socketio's (host_id
        # is their last key): see _listen.
        self._own_ending = f'"host_id":"{self.host_id}"}}'.encode()

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
        """Queue a message for the other nodes; never waits for Redis (``outbox.py``)."""
        if not self._closed:
            self._outbox.put((self.json.dumps(data), _user_of(data)))
        return None

    def _publish_lost(self, lost: set[str] | None) -> None:
        # Through a method: the hooks are the server's, set after construction.
        self.hooks.on_publish_lost(lost)

    async def _publish_batch(self, batch: list[Message]) -> None:
        """One round trip on the publishing connection (an empty batch is a probe),
        bounded in time; raises, with the connection discarded, when Redis did not
        take it."""
        try:
            if self._pub_client is None:
                self._pub_client = self._new_client()
            async with asyncio.timeout(self.publish_timeout):
                if batch:
                    pipe = self._pub_client.pipeline(transaction=False)
                    for message, user in batch:
                        self._queue_publish(pipe, user, message)
                    await pipe.execute()
                else:
                    # A publish, not a PING: a stalled Redis (CLIENT PAUSE, a blocked
                    # primary) may answer PING while it still takes no PUBLISH.
                    await self._pub_client.publish(self.channel + PROBE_SUFFIX, "")
        except Exception:
            client, self._pub_client = self._pub_client, None
            await self._discard(client)
            raise

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        delay = RESUBSCRIBE_MIN_DELAY
        first = True
        # While Redis does not answer, say so at once and then at growing intervals.
        complain_at, complaint_gap = 0.0, COMPLAINT_MIN_GAP
        loop = asyncio.get_running_loop()
        while not self._closed:
            try:
                self._sub_client = self._new_client()
                self._sub = self._open_subscription(self._sub_client)
                await self._subscribe_all(self._sub)
                self.subscribed = True
                self._mark(True)
                delay = RESUBSCRIBE_MIN_DELAY
                complain_at, complaint_gap = 0.0, COMPLAINT_MIN_GAP
                if first:
                    first = False
                    logger.info("subscribed to redis at %s", redact_url(self.redis_url))
                else:
                    logger.warning(
                        "re-subscribed to redis at %s; resyncing counts",
                        redact_url(self.redis_url),
                    )
                    self.hooks.on_resync()
                async for message in self._sub.listen():
                    yield message
                raise ConnectionError("redis subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.subscribed or loop.time() >= complain_at:
                    logger.warning(
                        "%s redis at %s (%s: %s): other nodes' messages are not heard; "
                        "retrying every %.1fs at most",
                        "lost the subscription to" if self.subscribed else "cannot subscribe to",
                        redact_url(self.redis_url),
                        type(exc).__name__,
                        str(exc)[:200],
                        RESUBSCRIBE_MAX_DELAY,
                    )
                    complain_at = loop.time() + complaint_gap
                    complaint_gap = min(complaint_gap * 2, COMPLAINT_MAX_GAP)
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

    # -- what routed mode (routed.py) changes ------------------------------------

    def _channel_for(self, user: str | None) -> str:
        """The channel a message for ``user``'s room (None: any other) is published on."""
        return self.channel

    def _queue_publish(self, pipe: Any, user: str | None, message: str) -> None:
        pipe.publish(self._channel_for(user), message)

    def _open_subscription(self, client: Any) -> Any:
        return client.pubsub(ignore_subscribe_messages=not self._hears_confirmations)

    async def _subscribe_all(self, sub: Any) -> None:
        """Subscribe a new pub/sub connection to everything this node listens to."""
        await sub.subscribe(self.channel)

    _hears_confirmations = False  # whether _confirmed sees (un)subscribe confirmations

    def _hears(self, channel: bytes) -> bool:
        return bool(channel == self._channel_bytes)

    def _confirmed(self, message: dict[str, Any]) -> None:
        """A message from Redis that is not a published one (a confirmation)."""

    async def _listen(self) -> AsyncIterator[Any]:
        async for message in self._redis_listen_with_retries():
            if message.get("type") not in ("message", "smessage"):
                self._confirmed(message)
            elif self._hears(message.get("channel")) and "data" in message:
                self._on_received()
                if self.is_own(message["data"]):
                    # Redis echoes every publish to its publisher, and python-socketio
                    # drops this node's own messages once read (their host_id): one
                    # message in two on a node that holds the users it writes for.
                    # Dropped here, before they are read.
                    continue
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

    def is_own(self, raw: Any) -> bool:
        """Whether a message from Redis is one this node published (its host_id last, as
        python-socketio's messages have it). Anything else, including this node's
        messages written another way, goes on to be read and checked."""
        return isinstance(raw, bytes) and raw.endswith(self._own_ending)

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
            self.hooks.on_resync()
            return
        await super()._handle_emit(message)

    async def connect(self, sid: str, namespace: str) -> Any:
        result = await super().connect(sid, namespace)
        self.hooks.on_connected(sid)
        return result

    def broker_status(self) -> str:
        return "up" if self.subscribed else "down"

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Counts pushed while stopping (acks finished in the grace) still go out.
        await self._outbox.close(self.publish_timeout)
        thread = getattr(self, "thread", None)
        if thread is not None:
            thread.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await thread
        await self._drop_subscription()
        client, self._pub_client = self._pub_client, None
        await self._discard(client)
