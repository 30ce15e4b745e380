"""The run's PNG plots: fan-out latency against rate, RSS against connections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import log
from .profiles import SUSTAIN_P99_MS


def make_plots(result: dict[str, Any], plots: dict[str, Any], prefix: Path) -> list[str]:
    """<prefix>-latency-vs-rate.png and <prefix>-rss-vs-connections.png; their paths (none
    without matplotlib, which only the bench extra installs)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing (pip install -e '.[bench]'): no plots")
        return []
    made = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (_name, t) in enumerate(result["targets"].items()):
        steps = t.get("fanout", {}).get("steps", [])
        if not steps:
            continue
        xs = [s["rate"] for s in steps]
        color = f"C{i}"
        ax.plot(
            xs,
            [s["latency"]["p99_ms"] for s in steps],
            marker="o",
            color=color,
            label=f"{t['target']} p99",
        )
        ax.plot(
            xs,
            [s["latency"]["p50_ms"] for s in steps],
            marker="x",
            linestyle="--",
            color=color,
            label=f"{t['target']} p50",
        )
    ax.axhline(SUSTAIN_P99_MS, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("notifications/s (HTTP API, one node)")
    ax.set_ylabel("notify -> count on device, ms")
    ax.set_yscale("log")
    ax.set_title(f"Fan-out latency against rate ({result['profile']})")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    path = prefix.with_name(prefix.name + "-latency-vs-rate.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    made.append(str(path))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, samples in plots.get("rss", {}).items():
        if samples:
            xs = [s[0] for s in samples]
            ys = [s[1] / 2**20 for s in samples]
            ax.plot(xs, ys, marker=".", label=label)
    ax.set_xlabel("connected devices (one node)")
    ax.set_ylabel("node RSS, MiB")
    ax.set_title(f"RSS against connections ({result['profile']})")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    path = prefix.with_name(prefix.name + "-rss-vs-connections.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    made.append(str(path))
    return made
