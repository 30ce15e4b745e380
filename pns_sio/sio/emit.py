"""Emitting to this node's connections without a task per recipient.

python-socketio's ``AsyncManager.emit`` encodes an event once, then starts a task
per recipient and waits for them all. Every count a node sends (one per notification
and per acknowledged batch, to each device of the user here) paid for those tasks and
the wait: 15-20 µs for a user with two devices, against 0.4 µs to run the same sends
in turn (bench/RESULTS.md, session 13). The sends seldom wait: PNS's WebSocket loop
writes a frame at once or queues it for the connection's own flusher
(``websocket.py``), and a long-polling connection's queue has no bound.

``DirectEmit.emit`` runs each recipient's send at once; a send that does wait (a
socket being closed for its silence) goes on in a task of its own, so no recipient
holds up the others, and the emit returns once every send is done, as the library's
does. An emit that asks for an acknowledgement (every batch a fetch delivers) goes the
same way; each recipient's packet carries an ack id of its own, as in the library.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from ..tasks import start_now

logger = logging.getLogger(__name__)


class DirectEmit(socketio.AsyncManager):
    """Mixed in just before python-socketio's ``AsyncManager`` (``managers.py``)."""

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        *,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if namespace not in self.rooms:
            return
        # As the library: a tuple is several arguments, anything else one.
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        skipped = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        # Without a callback every recipient gets the same packet: encoded once.
        shared = None if callback is not None else self._packets(namespace, [event, *args])
        sent = False
        waiting: list[asyncio.Task[Any]] = []
        # get_participants walks a copy of the room, which a send may change meanwhile.
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skipped:
                continue
            sent = True
            # With one, each recipient's packet carries an ack id of its own.
            packets = shared or self._packets(
                namespace, [event, *args], self._generate_ack_id(sid, callback)
            )
            rest = start_now(self._send(eio_sid, packets))
            if rest is not None:
                waiting.append(rest)
        if waiting:
            await asyncio.wait(waiting)
        elif sent:
            # The library's emit always gave the loop a turn while its tasks ran; a loop
            # of emits still does, so the connections' flushers run between them.
            await asyncio.sleep(0)

    def _packets(
        self, namespace: str | None, data: list[Any], ack: int | None = None
    ) -> list[eio_packet.Packet]:
        """The Engine.IO packets of one Socket.IO event (several when it has binary parts)."""
        encoded = self.server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=data, id=ack
        ).encode()
        return [
            eio_packet.Packet(eio_packet.MESSAGE, p)
            for p in (encoded if isinstance(encoded, list) else [encoded])
        ]

    async def _send(self, eio_sid: str, packets: list[eio_packet.Packet]) -> None:
        try:
            for pkt in packets:
                await self.server.eio.send_packet(eio_sid, pkt)
        except Exception:  # this connection closed meanwhile; the others still get theirs
            logger.debug("could not send to a closing connection", exc_info=True)
