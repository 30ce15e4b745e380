"""`make test`'s runner (.ci/make_test.py): every step runs, one summary, the counts
read from each step's own output, a failure fails the whole at the end."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

RUNNER = runpy.run_path(str(Path(__file__).resolve().parent.parent / ".ci" / "make_test.py"))
INFO = "\u2139"  # node's test reporter starts its summary lines with it


def test_the_summary_reads_pytests_last_line() -> None:
    last = "========= 505 passed, 2 skipped in 121.37s (0:02:01) ========="
    assert RUNNER["counts"]("pytest", ["tests/test_x.py ....", last]) == "505 passed, 2 skipped"


def test_the_summary_reads_nodes_test_reporter() -> None:
    lines = [f"{INFO} tests 31", f"{INFO} pass 30", f"{INFO} fail 1", f"{INFO} skipped 0"]
    assert RUNNER["counts"]("JS client", lines) == "30 pass, 1 fail"


def test_a_failing_step_does_not_stop_the_next_and_fails_at_the_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    main = RUNNER["main"]
    steps = [
        ("first", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path),
        ("second", [sys.executable, "-c", "print('second ran')"], tmp_path),
    ]
    monkeypatch.setitem(main.__globals__, "steps", lambda: steps)
    assert main() == 1
    out = capsys.readouterr().out
    assert "second ran" in out
    assert "FAIL first" in out and "ok   second" in out
    assert "make test: failed: first" in out
