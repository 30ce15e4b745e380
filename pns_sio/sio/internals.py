"""Every private part of a library that PNS relies on, with the file that uses it.

A minor release may rename or reshape any of these, and an override of a method that
no longer exists silently stops applying. tests/test_library_internals.py checks each
entry against the installed libraries and names the file to revisit when one moved;
pyproject.toml pins those libraries (``~=``) to the versions tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Internal:
    """``owner.name``: a method PNS overrides or calls (``params``: its parameters after
    ``self``, as PNS calls them), an attribute it reads or sets on instances, or a
    default value whose behaviour PNS's code reasons about."""

    owner: str  # "package.module:Class" or "package.module"
    name: str
    kind: Literal["method", "attribute", "default"]
    used_in: str
    why: str
    params: tuple[str, ...] | None = None
    value: object = None


INTERNALS: tuple[Internal, ...] = (
    # -- python-socketio: the server -----------------------------------------------------
    Internal(
        "socketio.async_server:AsyncServer",
        "_handle_eio_connect",
        "method",
        "pns_sio/sio/server.py",
        "an Engine.IO session opened: spend a handshake, start the join timer",
        ("eio_sid", "environ"),
    ),
    Internal(
        "socketio.async_server:AsyncServer",
        "_handle_eio_message",
        "method",
        "pns_sio/sio/server.py",
        "garbage packets are dropped and counted instead of raising in the library",
        ("eio_sid", "data"),
    ),
    Internal(
        "socketio.async_server:AsyncServer",
        "_handle_eio_disconnect",
        "method",
        "pns_sio/sio/server.py",
        "a closed session's waiting long-poll ends at once, not at its timeout",
        ("eio_sid", "reason"),
    ),
    Internal(
        "socketio.async_server:AsyncServer",
        "_binary_packet",
        "attribute",
        "pns_sio/sio/server.py",
        "a refused binary packet's partial state is dropped with it",
    ),
    Internal(
        "socketio.async_server:AsyncServer",
        "manager_initialized",
        "attribute",
        "pns_sio/sio/server.py",
        "the manager (Redis subscription) starts with the node, not at the first client",
    ),
    Internal(
        "socketio.packet:Packet",
        "data_is_binary",
        "method",
        "pns_sio/sio/packets.py",
        "overridden with one walk: every packet's constructor calls it on the whole data",
        ("data",),
    ),
    # -- python-socketio: the managers ---------------------------------------------------
    Internal(
        "socketio.async_manager:AsyncManager",
        "emit",
        "method",
        "pns_sio/sio/emit.py",
        "overridden below the pub/sub manager: events go out without a task per recipient"
        " (the pub/sub manager and its _handle_emit call it by these names)",
        ("event", "data", "namespace", "room", "skip_sid", "callback", "to", "kwargs"),
    ),
    Internal(
        "socketio.base_manager:BaseManager",
        "_generate_ack_id",
        "method",
        "pns_sio/sio/emit.py",
        "an emit with a callback registers it for the recipient, as the library's emit does",
        ("sid", "callback"),
    ),
    Internal(
        "socketio.async_server:AsyncServer",
        "packet_class",
        "attribute",
        "pns_sio/sio/emit.py",
        "an emit encodes its event with the server's packet class, as the library's does",
    ),
    Internal(
        "socketio.async_manager:AsyncManager",
        "callbacks",
        "attribute",
        "pns_sio/sio/server.py, pns_sio/sio/rooms.py",
        "an unanswered ack callback is dropped when its fetch ends",
    ),
    Internal(
        "socketio.async_manager:AsyncManager",
        "pending_connect",
        "attribute",
        "pns_sio/sio/rooms.py",
        "basic_disconnect without the scan of every room",
    ),
    Internal(
        "socketio.async_manager:AsyncManager",
        "pending_disconnect",
        "attribute",
        "pns_sio/sio/rooms.py",
        "basic_disconnect without the scan of every room",
    ),
    Internal(
        "socketio.async_pubsub_manager:AsyncPubSubManager",
        "_publish",
        "method",
        "pns_sio/sio/managers.py, pns_sio/sio/publish.py",
        "the transport's extension point: queued, pipelined, bounded publishes",
        ("data",),
    ),
    Internal(
        "socketio.async_pubsub_manager:AsyncPubSubManager",
        "_listen",
        "method",
        "pns_sio/sio/managers.py",
        "the transport's extension point: PNS reads and checks each message",
        (),
    ),
    Internal(
        "socketio.async_pubsub_manager:AsyncPubSubManager",
        "_handle_emit",
        "method",
        "pns_sio/sio/managers.py",
        "signals and resync requests are taken out of the emit path",
        ("message",),
    ),
    Internal(
        "socketio.async_pubsub_manager:AsyncPubSubManager",
        "host_id",
        "attribute",
        "pns_sio/sio/managers.py",
        "the node's own messages, echoed by Redis, are dropped before they are read (the"
        " ending they have, host_id last, is checked by tests/test_multinode.py)",
    ),
    Internal(
        "socketio.async_pubsub_manager:AsyncPubSubManager",
        "thread",
        "attribute",
        "pns_sio/sio/managers.py",
        "the listener task the manager started is cancelled at close",
    ),
    Internal(
        "socketio.async_redis_manager:AsyncRedisManager",
        "_redis_listen_with_retries",
        "method",
        "pns_sio/sio/managers.py",
        "re-subscribe within seconds and resync, not after a back-off to 60 s",
        (),
    ),
    Internal(
        "socketio.async_redis_manager:AsyncRedisManager",
        "_redis_connect",
        "method",
        "pns_sio/sio/publish.py",
        "the write-only manager reconnects before a publish retry",
        (),
    ),
    Internal(
        "socketio.async_redis_manager:AsyncRedisManager",
        "redis",
        "attribute",
        "pns_sio/sio/publish.py",
        "the publisher's connection, closed by Publisher.close",
    ),
    Internal(
        "socketio.async_redis_manager:AsyncRedisManager",
        "connected",
        "attribute",
        "pns_sio/sio/publish.py",
        "a failed publish marks the connection for reconnecting",
    ),
    Internal(
        "socketio.async_redis_manager:AsyncRedisManager",
        "redis_url",
        "attribute",
        "pns_sio/sio/managers.py",
        "RedisBroker makes its own connections (Sentinel included) from it",
    ),
    Internal(
        "socketio.redis_manager",
        "parse_redis_sentinel_url",
        "method",
        "pns_sio/sio/managers.py",
        "redis+sentinel:// URLs mean what they mean to python-socketio",
        ("url",),
    ),
    # -- python-engineio -----------------------------------------------------------------
    Internal(
        "engineio.async_server:AsyncServer",
        "_async",
        "attribute",
        "pns_sio/sio/websocket.py",
        "the driver table: PNSWebSocket replaces the aiohttp WebSocket wrapper",
    ),
    Internal(
        "engineio.async_drivers.aiohttp:WebSocket",
        "__init__",
        "method",
        "pns_sio/sio/websocket.py",
        "PNSWebSocket stands in for this class: same constructor",
        ("handler", "server"),
    ),
    Internal(
        "engineio.async_drivers.aiohttp:WebSocket",
        "wait",
        "method",
        "pns_sio/sio/websocket.py",
        "PNSWebSocket stands in for this class: same reading method",
        (),
    ),
    Internal(
        "engineio.async_socket:AsyncSocket",
        "_websocket_handler",
        "method",
        "pns_sio/sio/websocket.py",
        "the handler the driver gets is bound to the socket: PNSWebSocket finds it there",
        ("ws",),
    ),
    Internal(
        "engineio.async_socket:AsyncSocket",
        "queue",
        "attribute",
        "pns_sio/sio/websocket.py",
        "EngineIOLoop drains it once, then swaps in a shared empty stand-in",
    ),
    Internal(
        "engineio.async_socket:AsyncSocket",
        "upgraded",
        "attribute",
        "pns_sio/sio/websocket.py",
        "EngineIOLoop marks a direct WebSocket connection as the library does",
    ),
    Internal(
        "engineio.async_socket:AsyncSocket",
        "last_ping",
        "attribute",
        "pns_sio/sio/websocket.py",
        "EngineIOLoop keeps the ping bookkeeping the library's check_ping_timeout reads",
    ),
    Internal(
        "engineio.async_socket:AsyncSocket",
        "schedule_ping",
        "method",
        "pns_sio/sio/websocket.py",
        "replaced per socket: pings from a timer instead of a sleeping task",
        (),
    ),
    Internal(
        "engineio.async_socket:AsyncSocket",
        "send",
        "method",
        "pns_sio/sio/websocket.py",
        "replaced per socket: packets written straight to the WebSocket",
        ("pkt",),
    ),
    Internal(
        "engineio.async_socket:AsyncSocket",
        "check_ping_timeout",
        "method",
        "pns_sio/sio/websocket.py",
        "the replacement send keeps the library's ping-timeout rule",
        (),
    ),
    Internal(
        "engineio.async_socket:AsyncSocket",
        "close",
        "method",
        "pns_sio/sio/websocket.py",
        "EngineIOLoop and the slow-client watchdog close sockets as the library does",
        ("wait", "abort", "reason"),
    ),
    # -- aiohttp -------------------------------------------------------------------------
    Internal(
        "aiohttp.http_writer:StreamWriter",
        "write",
        "default",
        "pns_sio/sio/websocket.py",
        "takes_at_once: a write waits for the drain only past this many bytes written "
        "while the transport is paused",
        ("LIMIT",),
        0x10000,
    ),
)
