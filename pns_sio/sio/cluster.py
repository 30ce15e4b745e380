"""Routed mode on a Redis Cluster: sharded pub/sub, so the broker's work spreads over
the cluster's shards (``PNS_REDIS_URL=redis+cluster://[:password@]host:port,host:port``).

A user's channel is a shard channel: published with SPUBLISH, and subscribed to with
SSUBSCRIBE on the primary that owns its slot, so each message is handled by one
shard only. The classic channel stays a plain channel (PUBLISH reaches every node of a
cluster), so an application's own python-socketio write-only manager is still heard.

``ShardedSubscription`` holds one pub/sub connection per primary, each read by a task
of its own; its ``listen()`` yields what they all read. A shard that fails or moves
a channel away (a failover, a resharding) ends ``listen()`` with an error: the
broker then subscribes everything again on the cluster's current topology and resends
every count, as after any lost subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

from redis import asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from .routed import RoutedRedisBroker

logger = logging.getLogger(__name__)

CLUSTER_SCHEME = "redis+cluster://"
CONNECT_TIMEOUT = 2.0


def cluster_options(url: str) -> dict[str, Any]:
    """``RedisCluster`` keyword arguments from a ``redis+cluster://`` URL (seed nodes,
    comma-separated; the credentials of the first apply to all)."""
    if not url.startswith(CLUSTER_SCHEME):
        raise ValueError(f"expected {CLUSTER_SCHEME}host:port[,host:port...]")
    rest = url[len(CLUSTER_SCHEME) :].split("/", 1)[0]
    credentials, _, hosts = rest.rpartition("@")
    nodes = []
    for part in hosts.split(","):
        parts = urlsplit("//" + part.strip())
        if not parts.hostname:
            raise ValueError(f"no host in {part!r}")
        nodes.append(ClusterNode(parts.hostname, parts.port or 6379))
    options: dict[str, Any] = {
        "startup_nodes": nodes,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_keepalive": True,
    }
    if credentials:
        user, _, password = credentials.partition(":")
        if user:
            options["username"] = unquote(user)
        if password:
            options["password"] = unquote(password)
    return options


class ShardedSubscription:
    """Plain SUBSCRIBE for the classic channel, SSUBSCRIBE for the others, each on the
    primary owning its slot; the same calls as redis-py's ``PubSub`` where the broker
    uses them (``subscribe``, ``unsubscribe``, ``listen``, ``aclose``)."""

    def __init__(self, cluster: RedisCluster, classic: str, credentials: dict[str, Any]) -> None:
        self._cluster = cluster
        self._classic = classic
        self._credentials = credentials
        self._pubsubs: dict[str, Any] = {}  # node name -> its pub/sub connection
        self._reader_of: dict[str, asyncio.Task[None]] = {}  # node name -> its reader
        self._owner: dict[str, Any] = {}  # channel -> the pub/sub it is subscribed on
        self._leaving: set[bytes] = set()  # channels unsubscribed on purpose
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()

    async def _pubsub_of(self, node: ClusterNode) -> Any:
        pubsub = self._pubsubs.get(node.name)
        if pubsub is None:
            client = aioredis.Redis(
                host=node.host,
                port=int(node.port),
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_keepalive=True,
                **self._credentials,
            )
            pubsub = self._pubsubs[node.name] = client.pubsub()
        return pubsub

    def _reading(self, node: ClusterNode, pubsub: Any) -> None:
        """Read ``pubsub`` from its first subscription on (before it, redis-py's
        ``listen()`` has nothing to wait for and returns)."""
        if node.name not in self._reader_of:
            self._reader_of[node.name] = asyncio.create_task(
                self._read(node.name, pubsub), name=f"redis-shard:{node.name}"
            )

    async def subscribe(self, *channels: str) -> None:
        await self._cluster.initialize()
        by_slot: dict[int, list[str]] = {}
        for channel in channels:
            if channel == self._classic:
                node = self._primary_of(channel)
                pubsub = await self._pubsub_of(node)
                await pubsub.subscribe(channel)
                self._reading(node, pubsub)
                self._owner[channel] = pubsub
                continue
            by_slot.setdefault(self._cluster.keyslot(channel), []).append(channel)
        for group in by_slot.values():
            node = self._primary_of(group[0])
            pubsub = await self._pubsub_of(node)
            # One SSUBSCRIBE per slot: a command's channels must share a slot.
            await pubsub.ssubscribe(*group)
            self._reading(node, pubsub)
            for channel in group:
                self._owner[channel] = pubsub
                self._leaving.discard(channel.encode("utf-8"))

    def _primary_of(self, channel: str) -> ClusterNode:
        node = self._cluster.get_node_from_key(channel)
        if node is None:
            raise ConnectionError(f"no redis cluster node serves the slot of {channel!r}")
        return node

    async def unsubscribe(self, *channels: str) -> None:
        # One SUNSUBSCRIBE per channel: a command's channels must share a slot.
        for channel in channels:
            pubsub = self._owner.pop(channel, None)
            if pubsub is not None:
                self._leaving.add(channel.encode("utf-8"))
                await pubsub.sunsubscribe(channel)

    async def _read(self, name: str, pubsub: Any) -> None:
        try:
            async for message in pubsub.listen():
                if message.get("type") == "sunsubscribe":
                    channel = message.get("channel")
                    if channel in self._leaving:
                        self._leaving.discard(channel)
                        continue
                    # Redis took the channel away: its slot moved (a failover, a
                    # resharding). Subscribe everything again where it now lives.
                    raise ConnectionError(f"redis shard {name} dropped {channel!r}")
                self._inbox.put_nowait(message)
            raise ConnectionError(f"redis shard {name}: subscription ended")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._inbox.put_nowait(exc)

    async def listen(self) -> AsyncIterator[Any]:
        while True:
            item = await self._inbox.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    async def aclose(self) -> None:
        readers, self._reader_of = list(self._reader_of.values()), {}
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        pubsubs, self._pubsubs = list(self._pubsubs.values()), {}
        for pubsub in pubsubs:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await pubsub.connection_pool.disconnect()


class ClusterRoutedBroker(RoutedRedisBroker):
    """``RoutedRedisBroker`` on a Redis Cluster: SPUBLISH and SSUBSCRIBE for user
    channels, spread over the shards."""

    @functools.cached_property
    def _options(self) -> dict[str, Any]:
        return cluster_options(self.redis_url)

    def _new_client(self) -> Any:
        return RedisCluster(**self._options)

    def _queue_publish(self, pipe: Any, user: str | None, message: str) -> None:
        if user is None:
            pipe.publish(self.channel, message)
        else:
            pipe.spublish(self._channel_for(user), message)

    def _open_subscription(self, client: Any) -> Any:
        credentials: dict[str, Any] = {
            k: self._options[k] for k in ("username", "password") if k in self._options
        }
        return ShardedSubscription(client, self.channel, credentials)
