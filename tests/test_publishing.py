"""Applications create notifications: Python publisher, HTTP API, CLI (issue: publishing)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import threading
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from pns_sio import Publisher, SyncPublisher
from pns_sio.errors import InvalidRequest, NotAnnounced, SettingsError, StoreUnavailable
from pns_sio.http_api import body_fingerprint, derived_ids

from .support.api import API_TOKEN, notify
from .support.databases import fresh_mongo_database
from .support.outages import sqlite_write_locked
from .support.ports import free_port
from .support.processes import run_pns

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def devices_of(connect, cluster, user: str = "42"):
    devices = [await connect(node, user) for node in cluster]
    for device in devices:
        await device.wait_count(0)
    return devices


def run_cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    return run_pns("notify", *args, env=env, stdin=stdin)


async def test_async_publisher_reaches_devices_on_every_node(
    cluster, connect, redis_server, sqlite_url
) -> None:
    devices = await devices_of(connect, cluster)
    async with Publisher(store_url=sqlite_url, redis_url=redis_server.url) as publisher:
        nid = await publisher.notify("42", {"text": "from asyncio"})
        await publisher.notify(42, {"text": "integer id"})
    for device in devices:
        await device.wait_count(2)
    record = await cluster[0].node.store.get(nid)
    assert record is not None and record.data == {"text": "from asyncio"}


async def test_sync_publisher_works_from_a_plain_thread(
    cluster, connect, redis_server, sqlite_url
) -> None:
    devices = await devices_of(connect, cluster)
    result: dict[str, object] = {}

    def flask_view() -> None:  # no event loop of its own, like a Flask request thread
        with SyncPublisher(store_url=sqlite_url, redis_url=redis_server.url) as publisher:
            result["ids"] = [publisher.notify("42", {"n": n}) for n in range(3)]

    thread = threading.Thread(target=flask_view)
    thread.start()
    await asyncio.to_thread(thread.join, 30)
    assert len(result["ids"]) == 3  # type: ignore[arg-type]
    for device in devices:
        await device.wait_count(3)


async def test_sync_publisher_from_env(monkeypatch, redis_server, sqlite_url) -> None:
    env = {"PNS_STORE_URL": sqlite_url, "PNS_REDIS_URL": redis_server.url}
    publisher = SyncPublisher.from_env(env)
    nid = await asyncio.to_thread(publisher.notify, "7", {})
    await asyncio.to_thread(publisher.close)
    assert ObjectId.is_valid(nid)


async def test_announce_signals_a_record_the_application_inserted_itself(
    cluster, connect, redis_server, sqlite_url
) -> None:
    devices = await devices_of(connect, cluster)
    nid = str(ObjectId())
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        db.execute(
            "INSERT INTO notifications VALUES (?, '42', '{\"text\": \"raw\"}', ?, NULL)",
            (nid, datetime.now(UTC).isoformat()),
        )
    async with Publisher(store_url=sqlite_url, redis_url=redis_server.url) as publisher:
        await publisher.announce("42", nid)
    for device in devices:
        kept = await device.wait_count(1)
        assert kept["rev"] == 1


async def test_resync_pushes_the_true_count_after_the_app_marks_records_itself(
    cluster, connect, http, redis_server, sqlite_url
) -> None:
    devices = await devices_of(connect, cluster)
    for _ in range(2):
        await notify(http, cluster[0], "42")
    for device in devices:
        await device.wait_count(2)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE notifications SET seen_date = ? WHERE user_id = '42'", ("2026-01-01",))
    async with Publisher(store_url=sqlite_url, redis_url=redis_server.url) as publisher:
        assert await publisher.resync("42") == 3
    for device in devices:
        await device.wait_count(0)
    async with http.post(f"{cluster[1].url}/api/v1/users/42/resync", headers=AUTH) as response:
        assert response.status == 200
        assert await response.json() == {"user_id": "42", "rev": 4}


@pytest.mark.parametrize(
    ("user", "data", "field"),
    [
        ("", {}, "user_id"),
        (True, {}, "user_id"),
        ("42", "text", "data"),
        ("42", {"x": object()}, "data"),
        ("42", {"x": float("nan")}, "data"),
        ("42", {"x": "y" * 20000}, "data"),
    ],
)
async def test_publisher_refuses_bad_input_and_stores_nothing(
    node, redis_server, sqlite_url, user, data, field
) -> None:
    async with Publisher(store_url=sqlite_url, redis_url=redis_server.url) as publisher:
        with pytest.raises(InvalidRequest) as refused:
            await publisher.notify(user, data)
    assert field in refused.value.fields
    assert (await node.node.store.unseen("42")).count == 0


def test_publisher_needs_redis() -> None:
    with pytest.raises(SettingsError, match="PNS_REDIS_URL"):
        Publisher(store_url="sqlite:///x.db", redis_url=None)


async def test_store_failure_raises_and_signals_nothing(
    cluster, connect, redis_server, sqlite_url
) -> None:
    device, _ = await devices_of(connect, cluster)
    publisher = Publisher(store_url=sqlite_url, redis_url=redis_server.url, store_timeout=0.3)
    await publisher.notify("42", {})
    await device.wait_count(1)
    signals = cluster[0].metric("pns_signals_total", handled="yes")
    with sqlite_write_locked(sqlite_url), pytest.raises(StoreUnavailable):
        await publisher.notify("42", {})
    # A later notification's signal arrives after any signal of the failed one would have.
    await publisher.notify("42", {})
    await device.wait_count(2)
    await publisher.close()
    assert cluster[0].metric("pns_signals_total", handled="yes") == signals + 1


async def test_redis_down_during_notify_keeps_the_record_says_so_and_counts_converge(
    start_node, connect, sqlite_url, tmp_path
) -> None:
    from .support.redis import RedisProcess

    redis = RedisProcess(tmp_path)
    redis.start()
    try:
        nodes = [await start_node(redis_url=redis.url) for _ in range(2)]
        for running in nodes:
            await running.node.broker_ready.wait()
        devices = await devices_of(connect, nodes)
        redis.stop()
        for running in nodes:
            await running.node.broker_down.wait()
        async with Publisher(store_url=sqlite_url, redis_url=redis.url) as publisher:
            with pytest.raises(NotAnnounced) as not_announced:
                await publisher.notify("42", {"text": "while redis was down"})
        # Stored, and said so: the error names the record that stands unannounced.
        [nid] = not_announced.value.notification_ids
        assert nid in not_announced.value.message
        assert await nodes[0].node.store.get(nid) is not None
        redis.start()
        for device in devices:
            await device.wait_count(1, timeout=10)
    finally:
        redis.stop()


# -- HTTP API: idempotency, batch -------------------------------------------------------


async def post(http, node, path, body, key=None):
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    async with http.post(f"{node.url}{path}", json=body, headers=headers) as response:
        return response.status, await response.json(), response.headers


async def test_idempotency_key_makes_a_retry_safe_on_any_node(cluster, http, connect) -> None:
    body = {"user_id": "42", "data": {"text": "once"}}
    first = await post(http, cluster[0], "/api/v1/notifications", body, key="order-17")
    again = await post(http, cluster[1], "/api/v1/notifications", body, key="order-17")
    assert first[0] == again[0] == 201
    assert first[1] == again[1]
    assert again[2].get("Idempotent-Replayed") == "true"
    assert (await cluster[0].node.store.unseen("42")).count == 1
    other = await post(
        http, cluster[0], "/api/v1/notifications", {**body, "data": {"text": "twice"}}, "order-17"
    )
    assert other[0] == 422
    assert other[1]["error"]["code"] == "idempotency_key_reused"
    assert (await cluster[0].node.store.unseen("42")).count == 1
    fresh = await post(http, cluster[0], "/api/v1/notifications", body, key="order-18")
    assert fresh[0] == 201 and fresh[1]["id"] != first[1]["id"]


async def test_bad_idempotency_key_is_400(node, http) -> None:
    body = {"user_id": "42", "data": {}}
    status, answer, _ = await post(http, node, "/api/v1/notifications", body, key="has space")
    assert status == 400
    assert "Idempotency-Key" in answer["error"]["fields"]


async def test_batch_creates_all_and_counts_reach_both_nodes(cluster, http, connect) -> None:
    alice = await devices_of(connect, cluster, "alice")
    bob = await devices_of(connect, cluster, "bob")
    items = [{"user_id": u, "data": {"n": n}} for n, u in enumerate(["alice", "bob", "alice"])]
    status, answer, _ = await post(
        http, cluster[0], "/api/v1/notifications/batch", {"notifications": items}
    )
    assert status == 201
    assert len(answer["ids"]) == 3
    for device in alice:
        await device.wait_count(2)
    for device in bob:
        await device.wait_count(1)


async def test_batch_with_one_bad_item_stores_nothing_and_names_it(node, http) -> None:
    items = [{"user_id": "42", "data": {}} for _ in range(5)]
    items[3] = {"user_id": "42", "data": "not an object"}
    status, answer, _ = await post(
        http, node, "/api/v1/notifications/batch", {"notifications": items}
    )
    assert status == 400
    assert "notifications.3.data" in answer["error"]["fields"]
    assert (await node.node.store.unseen("42")).count == 0


async def test_batch_limits(start_node, http) -> None:
    node = await start_node(max_notification_bytes=50)
    too_many = [{"user_id": "42", "data": {}} for _ in range(1001)]
    status, answer, _ = await post(
        http, node, "/api/v1/notifications/batch", {"notifications": too_many}
    )
    assert status == 400 and "notifications" in answer["error"]["fields"]
    big = [{"user_id": "42", "data": {}}, {"user_id": "42", "data": {"x": "y" * 100}}]
    status, answer, _ = await post(
        http, node, "/api/v1/notifications/batch", {"notifications": big}
    )
    assert status == 400 and "notifications.1.data" in answer["error"]["fields"]
    assert (await node.node.store.unseen("42")).count == 0


async def test_batch_store_failure_is_503_with_nothing_stored(start_node, http, sqlite_url) -> None:
    node = await start_node(store_url=sqlite_url, store_timeout=0.3)
    items = [{"user_id": "42", "data": {"n": n}} for n in range(10)]
    with sqlite_write_locked(sqlite_url):
        status, answer, _ = await post(
            http, node, "/api/v1/notifications/batch", {"notifications": items}, key="b-1"
        )
    assert status == 503
    assert (await node.node.store.unseen("42")).count == 0
    # The failed attempt released its key: the retry goes through.
    status, answer, _ = await post(
        http, node, "/api/v1/notifications/batch", {"notifications": items}, key="b-1"
    )
    assert status == 201 and len(answer["ids"]) == 10


# -- CLI -------------------------------------------------------------------------------


async def test_cli_notify_through_store_and_redis(cluster, connect, redis_server, sqlite_url):
    devices = await devices_of(connect, cluster)
    env = {"PNS_STORE_URL": sqlite_url, "PNS_REDIS_URL": redis_server.url}
    done = await asyncio.to_thread(run_cli, "--user", "42", "--data", '{"text": "hi"}', env=env)
    assert done.returncode == 0, done.stderr
    assert ObjectId.is_valid(done.stdout.strip())
    for device in devices:
        await device.wait_count(1)
    lines = "".join(json.dumps({"user_id": u, "data": {"n": 1}}) + "\n" for u in ["42", "7", "42"])
    bulk = await asyncio.to_thread(run_cli, env=env, stdin=lines)
    assert bulk.returncode == 0, bulk.stderr
    assert len(bulk.stdout.split()) == 3
    for device in devices:
        await device.wait_count(3)


async def test_cli_notify_through_an_unreachable_redis_says_stored_not_announced(
    sqlite_url,
) -> None:
    from pns_sio.store import open_store

    env = {"PNS_STORE_URL": sqlite_url, "PNS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    done = await asyncio.to_thread(run_cli, "--user", "42", "--data", '{"text": "hi"}', env=env)
    assert done.returncode == 1, done.stdout
    assert done.stdout == ""
    assert "not announced" in done.stderr
    stored = done.stderr.split("stored as ")[1].split()[0]
    # The record stands: the store is the truth, and it names which one.
    store = await open_store(sqlite_url)
    try:
        record = await store.get(stored)
        assert record is not None and record.user_id == "42"
    finally:
        await store.close()


async def test_cli_notify_through_the_http_api(node, connect) -> None:
    device = await connect(node, "42")
    env = {"PNS_API_TOKEN": API_TOKEN}
    done = await asyncio.to_thread(
        run_cli, "--url", node.url, "--user", "42", "--data", "{}", env=env
    )
    assert done.returncode == 0, done.stderr
    await device.wait_count(1)
    lines = '{"user_id": "42", "data": {}}\n{"user_id": "42", "data": {"a": 1}}\n'
    bulk = await asyncio.to_thread(run_cli, "--url", node.url, env=env, stdin=lines)
    assert bulk.returncode == 0 and len(bulk.stdout.split()) == 2
    await device.wait_count(3)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--user", "42", "--data", "{not json"], "", "--data: data is not valid JSON"),
        (["--user", "42", "--data", "[1]"], "", "--data: invalid data"),
        (["--user", "", "--data", "{}"], "", "--user: invalid user_id"),
        ([], '{"user_id": "42", "data": {}}\n{"user_id": "42"}\n', "line 2"),
        ([], '{"user_id": "42", "data": {}}\nnot json\n', "line 2: not valid JSON"),
        ([], "", "nothing to send"),
    ],
)
async def test_cli_bad_input_is_one_line_and_stores_nothing(
    node, redis_server, sqlite_url, args, stdin, message
) -> None:
    env = {"PNS_STORE_URL": sqlite_url, "PNS_REDIS_URL": redis_server.url}
    done = await asyncio.to_thread(run_cli, *args, env=env, stdin=stdin)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr
    assert done.stdout == ""
    assert (await node.node.store.unseen("42")).count == 0


async def test_cli_without_redis_says_to_use_url(node, sqlite_url) -> None:
    env = {"PNS_STORE_URL": sqlite_url, "PNS_REDIS_URL": ""}
    done = await asyncio.to_thread(run_cli, "--user", "42", "--data", "{}", env=env)
    assert done.returncode == 2
    assert "--url" in done.stderr
    assert (await node.node.store.unseen("42")).count == 0


# -- retention -------------------------------------------------------------------------


async def test_retention_deletes_old_seen_notifications_only(start_node, sqlite_url) -> None:
    node = await start_node(store_url=sqlite_url, retention_days=1)
    store = node.node.store
    old_seen, old_unseen, new_seen = [(await store.create("42", {})).id for _ in range(3)]
    await store.mark_seen("42", [old_seen, new_seen])
    long_ago = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        db.execute(
            "UPDATE notifications SET seen_date = ?, creation_date = ? WHERE notification_id = ?",
            (long_ago, long_ago, old_seen),
        )
        db.execute(
            "UPDATE notifications SET creation_date = ? WHERE notification_id = ?",
            (long_ago, old_unseen),
        )
    assert await node.node.retention.purge_expired() == 1
    assert await store.get(old_seen) is None
    assert await store.get(old_unseen) is not None
    assert await store.get(new_seen) is not None


@pytest.mark.parametrize("backend", ["sqlite", "mongo"])
async def test_a_retry_after_an_unknown_outcome_creates_nothing_twice(
    request, backend, start_node, http, connect
) -> None:
    if backend == "mongo":
        url = fresh_mongo_database(request.getfixturevalue("mongo_url"), request.node.name)
        node = await start_node(store_url=url)
    else:
        node = await start_node()
    path = "/api/v1/notifications/batch"
    body = {"notifications": [{"user_id": "42", "data": {"n": n}} for n in range(3)]}
    # The first try's records were written, but its caller never heard (the store call
    # timed out after the database applied it: 503, and the key was released).
    ids = derived_ids(f"{path}:order-9", body_fingerprint(body), 3)
    items = [(item["user_id"], item["data"]) for item in body["notifications"]]
    first = await node.node.store.create_many(items, ids=ids)
    status, answer, _ = await post(http, node, path, body, key="order-9")
    assert status == 201
    assert answer["ids"] == [c.id for c in first]
    assert (await node.node.store.unseen("42")).count == 3
    device = await connect(node, "42")
    await device.wait_count(3)
    assert await device.fetch() == {"ok": True, "delivered": 3, "has_more": False}
