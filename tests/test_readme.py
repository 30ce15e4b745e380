"""The README's Python code blocks run as pasted, against a real Redis and store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_a_python_block_runs_as_pasted(block: str, redis_server, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PNS_")}
    env.update(
        PNS_STORE_URL=f"sqlite:///{tmp_path / 'pns.db'}",
        PNS_REDIS_URL=redis_server.url,
        # What the README's application examples read from their environment.
        SECRET_KEY="readme-app-secret-0123456789abcdef0123",
        PNS_JWT_SECRET="readme-jwt-secret-0123456789abcdef0123",
    )
    done = subprocess.run(
        [sys.executable, "-c", block],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
