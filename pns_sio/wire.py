"""Wire names of docs/protocol.md, in one place."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

NAMESPACE = "/"
USER_ROOM_PREFIX = "user:"

# server -> client
EV_COUNT = "new-notifications-count"
EV_BATCH = "new-notifications"
EV_DISCONNECT = "pns:disconnect"

# client -> server
EV_FETCH = "get-new-notifications"

# application -> nodes, through the manager; never forwarded to clients
EV_SIGNAL = "pns:notification"
# node -> nodes: messages were lost for too many users to list; resync every count
EV_RESYNC = "pns:resync"


class Emit(Protocol):
    """A python-socketio manager's ``emit`` (a node's own, or an application's
    write-only one): the one way PNS sends an event to a room."""

    def __call__(
        self,
        event: str,
        data: Any,
        namespace: str,
        *,
        room: str | None = None,
        ignore_queue: bool = False,
    ) -> Awaitable[Any]: ...


FETCH_LIMIT_DEFAULT = 50
FETCH_LIMIT_MAX = 100


def user_room(user_id: str) -> str:
    return USER_ROOM_PREFIX + user_id


def room_user(room: Any) -> str | None:
    """The user whose room ``room`` is, if it is one user's room."""
    if isinstance(room, str) and room.startswith(USER_ROOM_PREFIX):
        return room[len(USER_ROOM_PREFIX) :]
    return None


def user_channel(channel: str, user_id: str) -> str:
    """Routed mode: the pub/sub channel of the messages for ``user_id``'s room."""
    return f"{channel}#user:{user_id}"


def signal_payload(
    user_id: str,
    notification_id: str | None,
    count: int | None = None,
    rev: int | None = None,
) -> dict[str, str | int]:
    """The ``pns:notification`` signal: the user, the new record when there is one, and
    the user's unseen ``count`` with its ``rev`` when the sender read them together."""
    payload: dict[str, str | int] = {"user_id": user_id}
    if notification_id is not None:
        payload["notification_id"] = notification_id
    if count is not None and rev is not None:
        payload["count"] = count
        payload["rev"] = rev
    return payload
