"""Application-side publishers: create notifications and tell every PNS node.

``Publisher`` is for asyncio applications (aiohttp, FastAPI); ``SyncPublisher``
for threaded ones (Flask, Django, Celery). Both use the server's own store
code and python-socketio's write-only Redis manager, which publishes the
signal ``pns:notification`` to the room ``user:<id>`` (docs/protocol.md).

Failure semantics:

- the store write fails (``StoreUnavailable``, ``InvalidRequest``): nothing is
  stored and nothing is signalled; ``notify`` raises.
- the signal cannot be published (Redis down, three tries): the record stays,
  because the store is the truth, and ``notify`` raises ``NotAnnounced``, whose
  ``notification_ids`` name the records stored but not announced. Call
  ``announce(user_id, notification_id)`` for them once Redis answers; any later
  change of the user (which carries a higher ``rev``) also brings the count.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, TypeVar

from . import schemas
from .errors import SettingsError
from .notifier import Notifier
from .settings import ROUTINGS, publisher_options
from .sio.publish import SignalManager
from .store import JSONObject, open_store
from .store.guarded import GUARD_MARGIN_SECONDS, GuardedStore

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Publisher:
    """Create notifications from an asyncio application.

    ``Publisher(store_url=..., redis_url=...)`` takes the same URLs as the
    server's ``PNS_STORE_URL`` and ``PNS_REDIS_URL``; ``Publisher.from_env()``
    reads those variables. The store opens on first use. Close it with
    ``await close()`` or ``async with``.
    """

    def __init__(
        self,
        *,
        store_url: str,
        redis_url: str | None,
        redis_channel: str = "socketio",
        routing: str = "broadcast",
        store_timeout: float = 5.0,
        max_notification_bytes: int = 16 * 1024,
    ) -> None:
        if not redis_url:
            raise SettingsError(
                "a publisher needs PNS_REDIS_URL: without Redis no node would hear of the "
                "notification (a single embedded node takes them over its HTTP API)"
            )
        self.store_url = store_url
        self.max_notification_bytes = max_notification_bytes
        self._store_timeout = store_timeout
        if routing not in ROUTINGS:
            raise SettingsError(f"routing={routing!r}: expected broadcast or routed")
        if redis_url.startswith("redis+cluster://") and routing != "routed":
            raise SettingsError("a redis+cluster:// URL takes routing='routed' (PNS_ROUTING)")
        self._manager = SignalManager(redis_url, channel=redis_channel, routed=routing == "routed")
        self._store: GuardedStore | None = None
        self._opening: asyncio.Lock | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Publisher:
        """From ``PNS_STORE_URL``, ``PNS_REDIS_URL``, ``PNS_REDIS_CHANNEL``,
        ``PNS_ROUTING``, ``PNS_STORE_TIMEOUT`` and ``PNS_MAX_NOTIFICATION_BYTES``."""
        return cls(**publisher_options(os.environ if env is None else env))

    async def _open(self) -> GuardedStore:
        if self._store is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._store is None:
                    inner = await open_store(self.store_url, timeout=self._store_timeout)
                    self._store = GuardedStore(
                        inner, timeout=self._store_timeout + GUARD_MARGIN_SECONDS
                    )
        return self._store

    async def _notifier(self) -> Notifier:
        return Notifier(await self._open(), self._manager.emit)

    def _check(self, user_id: Any, data: Any) -> tuple[str, JSONObject]:
        return schemas.user_id(user_id), schemas.notification_data(
            data, self.max_notification_bytes
        )

    async def notify(self, user_id: str | int, data: JSONObject) -> str:
        """Store a notification for ``user_id`` and signal the nodes; return its id.

        Raises ``InvalidRequest`` (bad ``user_id`` or ``data``) or
        ``StoreUnavailable``: then nothing was stored or signalled; ``NotAnnounced``:
        stored (its ``notification_ids``), but Redis did not take the signal.
        """
        uid, checked = self._check(user_id, data)
        return (await (await self._notifier()).create(uid, checked)).id

    async def notify_many(self, items: list[tuple[str | int, JSONObject]]) -> list[str]:
        """Store several notifications all or nothing, then signal each user once."""
        checked = [self._check(uid, data) for uid, data in items]
        return [c.id for c in await (await self._notifier()).create_many(checked)]

    async def announce(self, user_id: str | int, notification_id: str) -> None:
        """Signal a notification the application inserted into the store itself.

        Raises the user's ``rev`` first (docs/protocol.md): the insert changed
        the unseen set.
        """
        await (await self._notifier()).announce(schemas.user_id(user_id), notification_id)

    async def resync(self, user_id: str | int) -> int:
        """Raise the user's rev and have every node push the true count; return the rev.

        For applications that delete or mark notifications themselves.
        """
        return await (await self._notifier()).announce(schemas.user_id(user_id), None)

    async def close(self) -> None:
        """Close the store and the Redis connection; idempotent."""
        store, self._store = self._store, None
        if store is not None:
            await store.close()
        await self._manager.aclose()

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class SyncPublisher:
    """``Publisher`` for threaded applications: Flask, Django, Celery workers.

    Methods block and are safe to call from any thread; none needs an event
    loop of the caller's. The publisher runs its own loop in a daemon thread,
    started on first use and started again in a forked child (Celery and
    Gunicorn workers fork). Each call waits at most ``call_timeout`` seconds.
    """

    def __init__(self, *, call_timeout: float | None = None, **options: Any) -> None:
        self._options = options
        # Fails at construction, not at first use, when a URL is missing.
        Publisher(**options)
        timeout = float(options.get("store_timeout", 5.0))
        self._call_timeout = call_timeout if call_timeout is not None else 3 * timeout + 5.0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._publisher: Publisher | None = None
        self._pid = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SyncPublisher:
        return cls(**publisher_options(os.environ if env is None else env))

    def _ensure(self) -> tuple[asyncio.AbstractEventLoop, Publisher]:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="pns-publisher", daemon=True
                )
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
                self._publisher = Publisher(**self._options)
            assert self._publisher is not None
            return self._loop, self._publisher

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop, _ = self._ensure()
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(self._call_timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the publisher did not finish in {self._call_timeout:g}s") from None

    def notify(self, user_id: str | int, data: JSONObject) -> str:
        """See ``Publisher.notify``."""
        _, publisher = self._ensure()
        return self._run(publisher.notify(user_id, data))

    def notify_many(self, items: list[tuple[str | int, JSONObject]]) -> list[str]:
        _, publisher = self._ensure()
        return self._run(publisher.notify_many(items))

    def announce(self, user_id: str | int, notification_id: str) -> None:
        _, publisher = self._ensure()
        self._run(publisher.announce(user_id, notification_id))

    def resync(self, user_id: str | int) -> int:
        _, publisher = self._ensure()
        return self._run(publisher.resync(user_id))

    def close(self) -> None:
        """Close the publisher and stop its thread; idempotent."""
        with self._lock:
            loop, thread, publisher = self._loop, self._thread, self._publisher
            self._loop = self._thread = self._publisher = None
        if loop is None or publisher is None or thread is None:
            return
        if self._pid == os.getpid():
            asyncio.run_coroutine_threadsafe(publisher.close(), loop).result(self._call_timeout)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(self._call_timeout)
            loop.close()

    def __enter__(self) -> SyncPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
