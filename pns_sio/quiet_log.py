"""Log lines a client can provoke, at a bounded rate: a client must not fill the disk."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class QuietLog:
    """At most ``burst`` lines per ``window`` seconds; the rest are counted, and the
    count is logged with the first line of the next window."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 10,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._burst = burst
        self._window = window
        self._clock = clock
        self._started = clock()
        self._logged = 0
        self._suppressed = 0

    def info(self, message: str, *args: object) -> None:
        """Log at INFO (never with a traceback) unless this window's lines are spent."""
        now = self._clock()
        if now - self._started >= self._window:
            if self._suppressed:
                self._logger.info(
                    "%d more such lines in the last %gs were not logged",
                    self._suppressed,
                    self._window,
                )
            self._started, self._logged, self._suppressed = now, 0, 0
        if self._logged >= self._burst:
            self._suppressed += 1
            return
        self._logged += 1
        self._logger.info(message, *args)
