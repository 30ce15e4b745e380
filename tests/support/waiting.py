"""Waiting for state that lives in a node and sends no event to await."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` (short interval, hard deadline): only for state that no
    client event announces (a node's metrics or tables, a client's transport),
    since ``Device.until`` re-checks only when its device receives an event."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - remote state, no event to await
            await asyncio.sleep(0.02)
