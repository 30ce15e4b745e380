"""Randomized races across two nodes: counts converge, nothing is lost or leaked.

Seeded; the seed is in the test id and in every failure message
(PNS_RACE_SEED=<n> replays one).
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

import pytest

from .support.api import notify

SEEDS = [int(os.environ["PNS_RACE_SEED"])] if "PNS_RACE_SEED" in os.environ else [1, 2, 3]
USERS = ["u1", "u2", "u3"]
NOTIFICATIONS = 60
FETCHES_PER_DEVICE = 6


@pytest.mark.parametrize("seed", SEEDS)
async def test_random_fetches_and_creates_converge(
    seed, start_node, connect, http, redis_server
) -> None:
    rng = random.Random(seed)
    nodes = [
        await start_node(redis_url=redis_server.url, ack_timeout=0.3),
        await start_node(redis_url=redis_server.url, ack_timeout=0.3),
    ]
    for running in nodes:
        await running.node.broker_ready.wait()
    accepted: dict[str, set[str]] = {user: set() for user in USERS}
    devices = []
    for user in USERS:
        for _ in range(3):
            device = await connect(rng.choice(nodes), user)
            device.user = user  # type: ignore[attr-defined]
            device.ack_with = make_policy(rng, user, accepted)
            devices.append(device)
    for device in devices:
        await device.wait_count(0)
    created: dict[str, str] = {}

    async def create() -> None:
        for _ in range(NOTIFICATIONS):
            user = rng.choice(USERS)
            created[await notify(http, rng.choice(nodes), user)] = user
            await asyncio.sleep(rng.random() * 0.01)  # pacing, not waiting

    async def fetch(device: Any) -> None:
        for _ in range(FETCHES_PER_DEVICE):
            answer = await device.fetch({"limit": rng.randint(1, 5)})
            assert answer["ok"] or answer["error"]["code"] in ("timeout", "invalid_request"), (
                f"seed={seed}: {answer}"
            )
            await asyncio.sleep(rng.random() * 0.02)

    await asyncio.gather(create(), *(fetch(d) for d in devices))

    store = nodes[0].node.store
    for device in devices:
        truth = (await store.unseen(device.user)).count
        try:
            await device.wait_count(truth, timeout=10)
        except TimeoutError:
            pytest.fail(f"seed={seed}: {device.name} kept {device.kept}, store says {truth}")
    for nid, user in created.items():
        record = await store.get(nid)
        assert record is not None and record.user_id == user
        if record.seen_at is not None:
            assert nid in accepted[user], f"seed={seed}: {nid} seen without an ack by {user}"
    for device in devices:
        assert all(created.get(nid) == device.user for nid in device.delivered_ids), (
            f"seed={seed}: {device.name} received another user's notification"
        )


def make_policy(rng: random.Random, user: str, accepted: dict[str, set[str]]):
    """A device that acks all, some, none, garbage, or too late, at random."""

    def decide(batch: dict[str, Any]) -> Any:
        ids = [n["id"] for n in batch["notifications"]]
        choice = rng.choice(["all", "all", "some", "none", "garbage", "null", "late"])
        if choice in ("all", "null"):
            accepted[user].update(ids)
            return None if choice == "all" else (None,)
        if choice == "some":
            some = rng.sample(ids, rng.randint(0, len(ids)))
            accepted[user].update(some)
            return {"received": some}
        if choice == "none":
            return {"received": []}
        if choice == "late":
            return ack_after_the_timeout()
        return {"received": "everything"}

    async def ack_after_the_timeout() -> None:
        await asyncio.sleep(0.4)  # the node's ack timeout is 0.3 s: this ack must mark nothing

    return decide
