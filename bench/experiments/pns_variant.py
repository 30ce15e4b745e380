"""Run `pns serve` with bench-only changes applied from outside pns_sio/, to measure what a
proposed server change would buy before anyone edits the server.

    PNS_BENCH_VARIANT=nodeflate,orjson,uvloop python bench/experiments/pns_variant.py serve

- nodeflate: python-engineio's aiohttp WebSocket wrapper builds its WebSocketResponse
  with compress=False (no permessage-deflate: no zlib compressor per connection).
- orjson:    python-socketio's AsyncServer gets json=<orjson adapter> (its `json=` option).
- uvloop:    the event loop is uvloop's (the node's asyncio.run creates its loop from the policy).
- redispool: the Redis broker's clients share a bounded, blocking connection pool (8) instead of
             redis-py's unbounded one, which opens a new connection for every concurrent publish.
- redispipe: one publisher task per node drains a queue of emits and sends them to Redis in
             one pipeline (PUBLISH x n per round trip, one connection) instead of one pooled
             connection and one round trip per emit.
- sqlitereads: SQLite reads (counts, lists) run inline on the event loop instead of a hop to
             the reader thread (they take tens of microseconds; the hop costs more).
- sqliteinline: every SQLite call inline on the event loop, as better-sqlite3 does in Node
             (a write waiting on another process's lock would block the loop: experiment only).
- fastdisconnect: python-socketio's BaseManager.basic_disconnect scans every room of the
             namespace (one per connection, plus one per user) for each disconnect, O(rooms);
             a mass disconnect is O(n^2). Keep a sid -> rooms index instead.
- gctune:    gc.freeze() after start-up and a higher gen-0 threshold (50,000), so the cyclic
             collector does not walk every connection's objects in long pauses.
- gclog:     log every cyclic-GC pass longer than 5 ms to stderr, and every 5 s the passes,
             milliseconds and objects freed per generation (a probe, changes nothing).
- eager:     Python 3.12+: the loop's task factory is asyncio.eager_task_factory.
- gcwhat:    every 25th young-generation pass, log what it is about to walk, by type.
- switch:    sys.setswitchinterval(0.0005): a thread waiting for the GIL (the SQLite
             threads) gets it after 0.5 ms instead of 5 ms while the event loop is busy.
- tracemalloc: trace allocations; each SIGUSR1 writes the growth since the previous one,
             by source line, to $BENCH_TRACEMALLOC_OUT (a probe for RSS per connection).
- libloop:   python-engineio's own WebSocket loop instead of pns_sio/sio/websocket.py's
             EngineIOLoop (the before of that change).
- redisver:  cache redis-py's get_lib_version(): redis-py 8 calls importlib.metadata.version()
             for every new connection it opens.
- cprofile:  a probe: SIGUSR1 starts cProfile in the node, SIGUSR2 stops it and writes the
             stats to $BENCH_CPROFILE_OUT (exact call counts per operation; slows the node).
- libemit:   python-socketio's own AsyncManager.emit (a task per recipient, then a wait for
             them) instead of pns_sio/sio/emit.py's DirectEmit: the before of session 13's change
             (which was measured first as the variant `directsend`).
- seenindex: the SQLite store with the partial index on seen_date it had until the retention
             purge walked the table in rowid windows (every mark_seen inserted into it): the
             before of that change.
- onethread: fetch's list of unseen notifications runs on the SQLite writer's thread (in its
             batch transaction) instead of the reader's: one thread to wake and one batch per
             round, instead of two threads taking turns with the loop for the GIL.
- nometrics: every prometheus_client update (Counter.inc, Gauge.inc/dec/set, Histogram.observe)
             does nothing: what the node's metric updates cost on its hot paths (a probe;
             /metrics then reads zeros).
- ckpt100:   the SQLite store's loop-side connection asks for a WAL checkpoint every 100
             writes instead of every 1,000 (the before of session 12; a WAL a tenth as large).
- nogroup:   every SQLite write on the loop commits alone, as before session 12's group
             commit; alwaysgroup: every one joins its turn's shared transaction, even
             alone in the turn (the group commit without its switch).
- groupsizes: a probe: how many writes each of the loop's commits carried, written every
             500 commits to $BENCH_GROUPS_OUT as {size: commits}.
- storeprocess: the SQLite store in a child process of the node (store_process.py), so
             its threads never take turns with the event loop for one GIL.
- nohiredis: redis-py parses replies and pub/sub messages in pure Python (its _AsyncRESP3Parser)
             even though hiredis is installed (the before of adding hiredis).

Used by bench/run.py --variant; nothing here is part of PNS.
"""

from __future__ import annotations

import os
import sys
from typing import Any

VARIANTS = {v.strip() for v in os.environ.get("PNS_BENCH_VARIANT", "").split(",") if v.strip()}
KNOWN = {
    "storeprocess",
    "nodeflate",
    "orjson",
    "uvloop",
    "redispool",
    "redispipe",
    "redisver",
    "sqlitereads",
    "sqliteinline",
    "fastdisconnect",
    "gctune",
    "gclog",
    "switch",
    "tracemalloc",
    "gcwhat",
    "eager",
    "libloop",
    "nohiredis",
    "cprofile",
    "libemit",
    "seenindex",
    "onethread",
    "nometrics",
    "ckpt100",
    "nogroup",
    "alwaysgroup",
    "groupsizes",
}
if VARIANTS - KNOWN:
    sys.exit(f"pns_variant: unknown variant(s) {sorted(VARIANTS - KNOWN)}; known: {sorted(KNOWN)}")

if "nodeflate" in VARIANTS:
    from aiohttp.web import WebSocketResponse
    from engineio.async_drivers import aiohttp as engineio_aiohttp

    async def _ws_call(self: Any, environ: dict[str, Any]) -> Any:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock

    engineio_aiohttp.WebSocket.__call__ = _ws_call

if "libloop" in VARIANTS:
    # Before/after for pns_sio/sio/websocket.py's EngineIOLoop: python-engineio's own loop
    # (a writer task, a ping task and a task per received frame beside each connection).
    from pns_sio.sio import websocket as pns_transport

    async def _library_loop(self: Any) -> None:
        await self.ws.handler(self.ws)

    pns_transport.EngineIOLoop.run = _library_loop  # type: ignore[method-assign]

if "orjson" in VARIANTS:
    import orjson
    import socketio

    class OrjsonAdapter:
        """The json module interface python-socketio and python-engineio call."""

        @staticmethod
        def dumps(obj: Any, **_kwargs: Any) -> str:
            return orjson.dumps(obj).decode()

        @staticmethod
        def loads(text: str | bytes, **_kwargs: Any) -> Any:
            return orjson.loads(text)

    _orig_init = socketio.AsyncServer.__init__

    def _init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("json", OrjsonAdapter)
        _orig_init(self, *args, **kwargs)

    socketio.AsyncServer.__init__ = _init

if "redisver" in VARIANTS:
    import functools

    import redis.utils

    redis.utils.get_lib_version = functools.cache(redis.utils.get_lib_version)

if "nohiredis" in VARIANTS:
    from redis._parsers import _AsyncRESP3Parser
    from redis.asyncio import connection as redis_connection

    _orig_conn_init = redis_connection.AbstractConnection.__init__

    def _pure_python_parser(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["parser_class"] = _AsyncRESP3Parser
        _orig_conn_init(self, *args, **kwargs)

    redis_connection.AbstractConnection.__init__ = _pure_python_parser  # type: ignore[method-assign]

if "redispool" in VARIANTS:
    from urllib.parse import urlparse

    from redis import asyncio as aioredis

    from pns_sio.sio import managers as pns_broker

    _orig_new_client = pns_broker.RedisBroker._new_client

    def _new_client(self: Any) -> Any:
        if urlparse(self.redis_url).scheme.endswith("+sentinel"):
            return _orig_new_client(self)
        pool = aioredis.BlockingConnectionPool.from_url(
            self.redis_url,
            max_connections=8,
            timeout=5,
            socket_connect_timeout=2.0,
            socket_keepalive=True,
        )
        return aioredis.Redis(connection_pool=pool)

    pns_broker.RedisBroker._new_client = _new_client

if "redispipe" in VARIANTS:
    import asyncio

    from pns_sio.sio import managers as pns_broker

    async def _publish_queued(self: Any, data: Any) -> Any:
        if self._closed:
            return None
        loop = asyncio.get_running_loop()
        queue = getattr(self, "_bench_queue", None)
        if queue is None:
            queue = self._bench_queue = asyncio.Queue()
            self._bench_task = loop.create_task(_drain(self, queue))
        done = loop.create_future()
        queue.put_nowait((self.json.dumps(data), done))
        return await done

    async def _drain(self: Any, queue: Any) -> None:
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < 512:
                batch.append(queue.get_nowait())
            results: list[Any] = [None] * len(batch)
            try:
                if self._pub_client is None:
                    self._pub_client = self._new_client()
                pipe = self._pub_client.pipeline(transaction=False)
                for message, _ in batch:
                    pipe.publish(self.channel, message)
                async with asyncio.timeout(self.publish_timeout):
                    results = await pipe.execute()
            except Exception:  # as PNS does: log-and-drop; the store is the truth
                client, self._pub_client = self._pub_client, None
                await self._discard(client)
            for (_, done), result in zip(batch, results, strict=False):
                if not done.done():
                    done.set_result(result)

    pns_broker.RedisBroker._publish = _publish_queued

if VARIANTS & {"sqlitereads", "sqliteinline"}:
    import sqlite_inline

    sqlite_inline.install(reads_only="sqliteinline" not in VARIANTS)

if "fastdisconnect" in VARIANTS:
    from socketio import base_manager

    BM = base_manager.BaseManager
    _enter, _leave = BM.basic_enter_room, BM.basic_leave_room

    def _index(self: Any) -> dict[Any, set[Any]]:
        idx = self.__dict__.get("_bench_sid_rooms")
        if idx is None:
            idx = self.__dict__["_bench_sid_rooms"] = {}
        return idx

    def basic_enter_room(
        self: Any, sid: Any, namespace: Any, room: Any, eio_sid: Any = None
    ) -> None:
        _enter(self, sid, namespace, room, eio_sid)
        _index(self).setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self: Any, sid: Any, namespace: Any, room: Any) -> None:
        _leave(self, sid, namespace, room)
        rooms = _index(self).get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)

    def basic_disconnect(self: Any, sid: Any, namespace: Any, **kwargs: Any) -> None:
        if namespace not in self.rooms:
            return
        for room in list(_index(self).pop((namespace, sid), ())):
            _leave(self, sid, namespace, room)
        if sid in self.callbacks:
            del self.callbacks[sid]
        if namespace in self.pending_connect and sid in self.pending_connect[namespace]:
            self.pending_connect[namespace].remove(sid)
            if len(self.pending_connect[namespace]) == 0:
                del self.pending_connect[namespace]
        if namespace in self.pending_disconnect and sid in self.pending_disconnect[namespace]:
            self.pending_disconnect[namespace].remove(sid)
            if len(self.pending_disconnect[namespace]) == 0:
                del self.pending_disconnect[namespace]

    BM.basic_enter_room = basic_enter_room
    BM.basic_leave_room = basic_leave_room
    BM.basic_disconnect = basic_disconnect

if "gclog" in VARIANTS:
    import gc
    import time

    _gc_start: list[float] = [0.0]
    # per generation: passes, ms, objects collected, since the last summary line
    _gc_sum: dict[int, list[float]] = {0: [0, 0.0, 0], 1: [0, 0.0, 0], 2: [0, 0.0, 0]}
    _gc_last = [time.monotonic()]

    def _gc_probe(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            _gc_start[0] = time.perf_counter()
            return
        ms = (time.perf_counter() - _gc_start[0]) * 1000
        gen = info["generation"]
        row = _gc_sum[gen]
        row[0] += 1
        row[1] += ms
        row[2] += info.get("collected", 0)
        if ms > 5:
            print(f"gc: generation {gen} took {ms:.1f} ms", file=sys.stderr, flush=True)
        now = time.monotonic()
        if now - _gc_last[0] >= 5:
            parts = " ".join(
                f"gen{g}: {int(r[0])} passes {r[1]:.0f} ms {int(r[2])} freed"
                for g, r in _gc_sum.items()
            )
            print(
                f"gcsum: {now:.1f} over {now - _gc_last[0]:.1f} s: {parts};"
                f" counts {gc.get_count()} frozen {gc.get_freeze_count()}",
                file=sys.stderr,
                flush=True,
            )
            _gc_last[0] = now
            for r in _gc_sum.values():
                r[:] = [0, 0.0, 0]

    gc.callbacks.append(_gc_probe)

if "eager" in VARIANTS:
    # Python 3.12+: tasks run at once until their first suspension (python-socketio makes a
    # task per recipient of an emit, and most finish without ever suspending).
    import asyncio as _asyncio

    from pns_sio import cli as _cli

    _tune = _cli.tune_gc

    def _tune_and_eager() -> None:
        _tune()
        _asyncio.get_running_loop().set_task_factory(_asyncio.eager_task_factory)  # type: ignore[attr-defined]

    _cli.tune_gc = _tune_and_eager

if "gcwhat" in VARIANTS:
    import collections
    import gc

    _what_n = [0]

    def _gc_what(phase: str, info: dict[str, Any]) -> None:
        # Every 25th young-generation pass: what the pass is about to walk, by type.
        if phase != "start" or info["generation"] != 0:
            return
        _what_n[0] += 1
        if _what_n[0] % 25:
            return
        young = gc.get_objects(generation=0)
        by_type: collections.Counter[str] = collections.Counter()
        refs: collections.Counter[str] = collections.Counter()
        for obj in young:
            name = type(obj).__qualname__
            by_type[name] += 1
            refs[name] += len(gc.get_referents(obj))
        print(
            f"gcwhat: {len(young)} young objects, {sum(refs.values())} references;"
            f" by count {by_type.most_common(12)}; by references {refs.most_common(8)}",
            file=sys.stderr,
            flush=True,
        )
        del young

    gc.callbacks.append(_gc_what)

if "gctune" in VARIANTS:
    import gc

    gc.freeze()
    gc.set_threshold(50_000, 20, 100)

if "tracemalloc" in VARIANTS:
    import signal
    import tracemalloc

    tracemalloc.start(1)
    _snapshots: list[Any] = []

    def _dump(signum: int, frame: Any) -> None:
        snap = tracemalloc.take_snapshot()
        out = os.environ.get("BENCH_TRACEMALLOC_OUT", "tracemalloc.txt")
        with open(out, "a") as f:
            if _snapshots:
                stats = snap.compare_to(_snapshots[-1], "lineno")
                total = sum(s.size_diff for s in stats)
                print(f"== growth since the previous snapshot: {total / 1024:.0f} KiB", file=f)
                for stat in stats[:60]:
                    print(stat, file=f)
                by_file = snap.compare_to(_snapshots[-1], "filename")
                print("== growth by file", file=f)
                for stat in by_file[:40]:
                    print(stat, file=f)
            else:
                print("== first snapshot", file=f)
        _snapshots.append(snap)

    signal.signal(signal.SIGUSR1, _dump)

if "libemit" in VARIANTS:
    import socketio

    from pns_sio.sio import emit as pns_emit

    pns_emit.DirectEmit.emit = socketio.AsyncManager.emit  # type: ignore[method-assign,assignment]

if "seenindex" in VARIANTS:
    from pns_sio.store import sqlite as pns_sqlite

    pns_sqlite.SCHEMA += (
        "CREATE INDEX IF NOT EXISTS ix_notifications_seen ON notifications (seen_date)"
        " WHERE seen_date IS NOT NULL;\n"
    )

if "nometrics" in VARIANTS:
    import prometheus_client as _prom

    def _nothing(*_: Any, **__: Any) -> None:
        return None

    _prom.Counter.inc = _nothing  # type: ignore[method-assign]
    _prom.Gauge.inc = _nothing  # type: ignore[method-assign]
    _prom.Gauge.dec = _nothing  # type: ignore[method-assign]
    _prom.Gauge.set = _nothing  # type: ignore[method-assign]
    _prom.Histogram.observe = _nothing  # type: ignore[method-assign]

if "ckpt100" in VARIANTS:
    from pns_sio.store import sqlite_inline as _sqlite_inline

    _sqlite_inline.CHECKPOINT_EVERY = 100

if VARIANTS & {"nogroup", "alwaysgroup"}:
    # nogroup: every SQLite write on the loop commits alone, as before the group commit;
    # alwaysgroup: every one waits for its turn's shared commit, even alone in the turn.
    from pns_sio.store import sqlite_inline as _sqlite_inline

    _always = "alwaysgroup" in VARIANTS
    _sqlite_inline.InlineConnection.grouping = property(  # type: ignore[method-assign,assignment]
        lambda self: _always
    )

if "groupsizes" in VARIANTS:
    # How many writes each commit of the loop's transaction carried, written every 500
    # commits to $BENCH_GROUPS_OUT as {size: commits}.
    import collections
    import json

    from pns_sio.store import sqlite_inline as _sqlite_inline

    _sizes: collections.Counter[int] = collections.Counter()
    _commit = _sqlite_inline.InlineConnection.commit

    def _counted_commit(self: Any) -> None:
        if self._joined is not None:
            _sizes[len(self._joined)] += 1
            if sum(_sizes.values()) % 500 == 0:
                with open(os.environ.get("BENCH_GROUPS_OUT", "groupsizes.json"), "w") as out:
                    json.dump(dict(sorted(_sizes.items())), out)
        _commit(self)

    _sqlite_inline.InlineConnection.commit = _counted_commit  # type: ignore[method-assign]

if "onethread" in VARIANTS:
    from pns_sio.store import sqlite as pns_sqlite

    class _WriterAsReader:
        """What SQLiteStore.list_unseen uses of the store, with the writer as reader."""

        def __init__(self, store: Any) -> None:
            self._reader = store._writer

    _list_unseen = pns_sqlite.SQLiteStore.list_unseen

    async def _list_on_writer(self: Any, user_id: str, limit: int) -> Any:
        return await _list_unseen(_WriterAsReader(self), user_id, limit)  # type: ignore[arg-type]

    pns_sqlite.SQLiteStore.list_unseen = _list_on_writer  # type: ignore[method-assign]

if "cprofile" in VARIANTS:
    import cProfile
    import signal

    _profiler = cProfile.Profile()

    def _start_profile(*_: Any) -> None:
        _profiler.enable()

    def _stop_profile(*_: Any) -> None:
        _profiler.disable()
        _profiler.dump_stats(os.environ.get("BENCH_CPROFILE_OUT", "cprofile.out"))

    signal.signal(signal.SIGUSR1, _start_profile)
    signal.signal(signal.SIGUSR2, _stop_profile)

if "storeprocess" in VARIANTS:
    # The node's SQLite store in a child process (store_process.py).
    from store_process import ProcessStore

    import pns_sio.app

    _open_store = pns_sio.app.open_store

    async def _open_in_process(url: str, **options: Any) -> Any:
        if url.startswith("sqlite://"):
            return await ProcessStore.open(
                url, timeout=options["timeout"], retention=options.get("retention")
            )
        return await _open_store(url, **options)

    pns_sio.app.open_store = _open_in_process  # type: ignore[assignment]

if "switch" in VARIANTS:
    sys.setswitchinterval(0.0005)

if "uvloop" in VARIANTS:
    import uvloop

    uvloop.install()

from pns_sio.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
