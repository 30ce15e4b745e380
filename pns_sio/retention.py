"""Deleting seen notifications past the retention, for stores that do not expire them
themselves (SQLite; MongoDB has a TTL index)."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta

from .errors import StoreUnavailable
from .store import NotificationStore

logger = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS = 3600.0


class Retention:
    def __init__(self, store: NotificationStore, *, period: timedelta) -> None:
        self._store = store
        self.period = period

    async def purge_expired(self) -> int:
        """Delete seen notifications older than the retention; return how many."""
        purged = await self._store.purge_seen(datetime.now(UTC) - self.period)
        if purged:
            logger.info("retention: deleted %d seen notifications", purged)
        return purged

    async def run(self) -> None:
        """Purge once an hour, for ever (a background task)."""
        # The first pass waits a while (with jitter): a retention of days loses
        # nothing by it, and nodes started together do not all write at once.
        await asyncio.sleep(PURGE_INTERVAL_SECONDS * (0.5 + random.random() / 2))
        while True:
            try:
                await self.purge_expired()
            except StoreUnavailable:
                logger.warning("retention: the store is unavailable; next try in an hour")
            await asyncio.sleep(PURGE_INTERVAL_SECONDS)
