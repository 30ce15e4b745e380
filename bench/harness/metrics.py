"""Differences between two readings of a node's /metrics (parsed by the tests' parse_metrics)."""

from __future__ import annotations

import re

Q_UNSEEN = 'pns_store_queries_total{op="unseen"}'
# Notifications, not store calls: PNS stores HTTP creates with create_many, the peer with create.
Q_CREATED = "pns_notifications_created_total"


def mdelta(after: dict[str, float], before: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def store_queries(m: dict[str, float]) -> dict[str, float]:
    """{op: queries so far} from one /metrics reading."""
    out = {}
    for k, v in m.items():
        mm = re.match(r'pns_store_queries_total\{op="([a-z_]+)"\}', k)
        if mm:
            out[mm.group(1)] = v
    return out


def store_queries_delta(m0: dict[str, float], m1: dict[str, float]) -> dict[str, float]:
    """{op: queries between the two readings}, for every op the later reading has."""
    before = store_queries(m0)
    return {k: v - before.get(k, 0) for k, v in store_queries(m1).items()}


def store_mean_ms(m0: dict[str, float], m1: dict[str, float]) -> dict[str, float]:
    """Mean store call time (queueing included) per op between two /metrics readings."""
    out = {}
    for k, v in m1.items():
        mm = re.match(r'pns_store_seconds_sum\{op="([a-z_]+)"\}', k)
        if not mm:
            continue
        n_key = f'pns_store_seconds_count{{op="{mm.group(1)}"}}'
        n = m1.get(n_key, 0) - m0.get(n_key, 0)
        if n:
            out[mm.group(1)] = round((v - m0.get(k, 0)) / n * 1000, 2)
    return out
