"""Every node serves the browser client: /pns-client.js and its source map."""

from __future__ import annotations

import pytest


@pytest.fixture
async def plain_node(start_node):
    """A node outside demo mode: the client is served there too."""
    return await start_node(demo=False, jwt_secret="x" * 32)


async def test_every_node_serves_the_bundle_with_the_global_pns(plain_node, http) -> None:
    async with http.get(f"{plain_node.url}/pns-client.js") as response:
        assert response.status == 200
        assert response.content_type == "text/javascript"
        assert response.charset == "utf-8"
        body = await response.text()
    assert body.startswith("var PNS=")
    assert body.rstrip().endswith("//# sourceMappingURL=pns-client.js.map")
    async with http.get(f"{plain_node.url}/pns-client.js.map") as response:
        assert response.status == 200
        source_map = await response.json(content_type=None)
    assert any(source.endswith("clients/js/src/pns.js") for source in source_map["sources"])


async def test_an_unchanged_bundle_is_revalidated_with_a_304(plain_node, http) -> None:
    url = f"{plain_node.url}/pns-client.js"
    async with http.get(url) as response:
        etag = response.headers["ETag"]
        assert response.headers["Cache-Control"] == "no-cache"
    async with http.get(url, headers={"If-None-Match": etag}) as response:
        assert response.status == 304
        assert await response.read() == b""
    async with http.get(url, headers={"If-None-Match": '"other"'}) as response:
        assert response.status == 200


async def test_the_demo_page_is_served_only_in_demo_mode(plain_node, node, http) -> None:
    async with http.get(f"{plain_node.url}/demo") as response:
        assert response.status == 404
    async with http.get(f"{node.url}/demo") as response:
        assert response.status == 200
        assert '<script src="/pns-client.js"></script>' in await response.text()
