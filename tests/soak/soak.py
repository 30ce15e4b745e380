"""Soak: real nodes, real Redis, hundreds of devices, random faults; then a checker.

    .venv/bin/python -m tests.soak.soak --seconds 600 --devices 300 --seed 1

Three ``pns serve`` nodes share one Redis (started here) and one SQLite file.
Devices (python-socketio clients, demo auth, several per user) connect to a
random node, directly or through a round-robin TCP proxy, and at random fetch,
acknowledge all or part of a batch, acknowledge nothing, drop the
acknowledgement (never sent: the node times out), acknowledge too late, or
disconnect mid-batch. Meanwhile notifications are created through the HTTP
API and the Python publisher, and a fault loop crashes (SIGKILL) or stops
(SIGTERM) random nodes, restarts Redis, or stalls it (no PUBLISH taken for a few
seconds, so publishes are lost while every subscription stays up). Every loop is
bounded in time; all traffic stays on 127.0.0.1.

When the faults stop and everything is back, each device makes sure it is
connected and the checker proves, from the store (read-only) and what every
device recorded:

- every connected device's kept count (highest ``rev``) equals its user's
  unseen count in the store;
- every seen notification was accepted in an acknowledgement sent in time by a
  device of its own user (ids are recorded before the acknowledgement goes
  out); so no ``seen_date`` was set without one;
- every acknowledgement the node confirmed (``ok``) left its ids seen;
- no notification reached a device of another user; every created one exists;
- the count is the first event of every connection; a SIGTERM'd node exits 0.

It prints the figures and exits 1 on any violation (2 if it could not run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import socketio
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from pns_sio.errors import NotAnnounced
from pns_sio.publisher import Publisher
from pns_sio.wire import EV_BATCH, EV_COUNT, EV_DISCONNECT, EV_FETCH

from ..support.processes import API_TOKEN, NodeProcess, NodeProcesses, NodeStartError, stable_port
from ..support.proxy import RoundRobinProxy
from ..support.redis import RedisProcess
from ..support.redis_cluster import RedisClusterProcesses

logger = logging.getLogger("soak")

# How a device answers a batch, and how often.
ACK_POLICIES = {
    "all": 50,  # accept the whole batch
    "partial": 15,  # accept a random part (plus ids that are not in the batch)
    "none": 5,  # {"received": []}
    "drop": 12,  # never answer: the node times out
    "late": 8,  # accept everything, after the node's timeout
    "disconnect": 10,  # close the connection instead of answering
}
ACTIONS = {"fetch": 60, "idle": 30, "disconnect": 10}
# redis_stall: Redis takes no PUBLISH for 2.5-6 s (CLIENT PAUSE WRITE) while every
# subscription stays up, so nodes lose publishes (two tries of 2 s) and resync nothing
# on their own; the publisher raises NotAnnounced and the creator announces again.
FAULTS = {"node_kill": 3, "node_term": 1, "redis_restart": 2, "redis_stall": 2}
ANNOUNCE_TRIES = 120  # every 0.5 s: a minute to get a NotAnnounced record announced
MAX_VIOLATIONS_SHOWN = 40


@dataclass(frozen=True, slots=True)
class Config:
    seconds: float = 60.0
    devices: int = 200
    users: int = 0  # 0: one user per 10 devices, at least 3
    seed: int = 1
    nodes: int = 3
    think: float = 1.5  # mean seconds between a device's actions
    fault_every: float = 5.0  # mean seconds between faults
    create_rate: float = 20.0  # notifications created a second
    ack_timeout: float = 1.5
    settle: float = 30.0  # deadline for everything to reconnect and converge
    workdir: Path | None = None
    keep: bool = False
    # PNS_ROUTING of the nodes and the publisher; cluster: routed on a Redis Cluster
    routing: str = "broadcast"

    @property
    def user_ids(self) -> list[str]:
        return [f"u{i}" for i in range(1, (self.users or max(3, self.devices // 10)) + 1)]


class Record:
    """What the devices saw and did, the faults injected, and the violations found."""

    def __init__(self) -> None:
        self.ops: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.violations: list[str] = []
        self.created: dict[str, str] = {}  # id -> user, as the creation answered
        self.received_by: defaultdict[str, set[str]] = defaultdict(set)  # id -> users
        self.accepted: defaultdict[str, set[str]] = defaultdict(set)  # user -> ids, in time
        self.late: defaultdict[str, set[str]] = defaultdict(set)  # user -> ids, after timeout
        self.confirmed: defaultdict[str, set[str]] = defaultdict(set)  # user -> ids, answer ok
        self.delivered_total = 0  # sum of "delivered" in ok answers
        self.trail: defaultdict[str, list[str]] = defaultdict(list)  # id -> what happened
        self.started = time.monotonic()

    def note(self, nid: str, text: str) -> None:
        self.trail[nid].append(f"{time.monotonic() - self.started:.2f}s {text}")

    def violation(self, text: str, nid: str | None = None) -> None:
        self.violations.append(text)
        logger.error("VIOLATION %s", text)
        if nid is not None:
            logger.error("  trail of %s:\n    %s", nid, "\n    ".join(self.trail[nid]))


class Connection:
    """One Socket.IO connection of a device; a new one for every (re)connect."""

    def __init__(self, device: SoakDevice, target: str) -> None:
        self.device = device
        self.target = target
        self.kept: dict[str, int] | None = None
        self.first_event: str | None = None
        self.refused: str | None = None
        self.closing = False
        self.gone = asyncio.Event()
        self.accepted_now: set[str] = set()
        self.handlers: set[asyncio.Task[Any]] = set()
        self.client = socketio.AsyncClient(reconnection=False, http_session=device.soak.http)
        self.client.on(EV_COUNT, self.on_count)
        self.client.on(EV_BATCH, self.on_batch)
        self.client.on(EV_DISCONNECT, self.on_told)
        self.client.on("connect_error", self.on_connect_error)
        self.client.on("disconnect", self.on_disconnect)

    @property
    def alive(self) -> bool:
        return self.client.connected and not self.gone.is_set()

    def _first(self, event: str) -> None:
        if self.first_event is None:
            self.first_event = event
            if event != EV_COUNT:
                self.device.soak.record.violation(
                    f"{self.device.name}: first event on {self.target} was {event}, not the count"
                )

    async def on_count(self, data: dict[str, int]) -> None:
        self._first(EV_COUNT)
        self.device.soak.record.ops["counts_received"] += 1
        # PROTOCOL: keep the highest rev; an equal rev replaces the kept value.
        if self.kept is None or data["rev"] >= self.kept["rev"]:
            self.kept = data
        self.device.soak.changed.set()

    async def on_batch(self, data: dict[str, Any]) -> Any:
        self._first(EV_BATCH)
        device, record = self.device, self.device.soak.record
        notes = data["notifications"]
        ids = [n["id"] for n in notes]
        record.ops["batches_received"] += 1
        record.ops["notifications_received"] += len(ids)
        for note in notes:
            record.received_by[note["id"]].add(device.user)
            owner = note["data"].get("user") if isinstance(note["data"], dict) else None
            if owner != device.user:
                record.violation(f"{device.name} (user {device.user}) got {note['id']} of {owner}")
        policy = device.rng.choices(list(ACK_POLICIES), list(ACK_POLICIES.values()))[0]
        record.ops[f"ack_{policy}"] += 1
        for nid in ids:
            record.note(nid, f"to {device.name}({device.user}) via {self.target}: {policy}")
        if policy == "all":
            # Recorded before the acknowledgement leaves: the checker's ground truth.
            self.accepted_now = set(ids)
            record.accepted[device.user].update(ids)
            return None  # PROTOCOL: no argument accepts the whole batch
        if policy == "partial":
            chosen = [i for i in ids if device.rng.random() < 0.5]
            for nid in chosen:
                record.note(nid, f"accepted by {device.name}")
            self.accepted_now = set(chosen)
            record.accepted[device.user].update(chosen)
            # Ids that are not in this batch must mark nothing: another user's, or
            # this user's own, not delivered here.
            strangers = [i for i in device.soak.some_created(device.rng, 3) if i not in ids]
            return {"received": chosen + strangers}
        if policy == "none":
            return {"received": []}
        if policy == "drop":
            await self.gone.wait()  # answered only once the connection is gone: never sent
            return {"received": []}
        if policy == "late":
            # The node's deadline started when it emitted, before this arrived.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gone.wait(), device.soak.config.ack_timeout + 0.5)
            if not self.alive:
                return {"received": []}
            record.late[device.user].update(ids)
            return None
        # "disconnect": the connection ends with the batch unanswered.
        await self.close()
        return {"received": []}

    async def on_told(self, data: Any) -> None:
        self._first(EV_DISCONNECT)
        code = data.get("code") if isinstance(data, dict) else data
        self.device.soak.record.ops[f"told_disconnect_{code}"] += 1

    async def on_connect_error(self, data: Any) -> None:
        inner = data.get("data") if isinstance(data, dict) else None
        self.refused = inner.get("code") if isinstance(inner, dict) else "transport"

    async def on_disconnect(self, *args: Any) -> None:
        if not self.closing and not self.gone.is_set():
            self.device.soak.record.ops["dropped_by_node"] += 1
        self.gone.set()

    async def connect(self, url: str) -> bool:
        try:
            await self.client.connect(
                url,
                auth={"user_id": self.device.user},
                transports=["websocket"],
                wait_timeout=5,
            )
        except socketio.exceptions.ConnectionError:
            self.gone.set()
            return False
        return True

    async def fetch(self) -> None:
        record = self.device.soak.record
        self.accepted_now = set()
        limit = self.device.rng.randint(1, 10)
        try:
            answer = await self.client.call(
                EV_FETCH, {"limit": limit}, timeout=self.device.soak.config.ack_timeout + 5
            )
        except socketio.exceptions.SocketIOError:
            record.ops["fetch_no_answer"] += 1  # connection lost (or closed on purpose)
            return
        if not isinstance(answer, dict):
            record.violation(f"{self.device.name}: fetch answered {answer!r}")
        elif answer.get("ok") is True:
            record.ops["fetch_ok"] += 1
            for nid in self.accepted_now:
                record.note(nid, f"{self.device.name}: ok {answer}")
            record.delivered_total += int(answer["delivered"])
            record.confirmed[self.device.user].update(self.accepted_now)
        else:
            code = answer.get("error", {}).get("code")
            record.ops[f"fetch_{code}"] += 1
            for nid in self.accepted_now:
                record.note(nid, f"{self.device.name}: {code}")
            if code not in ("timeout", "unavailable", "rate_limited"):
                record.violation(f"{self.device.name}: fetch answered {answer}")

    async def close(self) -> None:
        self.closing = True
        with contextlib.suppress(Exception):
            await self.client.disconnect()
        self.gone.set()


class SoakDevice:
    """One device of a user: connects, acts at random, reconnects when dropped."""

    def __init__(self, soak: Soak, index: int, user: str) -> None:
        self.soak = soak
        self.name = f"d{index}"
        self.user = user
        self.rng = random.Random(f"{soak.config.seed}:{index}")
        self.conn: Connection | None = None
        self.old: list[Connection] = []

    async def connect(self) -> bool:
        target, url = self.rng.choice(self.soak.targets())
        conn = Connection(self, target)
        if await conn.connect(url):
            self.soak.record.ops["connect_ok"] += 1
            self.conn = conn
            return True
        self.soak.record.ops[f"connect_refused_{conn.refused or 'transport'}"] += 1
        return False

    async def run(self, until: float) -> None:
        think = self.soak.config.think
        while time.monotonic() < until:
            if self.conn is None or not self.conn.alive:
                if self.conn is not None:
                    self.old.append(self.conn)
                    self.conn = None
                    # A client library's reconnection delay, randomized: no herd.
                    await asyncio.sleep(self.rng.uniform(0.1, 1.0))
                if not await self.connect():
                    await asyncio.sleep(self.rng.uniform(0.1, 0.5))  # back-off
                    continue
            assert self.conn is not None
            action = self.rng.choices(list(ACTIONS), list(ACTIONS.values()))[0]
            if action == "fetch":
                await self.conn.fetch()
            elif action == "disconnect":
                self.soak.record.ops["disconnect_by_device"] += 1
                await self.conn.close()
            # Pacing, cut short when the connection drops.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.conn.gone.wait(), min(self.rng.expovariate(1 / think), 4 * think)
                )

    async def ensure_connected(self, until: float) -> bool:
        while time.monotonic() < until:
            if self.conn is not None and self.conn.alive:
                return True
            if self.conn is not None:
                self.old.append(self.conn)
                self.conn = None
            if await self.connect():
                continue
            await asyncio.sleep(0.2)
        return False

    async def close(self) -> None:
        for conn in [*self.old, *([self.conn] if self.conn else [])]:
            await conn.close()


class Soak:
    def __init__(self, config: Config, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.rng = random.Random(config.seed)
        self.record = Record()
        self.changed = asyncio.Event()
        self.db = workdir / "pns.db"
        self.redis = RedisProcess(workdir)
        self.redis.port = stable_port()
        # --routing cluster: routed mode on a Redis Cluster (3 primaries, a replica each).
        self.cluster = RedisClusterProcesses(workdir) if config.routing == "cluster" else None
        self.redis_url = self.redis.url if self.cluster is None else self.cluster.url
        self.routing = "routed" if self.cluster is not None else config.routing
        self.nodes = NodeProcesses(
            workdir,
            store_url=f"sqlite:///{self.db}",
            redis_url=self.redis_url,
            api_token=API_TOKEN,
            ack_timeout=config.ack_timeout,
            ping_interval=2,
            ping_timeout=2,
            shutdown_grace=2,
            store_timeout=3,
            routing=self.routing,
            handshake_rate=0,  # every device comes from 127.0.0.1 here
            log_level="INFO",
        )
        self.proxy: RoundRobinProxy | None = None
        self.http: aiohttp.ClientSession | None = None
        self.publisher: Publisher | None = None
        self.devices: list[SoakDevice] = []
        self.sequence = itertools.count(1)
        self.checked_truth: dict[str, int] = {}
        self.announcing: list[asyncio.Task[None]] = []
        self.converged_in = float("nan")
        self.connected_at_end = 0
        self.store_figures = {"notifications": 0, "seen": 0}

    def targets(self) -> list[tuple[str, str]]:
        assert self.proxy is not None
        direct = [(node.name, node.url) for node in self.nodes.nodes]
        # Half the connections through the load balancer, half straight to a node.
        return [("proxy", self.proxy.url)] * len(direct) + direct

    def some_created(self, rng: random.Random, n: int) -> list[str]:
        ids = list(self.record.created)
        return [rng.choice(ids) for _ in range(min(n, len(ids)))]

    # -- the run -----------------------------------------------------------------

    async def run(self) -> int:
        cfg = self.config
        started = time.monotonic()
        await asyncio.to_thread(self.cluster.start if self.cluster else self.redis.start)
        try:
            await asyncio.gather(*(self.nodes.spawn(f"n{i + 1}") for i in range(cfg.nodes)))
            self.proxy = await RoundRobinProxy([n.port for n in self.nodes.nodes]).start()
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as self.http:
                self.publisher = Publisher(
                    store_url=f"sqlite:///{self.db}",
                    redis_url=self.redis_url,
                    routing=self.routing,
                    store_timeout=3,
                )
                try:
                    await self._traffic_and_faults()
                    self.checked_truth = await self._settle_and_check_counts()
                finally:
                    for device in self.devices:
                        await device.close()
                    await self.publisher.close()
        finally:
            if self.proxy is not None:
                await self.proxy.close()
            await self._stop_nodes()
            await asyncio.to_thread(self.cluster.stop if self.cluster else self.redis.stop)
        self._check_store()
        self._report(time.monotonic() - started)
        return 1 if self.record.violations else 0

    async def _traffic_and_faults(self) -> None:
        cfg = self.config
        users = cfg.user_ids
        self.devices = [
            SoakDevice(self, i, users[i % len(users)]) for i in range(1, cfg.devices + 1)
        ]
        until = time.monotonic() + cfg.seconds
        work = [asyncio.create_task(device.run(until)) for device in self.devices]
        work += [asyncio.create_task(self._create(i, until)) for i in range(2)]
        work.append(asyncio.create_task(self._faults(until)))
        done = await asyncio.gather(*work, return_exceptions=True)
        # Records stored but not announced yet are announced before the check.
        done += await asyncio.gather(*self.announcing, return_exceptions=True)
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _create(self, index: int, until: float) -> None:
        rng = random.Random(f"{self.config.seed}:creator{index}")
        users = self.config.user_ids
        record = self.record
        while time.monotonic() < until:
            await asyncio.sleep(rng.expovariate(self.config.create_rate / 2))
            user = rng.choice(users)
            data = {"user": user, "k": next(self.sequence)}
            if rng.random() < 0.75:
                node = rng.choice(self.nodes.nodes)
                try:
                    assert self.http is not None
                    async with self.http.post(
                        f"{node.url}/api/v1/notifications",
                        json={"user_id": user, "data": data},
                        headers={"Authorization": f"Bearer {API_TOKEN}"},
                        timeout=aiohttp.ClientTimeout(total=5),
                    ) as response:
                        body = await response.json(content_type=None)
                        if response.status == 201:
                            record.created[body["id"]] = user
                            record.ops["create_http_ok"] += 1
                        else:
                            record.ops[f"create_http_{response.status}"] += 1
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    record.ops["create_http_failed"] += 1
            else:
                assert self.publisher is not None
                try:
                    async with asyncio.timeout(10):
                        nid = await self.publisher.notify(user, data)
                except NotAnnounced as exc:
                    # Stored, and the publisher says so: announce it, as an app must.
                    for nid in exc.notification_ids:
                        record.created[nid] = user
                        self.announcing.append(asyncio.create_task(self._announce(user, nid)))
                    record.ops["create_publisher_not_announced"] += 1
                except Exception:
                    record.ops["create_publisher_failed"] += 1
                    logger.warning("publisher failed", exc_info=True)
                else:
                    record.created[nid] = user
                    record.ops["create_publisher_ok"] += 1

    async def _announce(self, user: str, nid: str) -> None:
        assert self.publisher is not None
        for _ in range(ANNOUNCE_TRIES):
            try:
                async with asyncio.timeout(10):
                    await self.publisher.announce(user, nid)
            except Exception:
                await asyncio.sleep(0.5)
            else:
                self.record.ops["announce_again_ok"] += 1
                return
        self.record.violation(f"{nid} of {user} could not be announced in time", nid)

    def _some_redis(self) -> RedisProcess:
        """The Redis a fault hits: the one, or a running node of the cluster (a primary
        killed for long enough is failed over to its replica)."""
        if self.cluster is None:
            return self.redis
        return self.rng.choice([n for n in self.cluster.nodes if n.running])

    async def _stall_redis(self, seconds: float) -> None:
        port = self._some_redis().port
        client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        try:
            await client.execute_command("CLIENT", "PAUSE", str(int(seconds * 1000)), "WRITE")
            await asyncio.sleep(seconds)
        except (RedisError, OSError):
            logger.warning("could not stall redis", exc_info=True)
        finally:
            await client.aclose()

    async def _faults(self, until: float) -> None:
        rng = self.rng
        while True:
            await asyncio.sleep(rng.uniform(0.5, 1.5) * self.config.fault_every)
            if time.monotonic() >= until:
                return
            kind = rng.choices(list(FAULTS), list(FAULTS.values()))[0]
            self.record.faults[kind] += 1
            down_for = rng.uniform(0.2, 2.0)
            if kind == "redis_stall":
                await self._stall_redis(rng.uniform(2.5, 6.0))
                continue
            if kind == "redis_restart":
                redis = self._some_redis()
                await asyncio.to_thread(redis.stop)
                await asyncio.sleep(down_for)
                await asyncio.to_thread(redis.start)
                continue
            node = rng.choice(self.nodes.nodes)
            if kind == "node_kill":
                await node.kill()
            else:
                node.terminate()
                await self._expect_clean_exit(node, timeout=2 + 15)
            await asyncio.sleep(down_for)
            await self._bring_back(node)

    async def _expect_clean_exit(self, node: NodeProcess, timeout: float) -> None:
        try:
            status = await node.wait(timeout)
        except TimeoutError:
            self.record.violation(f"{node.name} still running {timeout}s after SIGTERM")
            await node.kill()
            return
        if status != 0:
            self.record.violation(f"{node.name} exited {status} after SIGTERM (see {node.log})")

    async def _bring_back(self, node: NodeProcess) -> None:
        for attempt in range(3):
            try:
                await node.start()
                return
            except NodeStartError as exc:
                logger.warning("restart %d of %s failed: %s", attempt + 1, node.name, exc)
        self.record.violation(f"{node.name} did not come back (see {node.log})")

    async def _stop_nodes(self) -> None:
        running = [node for node in self.nodes.nodes if node.running]
        for node in running:
            node.terminate()
        for node in running:
            await self._expect_clean_exit(node, timeout=15)

    # -- the checks ------------------------------------------------------------------

    def _read_store(self) -> list[tuple[str, str, str | None]]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            return list(
                conn.execute("SELECT notification_id, user_id, seen_date FROM notifications")
            )

    def _truth(self) -> dict[str, int]:
        unseen: Counter[str] = Counter()
        for _, user, seen in self._read_store():
            if seen is None:
                unseen[user] += 1
        return {user: unseen[user] for user in self.config.user_ids}

    async def _settle_and_check_counts(self) -> dict[str, int]:
        """Faults are over: every node up and subscribed, every device connected; then
        every device's kept count must reach the store's truth, within the deadline."""
        cfg, record = self.config, self.record
        until = time.monotonic() + cfg.settle
        for node in self.nodes.nodes:
            if not node.running:
                await self._bring_back(node)
            try:
                await node.wait_answer(
                    "/readyz",
                    lambda status, body: status == 200 and json.loads(body)["broker"] == "up",
                    max(1.0, until - time.monotonic()),
                )
            except TimeoutError as exc:
                record.violation(str(exc))
        connected = await asyncio.gather(*(d.ensure_connected(until) for d in self.devices))
        for device, ok in zip(self.devices, connected, strict=True):
            if not ok:
                record.violation(f"{device.name} could not reconnect within {cfg.settle}s")
        truth = self._truth()
        settle_started = time.monotonic()

        def wrong() -> list[SoakDevice]:
            return [
                d
                for d in self.devices
                if d.conn is not None
                and d.conn.alive
                and (d.conn.kept is None or d.conn.kept["count"] != truth[d.user])
            ]

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(1.0, until - time.monotonic())):
                while wrong():
                    self.changed.clear()
                    await self.changed.wait()
        self.converged_in = time.monotonic() - settle_started
        for device in wrong():
            assert device.conn is not None
            record.violation(
                f"{device.name} (user {device.user}, via {device.conn.target}) keeps "
                f"{device.conn.kept}, the store says {truth[device.user]} unseen"
            )
        self.connected_at_end = sum(1 for d in self.devices if d.conn and d.conn.alive)
        return truth

    def _check_store(self) -> None:
        record = self.record
        rows = self._read_store()
        owner = {nid: user for nid, user, _ in rows}
        seen = {nid: user for nid, user, seen_date in rows if seen_date is not None}
        self.store_figures = {"notifications": len(rows), "seen": len(seen)}
        self._check_seen(seen)
        self._check_deliveries(owner)
        if record.delivered_total > len(seen):
            record.violation(
                f"nodes confirmed {record.delivered_total} seen; the store has {len(seen)}"
            )
        truth = self._truth()
        if truth != self.checked_truth:
            record.violation(f"unseen counts changed after traffic stopped: {truth}")

    def _check_seen(self, seen: dict[str, str]) -> None:
        """Seen only by an acknowledgement, in time, of its own user; confirmed ones are seen."""
        record = self.record
        accepted_by = defaultdict(set)
        for user, ids in record.accepted.items():
            for nid in ids:
                accepted_by[nid].add(user)
        for nid, user in seen.items():
            if nid in record.accepted[user]:
                continue
            if accepted_by[nid]:
                record.violation(f"{nid} of {user} seen, accepted only by {accepted_by[nid]}", nid)
            elif nid in record.late[user]:
                record.violation(f"{nid} of {user} seen after only a late acknowledgement", nid)
            else:
                record.violation(f"{nid} of {user} seen without any acknowledgement", nid)
        for user, ids in record.confirmed.items():
            for nid in ids - set(seen):
                record.violation(f"{nid} of {user}: acknowledgement confirmed, still unseen", nid)

    def _check_deliveries(self, owner: dict[str, str]) -> None:
        """Delivered only to its own user; every creation the API confirmed is stored."""
        record = self.record
        for nid, users in record.received_by.items():
            if nid not in owner:
                record.violation(f"{nid} delivered to {users} but not in the store", nid)
            elif users != {owner[nid]}:
                record.violation(f"{nid} of {owner[nid]} delivered to devices of {users}", nid)
        for nid, user in record.created.items():
            if owner.get(nid) != user:
                record.violation(f"{nid} created for {user}; the store says {owner.get(nid)}")

    def _report(self, took: float) -> None:
        cfg, record = self.config, self.record
        out = sys.stdout

        def line(text: str) -> None:
            out.write(text + "\n")

        line(
            f"soak: routing={cfg.routing} seed={cfg.seed} seconds={cfg.seconds:g} "
            f"devices={cfg.devices} "
            f"users={len(cfg.user_ids)} nodes={cfg.nodes} ran={took:.0f}s workdir={self.workdir}"
        )
        line("operations:")
        for name, value in sorted(record.ops.items()):
            line(f"  {name:32} {value}")
        line("faults injected:")
        for name in FAULTS:
            line(f"  {name:32} {record.faults[name]}")
        line(
            "store: notifications={notifications} seen={seen}".format(**self.store_figures)
            + f" unseen={self.store_figures['notifications'] - self.store_figures['seen']}"
        )
        line(
            f"end: {self.connected_at_end}/{cfg.devices} devices connected, counts converged "
            f"in {self.converged_in:.2f}s"
        )
        line(f"violations: {len(record.violations)}")
        for text in record.violations[:MAX_VIOLATIONS_SHOWN]:
            line(f"  - {text}")
        if len(record.violations) > MAX_VIOLATIONS_SHOWN:
            line(f"  ... {len(record.violations) - MAX_VIOLATIONS_SHOWN} more in the log")
        out.flush()


def parse_args(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--users", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--think", type=float, default=1.5)
    parser.add_argument("--fault-every", type=float, default=5.0)
    parser.add_argument("--create-rate", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=30.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the workdir even on success")
    parser.add_argument(
        "--routing", choices=("broadcast", "routed", "cluster"), default="broadcast"
    )
    args = parser.parse_args(argv)
    return Config(
        seconds=args.seconds,
        devices=args.devices,
        users=args.users,
        seed=args.seed,
        think=args.think,
        fault_every=args.fault_every,
        create_rate=args.create_rate,
        settle=args.settle,
        workdir=args.workdir,
        keep=args.keep,
        routing=args.routing,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="pns-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=workdir / "soak.log",
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # python-socketio's publisher logs every failed publish while Redis is down: expected here.
    logging.getLogger("socketio").setLevel(logging.CRITICAL)
    soak = Soak(config, workdir)
    try:
        status = asyncio.run(soak.run())
    except Exception:
        logger.exception("soak could not run")
        print(f"soak could not run; logs in {workdir}", file=sys.stderr)
        print(soak.nodes.report(), file=sys.stderr)
        return 2
    if status == 0 and not config.keep and config.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs kept in {workdir}")
    return status


if __name__ == "__main__":
    sys.exit(main())
