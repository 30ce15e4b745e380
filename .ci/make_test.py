"""`make test`: every step runs whatever an earlier one did, then one summary of them all.

Run by the Makefile with the project's venv. A step's output streams as it runs; its
counts are read from its own summary lines (pytest's last line, node's test reporter).
The exit status is 1 when any step failed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
JS = ROOT / "clients" / "js"
NODE = os.environ.get("NODE", "node")
JS_NODE_TESTS = ["test/client.test.js", "test/reconnect.test.js", "test/package.test.js"]
CHECKED = ["pns_sio", "tests", "examples", "bench", ".ci"]


def steps() -> list[tuple[str, list[str], Path]]:
    pytest_args = shlex.split(os.environ.get("PYTEST_ARGS", ""))
    node_test = [NODE, "--test", "--test-reporter=spec"]
    return [
        ("ruff check", [str(BIN / "ruff"), "check", *CHECKED], ROOT),
        ("ruff format", [str(BIN / "ruff"), "format", "--check", *CHECKED], ROOT),
        ("mypy", [str(BIN / "mypy")], ROOT),
        ("pytest", [str(BIN / "pytest"), *pytest_args], ROOT),
        ("JS bundle", [NODE, "build.mjs", "--check"], JS),
        ("JS client", [*node_test, *JS_NODE_TESTS], JS),
        ("Chromium", [*node_test, "test/e2e.test.js", "test/tabs.test.js"], JS),
    ]


def counts(name: str, lines: list[str]) -> str:
    text = "\n".join(lines[-400:])
    if name == "pytest":
        found = re.findall(r"=+ (.*?) in [\d.]+s", text)
        return found[-1] if found else ""
    node = dict(re.findall(r"\u2139 (pass|fail|skipped|cancelled) (\d+)", text))
    if node:
        return ", ".join(f"{n} {k}" for k, n in node.items() if k == "pass" or n != "0")
    return ""


def main() -> int:
    env = {**os.environ, "PNS_BIN": str(BIN / "pns"), "PYTHONUNBUFFERED": "1"}
    summary: list[tuple[str, bool, str, float]] = []
    for name, argv, cwd in steps():
        print(f"\n=== {name}: {' '.join(argv)}", flush=True)
        started = time.monotonic()
        lines: list[str] = []
        with subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                lines.append(line.rstrip("\n"))
                del lines[:-2000]
        ok = proc.returncode == 0
        summary.append((name, ok, counts(name, lines), time.monotonic() - started))
    print("\n=== make test: summary")
    width = max(len(name) for name, *_ in summary)
    for name, ok, what, seconds in summary:
        status = "ok  " if ok else "FAIL"
        print(f"  {status} {name.ljust(width)}  {what or '-'}  ({seconds:.0f} s)")
    failed = [name for name, ok, *_ in summary if not ok]
    if failed:
        print(f"make test: failed: {', '.join(failed)}")
        return 1
    print("make test: every step passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
