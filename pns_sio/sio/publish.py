"""The write-only Redis manager the application-side publishers emit through.

python-socketio's ``AsyncRedisManager(write_only=True)``, so what it publishes is what
an application's own write-only manager publishes (docs/protocol.md), except that a
publish that fails every try raises ``NotAnnounced`` instead of logging and
returning as if it had gone out.

``_publish`` is ``AsyncPubSubManager``'s extension point for the transport. The
connection handling it relies on (``connected``, ``redis``, ``_redis_connect``) is
``AsyncRedisManager``'s own and not public: listed in ``internals.py``. On a Redis
Cluster (``redis+cluster://``) ``_redis_connect`` makes a cluster client, and a user's
channel is published with SPUBLISH (sio/cluster.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import socketio
from redis.asyncio.cluster import RedisCluster

from ..errors import NotAnnounced
from ..wire import room_user, user_channel
from .cluster import CLUSTER_SCHEME, cluster_options

PUBLISH_TRIES = 3
PUBLISH_RETRY_DELAY = 0.2  # seconds, doubled after each failed try


class SignalManager(socketio.AsyncRedisManager):
    """Publishes the signals of one application process; raises when Redis does not take one."""

    connected: bool  # AsyncRedisManager's
    redis: Any  # AsyncRedisManager's: the connection, made by _redis_connect

    def __init__(self, redis_url: str, *, channel: str, routed: bool = False) -> None:
        """``routed``: a message for a user's room goes on that user's channel
        (``PNS_ROUTING=routed``, sio/routed.py)."""
        super().__init__(
            redis_url,
            channel=channel,
            write_only=True,
            redis_options={"socket_connect_timeout": 2.0, "socket_timeout": 2.0},
        )
        self.routed = routed
        self.cluster = redis_url.startswith(CLUSTER_SCHEME)

    def _redis_connect(self) -> None:
        if not self.cluster:
            super()._redis_connect()
            return
        # A Redis Cluster: python-socketio's own manager does not know it.
        self.redis = RedisCluster(**cluster_options(self.redis_url), socket_timeout=2.0)
        self.connected = True

    def _channel_for(self, data: Any) -> str:
        user = room_user(data.get("room")) if self.routed and isinstance(data, dict) else None
        return str(self.channel) if user is None else user_channel(self.channel, user)

    async def _publish(self, data: Any) -> Any:
        message = self.json.dumps(data)
        channel = self._channel_for(data)
        delay = PUBLISH_RETRY_DELAY
        for attempt in range(1, PUBLISH_TRIES + 1):
            try:
                if not self.connected:
                    self._redis_connect()
                if self.cluster and channel != self.channel:
                    return await self.redis.spublish(channel, message)
                return await self.redis.publish(channel, message)
            except Exception as exc:  # redis-py's errors, and timeouts
                self.connected = False
                if attempt == PUBLISH_TRIES:
                    raise NotAnnounced([], f"redis: {type(exc).__name__}") from exc
                await asyncio.sleep(delay)
                delay *= 2
        return None

    async def aclose(self) -> None:
        """Close the Redis connection, if one was made; the next publish opens another."""
        redis = getattr(self, "redis", None)
        if redis is not None:
            self.redis = None
            self.connected = False
            await redis.aclose()
