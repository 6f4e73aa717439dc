"""The warm-up benchmark's plot and section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from bench.sections.fmt import fmt


def plot(result: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for row in result["rows"]:
        ax.step(
            [t for t, _ in row["timeline"]],
            [n for _, n in row["timeline"]],
            where="post",
            label=row["variant"],
        )
    ax.axvline(result["limit_s"], color="grey", linestyle="--", label="platform limit")
    ax.axvline(result["serial_limit_s"], color="grey", linestyle=":", label="one-at-a-time limit")
    ax.set_xlabel(f"seconds (timings scaled ×{result['scale']})")
    ax.set_ylabel("idle instances")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def section(result: dict[str, Any], image: str) -> list[str]:
    real = result["real"]
    lines = [
        "## Warm-up",
        "",
        "Command: `python -m bench warmup`.",
        "",
        f"From empty to {result['target']} idle, per-instance mode, {result['tokens']} Railway tokens, pool "
        f"create concurrency {result['create_concurrency']}. Railway's timings ({real['create_call_s']} s "
        "per call, "
        f"{real['deploy_s']} s deploy, one project and one volume per {real['project_interval_s']} s per "
        "token) and "
        "the pool's and services' pacing (tick, starting prober, client cooldowns and rate limit) are all "
        "scaled "
        f"by ×{result['scale']}; divide the seconds below by {result['scale']} for real time. Platform "
        "limit = "
        "(⌈target/tokens⌉ − 1) × project interval + one create's 5 calls + one deploy = "
        f"{result['limit_s']} s; one-at-a-time limit = target × (5 calls + deploy) = "
        f"{result['serial_limit_s']} s. "
        f"Load average before/after: {result['load_average']['before']} / {result['load_average']['after']}.",
        "",
        "| variant | wall s (scaled) | real-time equivalent | × platform limit | Railway calls | throttled |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        wall = row["wall_s"]
        calls = sum(row["railway_calls"].values())
        lines.append(
            f"| {row['variant']} | {fmt(wall, 2)} | {fmt(wall / result['scale'] if wall else None, 0)} s "
            f"| {fmt(wall / result['limit_s'] if wall else None, 2)} | {calls} | "
            f"{row['rejected'] or 'none'} |"
        )
    by = {row["variant"]: row["wall_s"] for row in result["rows"]}
    lines += ["", "Readings:", ""]
    if by.get("pool_refill"):
        ratio = by["pool_refill"] / result["limit_s"]
        lines.append(
            f"- The pool's refill reaches {result['target']} idle in {ratio:.2f}× the platform limit."
        )
    if by.get("pool_refill") and by.get("one_at_a_time"):
        lines.append(
            f"- One at a time takes {by['one_at_a_time'] / by['pool_refill']:.1f}× as long as the refill."
        )
    lines += ["", f"![idle instances over time during warm-up]({image})", ""]
    return lines
