"""What a node hears from the others (through its manager), turned into count work.

Every hook here runs inside the manager's listener or the socket layer's dispatch:
each only schedules work (``CountService`` runs it in tasks of its own), because
the pub/sub listener handles messages one at a time and store work inside it would
stall all cross-node traffic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .counts import CountService
from .metrics import Metrics
from .store import UnseenCount
from .tasks import TaskOwner
from .wire import EV_RESYNC, NAMESPACE, Emit

logger = logging.getLogger(__name__)


class Signals:
    """Signals, resync requests and lost publishes, for the users connected here."""

    def __init__(
        self,
        counts: CountService,
        *,
        has_user: Callable[[str], bool],
        users_here: Callable[[], list[str]],
        emit: Emit,
        tasks: TaskOwner,
        metrics: Metrics,
    ) -> None:
        self._counts = counts
        self._has_user = has_user
        self._users_here = users_here
        self._emit = emit
        self._tasks = tasks
        self._metrics = metrics

    def on_signal(
        self, user_id: str, notification_id: str | None, unseen: UnseenCount | None
    ) -> None:
        """A change of the user's notifications: forward the count the sender read with
        it, or read it, for this node's devices of the user (if any)."""
        here = self._has_user(user_id)
        self._metrics.signals.labels("yes" if here else "no").inc()
        if not here:
            return
        if unseen is not None:
            self._counts.forward(user_id, unseen)
        else:
            self._counts.refresh(user_id)

    def resync(self) -> None:
        """Re-send the true count to every user connected here (after a broker outage)."""
        users = self._users_here()
        self._metrics.resyncs.inc()
        logger.info("resyncing counts of %d users", len(users))
        self._counts.refresh_many(users)

    def on_publish_lost(self, users: set[str] | None) -> None:
        """Messages this node could not publish are lost for the other nodes: once Redis
        takes messages again, publish those users' true counts everywhere (None: have
        every node resync all its users)."""
        self._metrics.republished.inc()
        if users is None:
            self.resync()
            self._tasks.spawn(self._ask_every_node_to_resync(), name="resync")
            return
        for user_id in users:
            self._counts.refresh(user_id, everywhere=True)

    async def _ask_every_node_to_resync(self) -> None:
        await self._emit(EV_RESYNC, {}, NAMESPACE)
