"""What a client's Socket.IO packets may carry, checked as python-socketio decodes them.

``ClientPacket`` is the server's packet class (python-socketio's ``serializer``
extension point: a ``Packet`` subclass with its own ``decode``). Every packet a
client sends passes through its ``decode``, before python-socketio dispatches it:

- an EVENT whose name Socket.IO reserves (``connect``, ``disconnect``, ...), or one
  PNS uses itself, reaches the catch-all handler under a ``ClientEventName``, never
  the handler registered under that name: python-socketio looks a client's event up
  among all handlers, the server's own lifecycle included;
- an EVENT or ACK that is not JSON, nests past ``jsoncodec.MAX_DEPTH`` levels, or has
  the wrong shape becomes one the handlers answer ``invalid_request``;
- a packet that announces more binary attachments than ``MAX_ATTACHMENTS`` raises
  ``PacketRefused``: PNS's protocol takes no binary data, and python-socketio would
  buffer every announced attachment until the last arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from socketio import packet as sio_packet

from ..jsoncodec import MalformedJSON
from ..wire import EV_BATCH, EV_COUNT, EV_DISCONNECT, EV_RESYNC, EV_SIGNAL

# Socket.IO's own event names, the catch-all's key, and the names PNS emits itself.
RESERVED_EVENTS = frozenset(
    {
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
        "message",
        "*",
        EV_COUNT,
        EV_BATCH,
        EV_DISCONNECT,
        EV_SIGNAL,
        EV_RESYNC,
    }
)
MAX_ATTACHMENTS = 4

_EVENTS = (sio_packet.EVENT, sio_packet.BINARY_EVENT)
_ACKS = (sio_packet.ACK, sio_packet.BINARY_ACK)


class PacketRefused(ValueError):
    """A packet no client of PNS's protocol sends: the connection is closed."""


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: the name may be a list
class ClientEventName:
    """The name of a client's event that must not be dispatched by name: reserved,
    not a string, or no name at all (``problem`` then says what was wrong)."""

    name: Any
    problem: str | None = None

    def __str__(self) -> str:
        return self.problem or str(self.name)


@dataclass(frozen=True, slots=True)
class MalformedAck:
    """Stands for an acknowledgement whose arguments could not be read."""

    problem: str


class ClientPacket(sio_packet.Packet):
    """python-socketio's packet, with a ``decode`` that keeps to PNS's protocol."""

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        """python-socketio's check, run on every packet built (a batch's notifications
        included), as one walk: the library's builds a list per container and folds it
        with ``functools.reduce``, a twentieth of a fetch's CPU in the profile."""
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, bytes | bytearray):
                return True
        return False

    def decode(self, encoded_packet: Any) -> int:
        try:
            attachments = int(super().decode(encoded_packet) or 0)
        except MalformedJSON as exc:
            # The header (type, namespace, ack id) was read; only the data was bad.
            self.data = _malformed(self.packet_type, f"malformed payload: {exc}")
            return 0
        if attachments > MAX_ATTACHMENTS:
            raise PacketRefused(f"a packet announced {attachments} binary attachments")
        if self.packet_type in _EVENTS:
            self.data = _checked_event(self.data)
        elif self.packet_type in _ACKS and not isinstance(self.data, list):
            self.data = [MalformedAck("acknowledgement arguments are not a list")]
        return attachments


def _malformed(packet_type: Any, problem: str) -> Any:
    if packet_type in _EVENTS:
        return [ClientEventName(None, problem)]
    if packet_type in _ACKS:
        return [MalformedAck(problem)]
    return None  # a CONNECT without readable auth: no credentials


def _checked_event(data: Any) -> list[Any]:
    if not isinstance(data, list) or not data:
        return [ClientEventName(None, "malformed event: expected [name, ...arguments]")]
    name = data[0]
    if not isinstance(name, str):
        return [ClientEventName(name, "malformed event: the name is not a string"), *data[1:]]
    if name in RESERVED_EVENTS:
        return [ClientEventName(name), *data[1:]]
    return data
