"""The results table: PNS against the peer, with ratios.

The table is data: ``TABLE`` lists its rows in order, each a label, where its value is in
a target's result and which way is better; ``PerStep`` repeats a group of rows for every
rate either target measured a fan-out step at. ``render_table`` prints it plain or as
Markdown (for RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# Where a value is: keys (and list indexes) into a result, or a function of the result.
KeyPath = tuple[str | int, ...]
Getter = KeyPath | Callable[[Any], Any]

HIGHER, LOWER, NEITHER, ZERO = "higher", "lower", "-", "= 0"


def g(d: Any, *path: str | int) -> Any:
    """The value at ``path`` in ``d``, or None where any step of the way is missing."""
    for k in path:
        if d is None:
            return None
        if isinstance(k, int):
            d = d[k] if isinstance(d, list) and len(d) > k else None
        else:
            d = d.get(k) if isinstance(d, dict) else None
    return d


def sum_or_none(*xs: Any) -> Any:
    return None if any(x is None for x in xs) else sum(xs)


def pair(a: Any, b: Any) -> Any:
    return None if a is None or b is None else f"{a:g} / {b:g}"


def summed(*paths: KeyPath) -> Callable[[Any], Any]:
    """The sum of the values at ``paths`` (None if one is missing)."""
    return lambda d: sum_or_none(*(g(d, *p) for p in paths))


def paired(first: KeyPath, second: KeyPath) -> Callable[[Any], Any]:
    """The two values at ``first`` and ``second`` shown as "a / b" (a text: no ratio)."""
    return lambda d: pair(g(d, *first), g(d, *second))


@dataclass(frozen=True)
class Row:
    """One row: ``get`` applies to a target's result, or to one step inside a PerStep."""

    label: str
    get: Getter
    better: str

    def value(self, d: Any) -> Any:
        return self.get(d) if callable(self.get) else g(d, *self.get)


@dataclass(frozen=True)
class PerStep:
    """``rows`` for every rate a step at ``steps`` (a list of steps) has in either target's
    result, in rising order; a row's label takes the rate as ``{rate:g}``."""

    steps: KeyPath
    rows: tuple[Row, ...]


HELD_ON_A = ("two_nodes", "store_work", "held_on_A_only")
HELD_NOWHERE = ("two_nodes", "store_work", "held_nowhere")
BURST_2 = ("two_nodes", "store_work", "burst_one_user")

TABLE: tuple[Row | PerStep, ...] = (
    Row("idle: devices connected", ("idle", "ready"), HIGHER),
    Row("idle: connections accepted/s (ramp)", ("idle", "rate_per_s"), HIGHER),
    Row("idle: RSS per connection, KiB", ("idle", "rss_per_connection_kib"), LOWER),
    Row(
        "idle, 2 KB of cookies per handshake: RSS per connection, KiB",
        ("idle_cookies", "rss_per_connection_kib"),
        LOWER,
    ),
    Row("idle: node CPU while idle, %", ("idle", "idle_cpu_pct"), LOWER),
    Row("idle: node CPU during ramp, %", ("idle", "ramp", "node_cpu_pct", 0), NEITHER),
    Row("idle: node CPU ms per connection", ("idle", "node_cpu_ms_per_connection"), LOWER),
    Row("idle: loadgen CPU ms per connection", ("idle", "loadgen_cpu_ms_per_connection"), NEITHER),
    Row("idle: loadgen CPU during ramp, %", ("idle", "ramp", "loadgen_cpu_pct"), NEITHER),
    PerStep(
        ("fanout", "steps"),
        (
            Row("fan-out {rate:g}/s: notify->device p50, ms", ("latency", "p50_ms"), LOWER),
            Row("fan-out {rate:g}/s: p99, ms", ("latency", "p99_ms"), LOWER),
            Row("fan-out {rate:g}/s: max, ms", ("latency", "max_ms"), LOWER),
            Row("fan-out {rate:g}/s: delivered share", ("delivered_share",), HIGHER),
            Row("fan-out {rate:g}/s: HTTP POST p99, ms", ("http_latency", "p99_ms"), LOWER),
            Row("fan-out {rate:g}/s: node CPU, %", ("window", "node_cpu_pct", 0), LOWER),
            Row(
                "fan-out {rate:g}/s: node CPU ms/notification",
                ("node_cpu_ms_per_notification",),
                LOWER,
            ),
            Row("fan-out {rate:g}/s: loadgen CPU, %", ("window", "loadgen_cpu_pct"), NEITHER),
            Row(
                "fan-out {rate:g}/s: other CPU on machine, %", ("window", "other_cpu_pct"), NEITHER
            ),
            Row(
                "fan-out {rate:g}/s: of it, stolen by the host, %",
                ("window", "steal_cpu_pct"),
                NEITHER,
            ),
            Row(
                "fan-out {rate:g}/s: count queries/notification",
                ("count_queries_per_notification",),
                LOWER,
            ),
        ),
    ),
    Row("fan-out: highest sustained rate (1 node), /s", ("fanout", "max_sustained_rate"), HIGHER),
    Row("burst to one user (1 node): count queries", ("burst_one_node", "count_queries"), LOWER),
    Row("storm: devices back with right count", ("storm", "back_with_right_count"), HIGHER),
    Row("storm: seconds from listening to all back", ("storm", "seconds_from_listening"), LOWER),
    Row("storm: seconds from SIGTERM to all back", ("storm", "seconds_from_sigterm"), LOWER),
    Row("storm: reconnects accepted/s", ("storm", "accept_rate_per_s"), HIGHER),
    Row("storm: store queries per device", ("storm", "store_queries_per_device"), LOWER),
    Row("storm: old node's stop after SIGTERM, s", ("storm", "old_node_stop_seconds"), LOWER),
    Row(
        "all devices drop at once: s until the node holds 0",
        ("disconnect_all", "seconds_until_zero"),
        LOWER,
    ),
    # Only when fanout_users differs from idle_users (the full profile): see fanout.py.
    Row(
        "19,000 drop at once (full): s until the node holds 0",
        ("idle_disconnect_all", "seconds_until_zero"),
        LOWER,
    ),
    Row("2 nodes: connections accepted/s", ("two_nodes", "connect", "rate_per_s"), HIGHER),
    PerStep(
        ("two_nodes", "fanout", "steps"),
        (
            Row("2 nodes fan-out {rate:g}/s: p50, ms", ("latency", "p50_ms"), LOWER),
            Row("2 nodes fan-out {rate:g}/s: p99, ms", ("latency", "p99_ms"), LOWER),
            Row("2 nodes fan-out {rate:g}/s: delivered share", ("delivered_share",), HIGHER),
            Row(
                "2 nodes fan-out {rate:g}/s: node CPU ms/notification (A+B)",
                ("node_cpu_ms_per_notification",),
                LOWER,
            ),
            Row("2 nodes fan-out {rate:g}/s: redis CPU, %", ("window", "redis_cpu_pct"), LOWER),
        ),
    ),
    Row(
        "2 nodes, posts via A and B (two SQLite writers): p99, ms",
        ("two_nodes", "two_writers", "latency", "p99_ms"),
        LOWER,
    ),
    Row(
        "2 nodes, two SQLite writers: HTTP POST p99, ms",
        ("two_nodes", "two_writers", "http_latency", "p99_ms"),
        LOWER,
    ),
    Row("fetch: deliveries acknowledged/s", ("two_nodes", "fetch", "acked_per_s"), HIGHER),
    Row(
        "fetch (all fetch): answer p50, ms",
        ("two_nodes", "fetch", "fetch_answer", "p50_ms"),
        LOWER,
    ),
    Row(
        "fetch (few fetch): ack -> count on other node p50, ms",
        ("two_nodes", "fetch_latency", "ack_to_other_device", "p50_ms"),
        LOWER,
    ),
    Row(
        "fetch (few fetch): ack -> count on other node p99, ms",
        ("two_nodes", "fetch_latency", "ack_to_other_device", "p99_ms"),
        LOWER,
    ),
    Row(
        "fetch (few fetch): answer p50, ms",
        ("two_nodes", "fetch_latency", "fetch_answer", "p50_ms"),
        LOWER,
    ),
    Row(
        "fetch: node CPU ms per delivery (A+B)",
        ("two_nodes", "fetch", "node_cpu_ms_per_delivery"),
        LOWER,
    ),
    Row("fetch: node A CPU, %", ("two_nodes", "fetch", "window", "node_cpu_pct", 0), NEITHER),
    Row("fetch: loadgen CPU, %", ("two_nodes", "fetch", "window", "loadgen_cpu_pct"), NEITHER),
    Row(
        "store: count queries/notification, holder node",
        (*HELD_ON_A, "count_queries_per_notification_on_holder_A"),
        LOWER,
    ),
    Row(
        "store: count queries/notification, other node",
        (*HELD_ON_A, "count_queries_per_notification_on_other_B"),
        ZERO,
    ),
    Row(
        "store: count queries, user held nowhere (A+B)",
        summed((*HELD_NOWHERE, "count_queries_A"), (*HELD_NOWHERE, "count_queries_B")),
        ZERO,
    ),
    Row(
        "store: burst to one user, count queries A / B",
        paired((*BURST_2, "count_queries_A"), (*BURST_2, "count_queries_B")),
        LOWER,
    ),
)


def step_at(d: Any, steps: KeyPath, rate: float) -> dict[str, Any] | None:
    """The first step at ``rate`` in the list at ``steps``, or None."""
    return next((s for s in (g(d, *steps) or []) if s["rate"] == rate), None)


def table_rows(
    result: dict[str, Any], table: Sequence[Row | PerStep] = TABLE
) -> list[tuple[str, Any, Any, str]]:
    """(what, PNS, peer, better-is) rows; ratio is PNS / peer."""
    t = result["targets"]
    pns, peer = t.get("pns", {}), t.get("peer", {})
    rows: list[tuple[str, Any, Any, str]] = []
    for spec in table:
        if isinstance(spec, Row):
            rows.append((spec.label, spec.value(pns), spec.value(peer), spec.better))
            continue
        rates = sorted({s["rate"] for d in (pns, peer) for s in (g(d, *spec.steps) or [])})
        for rate in rates:
            a, b = step_at(pns, spec.steps, rate), step_at(peer, spec.steps, rate)
            rows += [
                (row.label.format(rate=rate), row.value(a), row.value(b), row.better)
                for row in spec.rows
            ]
    return rows


def fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if abs(x) >= 100:
            return f"{x:,.0f}{unit}"
        return f"{x:.3g}{unit}"
    if isinstance(x, int):
        return f"{x:,}{unit}"
    return f"{x}{unit}"


def ratio(a: Any, b: Any) -> str:
    if a is None or b is None or not b:
        return "-"
    return f"{a / b:.2f}x"


def render_table(result: dict[str, Any], markdown: bool = False) -> str:
    rows = table_rows(result)
    head = ("", "PNS", "peer", "PNS/peer", "better")
    cells = [head] + [
        (
            w,
            fmt(a),
            fmt(b),
            ratio(a, b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else "-",
            better,
        )
        for w, a, b, better in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "| --- | ---: | ---: | ---: | --- |"]
        lines += ["| " + " | ".join(c) + " |" for c in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    return "\n".join(
        "  ".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(5))
        for c in cells
    )
