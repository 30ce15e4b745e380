"""The OpenAPI document, and schemathesis against the live HTTP API."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from .support.api import API_TOKEN

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


async def test_openapi_document_lists_the_api(node, http) -> None:
    async with http.get(f"{node.url}/api/v1/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    assert set(document["paths"]) == {
        "/api/v1/notifications",
        "/api/v1/notifications/batch",
        "/api/v1/users/{user_id}/resync",
    }
    create = document["paths"]["/api/v1/notifications"]["post"]
    assert {"201", "400", "401", "413", "415", "422", "503"} <= set(create["responses"])


async def test_schemathesis_finds_no_failure(start_node) -> None:
    node = await start_node(demo=False, jwt_secret="x" * 32)
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        f"{node.url}/api/v1/openapi.json",
        "--checks",
        "all",
        "-H",
        f"Authorization: Bearer {API_TOKEN}",
        "--max-examples",
        "40",
        "--seed",
        "20261126",
        "--workers",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=240)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    assert "No issues found" in text
