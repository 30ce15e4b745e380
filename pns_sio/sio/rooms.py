"""An index of each client's rooms, kept beside python-socketio's own room table.

python-socketio finds a leaving client's rooms by scanning every room of the
namespace: one per connection and one per user here, so a mass disconnect (a
node's clients dropping together) costs O(n^2) and froze a node with 19,000
clients for minutes. With the index every disconnect costs O(its own rooms).

A mixin for a python-socketio manager; ``basic_disconnect`` is that manager's own,
with the index instead of the scan, so it touches the manager's internals
(``callbacks``, ``pending_connect``, ``pending_disconnect``; see ``internals.py``).

It also tells its manager when a user's first connection joins the user's room and
when the last one leaves it (``_user_arrived``, ``_user_gone``): routed mode
subscribes to the user's channel for that span.
"""

from __future__ import annotations

from typing import Any

from ..wire import NAMESPACE, USER_ROOM_PREFIX, room_user


class RoomIndex:
    """Mixed into a manager before python-socketio's manager class."""

    rooms: dict[str, Any]  # python-socketio's: namespace -> room -> members

    def _init_index(self) -> None:
        self._sid_rooms: dict[tuple[str, str], set[Any]] = {}

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        first = room not in self.rooms.get(namespace, {})
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self._sid_rooms.setdefault((namespace, sid), set()).add(room)
        user = room_user(room) if first and namespace == NAMESPACE else None
        if user is not None:
            self._user_arrived(user)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        self._leave(sid, namespace, room)
        rooms = self._sid_rooms.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)

    def _leave(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        user = room_user(room) if namespace == NAMESPACE else None
        if user is not None and room not in self.rooms.get(namespace, {}):
            self._user_gone(user)

    def _user_arrived(self, user_id: str) -> None:
        """The first connection of ``user_id`` on this node joined its room."""

    def _user_gone(self, user_id: str) -> None:
        """The last connection of ``user_id`` on this node left its room."""

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        rooms = self._sid_rooms.pop((namespace, sid), set())
        if namespace not in self.rooms:
            return
        for room in rooms:
            self._leave(sid, namespace, room)
        callbacks: dict[str, Any] = self.callbacks  # type: ignore[attr-defined]
        callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):  # type: ignore[attr-defined]
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

    def users_here(self) -> list[str]:
        """Ids of the users with at least one connection on this node."""
        rooms = self.rooms.get(NAMESPACE, {})
        return [
            room[len(USER_ROOM_PREFIX) :]
            for room, members in rooms.items()
            if room_user(room) is not None and members
        ]

    def has_user(self, user_id: str) -> bool:
        members = self.rooms.get(NAMESPACE, {}).get(USER_ROOM_PREFIX + user_id)
        return bool(members)
