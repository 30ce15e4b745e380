"""The store goes away and comes back (MongoDB wire server killed and restarted)."""

from __future__ import annotations

from pns_sio.wire import EV_BATCH, EV_COUNT

from .support.api import API_TOKEN
from .support.waiting import eventually


async def test_connection_is_kept_while_the_store_is_down_and_the_count_follows(
    start_node, connect, http, mongo_server
) -> None:
    node = await start_node(store_url=f"{mongo_server.base_url}/pns", store_timeout=0.5)
    mongo_server.stop()
    device = await connect(node, "42")
    async with http.get(f"{node.url}/readyz") as response:
        assert response.status == 503
        assert (await response.json())["store"] == "down"
    async with http.post(
        f"{node.url}/api/v1/notifications",
        json={"user_id": "42", "data": {}},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as response:
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "unavailable"
    answer = await device.fetch()
    assert answer["ok"] is False and answer["error"]["code"] == "unavailable"
    await eventually(lambda: node.metric("pns_store_errors_total", op="unseen") >= 1)
    assert device.sio.connected
    assert device.count_events() == []
    # The stand-in keeps data in memory: it comes back empty, so the count is 0.
    mongo_server.start()
    await device.wait_count(0, timeout=15)
    async with http.get(f"{node.url}/readyz") as response:
        assert response.status == 200


async def test_a_batch_never_comes_before_the_connections_first_count(
    start_node, connect, http, mongo_server
) -> None:
    """PROTOCOL: the count is a connection's first event, even when the store hung
    while the device connected and a fetch is answered before the count's next try."""
    node = await start_node(store_url=f"{mongo_server.base_url}/pns", store_timeout=0.5)
    async with http.post(
        f"{node.url}/api/v1/notifications",
        json={"user_id": "42", "data": {"n": 1}},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as response:
        assert response.status == 201
    mongo_server.freeze()
    try:
        device = await connect(node, "42")
        # The first count's read failed four times: its next try is 0.8 s or more away.
        await eventually(lambda: node.metric("pns_store_errors_total", op="unseen") >= 4)
    finally:
        mongo_server.thaw()
    answer = await device.fetch()
    assert answer == {"ok": True, "delivered": 1, "has_more": False}
    assert [event for event, _ in device.events][:2] == [EV_COUNT, EV_BATCH]
    assert device.events[0][1]["count"] == 1
