"""The sizes and durations of a run, by profile (`--profile`, `--set KEY=JSON` overrides one),
and the bar a fan-out step must clear to count as sustained."""

from __future__ import annotations

from typing import Any

PROFILES: dict[str, dict[str, Any]] = {
    "short": {
        "workers": 2,
        "idle_users": 1000,  # x 2 devices
        "idle_hold_s": 4,
        # The idle ramp again, on a fresh node, each handshake with this many bytes of
        # cookies (0: skipped).
        "cookie_users": 1000,
        "cookie_bytes": 2048,
        "fanout_users": 1000,  # reuses the idle devices when equal
        # Steps of 1.5x above 1,000/s: with steps of 2x the highest sustained rate of two
        # servers could only differ by 2x or not at all.
        "fanout_rates": [250, 500, 1000, 1500, 2000, 3000, 4000],
        "fanout_step_s": 5,
        "fanout_grace_s": 2,
        "fanout_stop_after_fail": True,
        "storm": True,
        "storm_timeout_s": 40,
        "two_users": 1000,
        "two_fanout_rates": [500, 1000],
        "two_fanout_step_s": 5,
        "two_writers_rate": 250,
        "fetch_s": 5,
        "fetch_latency_s": 4,
        "fetch_latency_users": 20,
        "fetch_post_rate": 200,
        "fetch_limit": 1,
        "holder_users": 50,
        "holder_posts_each": 2,
        "burst": 20,
        "max_seconds": 400,
    },
    "full": {
        "workers": 2,
        "idle_users": 9500,  # 19,000 devices
        "idle_hold_s": 20,
        "cookie_users": 9500,
        "cookie_bytes": 2048,
        "fanout_users": 5000,
        "fanout_rates": [500, 1000, 2000, 3000, 4000, 5000, 6000, 8000],
        "fanout_step_s": 60,
        "fanout_grace_s": 3,
        "fanout_stop_after_fail": True,
        "storm": True,
        "storm_timeout_s": 120,
        "two_users": 5000,
        "two_fanout_rates": [1000, 2000, 3000, 4000, 5000],
        "two_fanout_step_s": 30,
        "two_writers_rate": 500,
        "fetch_s": 60,
        "fetch_latency_s": 30,
        "fetch_latency_users": 50,
        "fetch_post_rate": 500,
        "fetch_limit": 1,
        "holder_users": 200,
        "holder_posts_each": 3,
        "burst": 50,
        "max_seconds": 3600,
    },
}

# A fan-out step is sustained when its p99 is below this and at least this share of the
# deliveries arrived (and few HTTP errors, most posts sent: window.sustained()).
SUSTAIN_P99_MS = 100.0
SUSTAIN_DELIVERED = 0.999
