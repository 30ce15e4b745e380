"""The load-generator workers' sparse latency histograms: merged, and read as percentiles."""

from __future__ import annotations

import math
from typing import Any

# Histogram geometry: the same as bench/loadgen/hist.js (bucket i's upper bound is
# H_MIN_MS * H_GROWTH**i, so a percentile is at most 1 % above the true value).
H_MIN_MS = 0.01
H_GROWTH = 1.01


def merge_hists(hs: list[dict[str, Any]]) -> dict[str, Any]:
    buckets: dict[int, int] = {}
    n = 0
    mx = 0.0
    total = 0.0
    for h in hs:
        n += h["n"]
        mx = max(mx, h["max"])
        total += h["sum"]
        for i, c in h["b"]:
            buckets[i] = buckets.get(i, 0) + c
    return {"n": n, "max": mx, "sum": total, "b": sorted(buckets.items())}


def pct(h: dict[str, Any], q: float) -> float | None:
    if h["n"] == 0:
        return None
    rank = math.ceil(q * h["n"])
    seen = 0
    for i, c in h["b"]:
        seen += c
        if seen >= rank:
            upper = H_MIN_MS if i == 0 else H_MIN_MS * H_GROWTH**i
            return min(upper, h["max"])
    return float(h["max"])


def summarize(h: dict[str, Any]) -> dict[str, Any]:
    return {
        "n": h["n"],
        "p50_ms": r3(pct(h, 0.50)),
        "p90_ms": r3(pct(h, 0.90)),
        "p99_ms": r3(pct(h, 0.99)),
        "p999_ms": r3(pct(h, 0.999)),
        "max_ms": r3(h["max"]) if h["n"] else None,
        "mean_ms": r3(h["sum"] / h["n"]) if h["n"] else None,
    }


def r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
