"""The simulator's BENCHMARKS.md section and its plot (idle instances and misses over time)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The bar: ours at ≥ 99% warm hits, on at most 60% of the idle instance-hours of the
# smallest static pool that reaches the same hit rate.
HIT_BAR = 0.99
IDLE_SHARE_BAR = 0.60


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return (
        "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"
    )


def plotted(rows: list[dict[str, Any]]) -> list[str]:
    """The policies drawn: ours and its variants (but the budget's), the original, and the
    smallest static reaching 99% (or the largest static, when none does)."""
    statics = [row for row in rows if row["kind"] == "static"]
    good = [row for row in statics if (row["hit_rate"] or 0) >= HIT_BAR]
    reference = good[0] if good else statics[-1]
    names = [reference["policy"], *(row["policy"] for row in rows if row["kind"] != "static")]
    return [name for name in names if "budget" not in name]


def plot(result: dict[str, Any], path: Path) -> None:
    traces = result["traces"]
    fig, axes = plt.subplots(len(traces), 2, figsize=(12, 3.2 * len(traces)), squeeze=False)
    for (idle_ax, miss_ax), trace in zip(axes, traces, strict=True):
        for name, points in trace["series"].items():
            hours = [i * points["step_h"] - trace["warmup_hours"] for i in range(len(points["idle"]))]
            idle_ax.step(hours, points["idle"], where="post", label=name, linewidth=1)
            misses = sorted(h - trace["warmup_hours"] for h in points["misses"])
            miss_ax.step(misses, range(1, len(misses) + 1), where="post", label=name, linewidth=1)
        idle_ax.set_title(f"{trace['name']}: idle instances")
        miss_ax.set_title(f"{trace['name']}: claims that found no idle instance (cumulative)")
        for ax in (idle_ax, miss_ax):
            ax.set_xlim(left=0)
            ax.set_xlabel("hours (after the warm-up)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _against_static(row: dict[str, Any], statics: list[dict[str, Any]]) -> str:
    """One policy's hit rate and idle-hours against the smallest static pool reaching that rate."""
    hit = row["hit_rate"] or 0.0
    text = f"{_pct(hit)} warm hits on {_num(row['idle_hours'])} idle instance-h"
    match = next((s for s in statics if (s["hit_rate"] or 0) >= min(hit, 1.0)), None)
    if match is None:
        return text + "; no static size simulated reaches that hit rate"
    share = row["idle_hours"] / match["idle_hours"] if match["idle_hours"] else math.inf
    good = hit >= HIT_BAR and share <= IDLE_SHARE_BAR
    return text + (
        f"; the smallest static pool reaching it is {match['policy']} ({_pct(match['hit_rate'])}, "
        f"{_num(match['idle_hours'])} idle-h): {share:.2f}× its idle-hours "
        f"({'✅ meets' if good else '❌ misses'} ≥ 99% at ≤ {IDLE_SHARE_BAR:.2f}×)"
    )


def reading(trace: dict[str, Any]) -> str:
    """The default policy against the bar, then each of its variants (an operator's settings) and
    the original."""
    statics = [row for row in trace["rows"] if row["kind"] == "static"]
    ours = next(row for row in trace["rows"] if row["policy"] == "ours")
    original = next(row for row in trace["rows"] if row["kind"] == "original")
    lines = [f"- {trace['name']}: ours {_against_static(ours, statics)}."]
    for row in trace["rows"]:
        if row["kind"] == "ours" and row is not ours:
            lines.append(f"  - {row['policy']}: {_against_static(row, statics)}.")
    lines.append(
        f"  - The original ({original['policy']}, refill after claim): {_pct(original['hit_rate'])} warm "
        f"hits, wait p99 {_num(original['wait_p99_s'])} s."
    )
    return "\n".join(lines)


def section(result: dict[str, Any], image: str) -> list[str]:
    config = result["config"]
    lines = [
        "## Sizing simulator",
        "",
        "Command: `python -m bench sim` (any demand: `python -m bench sim --trace claims.csv`, one claim "
        "time per line; see `bench/sim/traces.py`).",
        "",
        f"Simulated time (the whole run took {result.get('sim_seconds', '?')} s), seed {config['seed']}. "
        "Each policy runs the pool's own `pool.tick.plan.plan()` every "
        f"{config['tick_s']:g} s and the starting prober's decisions every {config['probe_s']:g} s against "
        f"a platform model: {config['platform']}. A claim is a warm hit when an idle instance is there as "
        "it arrives; otherwise it waits in order for the next instance to become idle (wait = that time). "
        "Idle instance-hours integrate the idle count; created counts every create asked for, failed ones "
        "included. Each trace starts with a warm-up hour, simulated but not counted.",
        "",
        "Policies: `static N` is the pool today with `POOL_MIN_IDLE=N` (the tick refills to N plus the "
        "queued claims, a claim refills the deficit at once); `original N` is the original system "
        "(N idle, one replacement created per claim, no queue counted); `ours` sizes from demand "
        "(`pool.sizing`: claim rate smoothed over 5 min with a peak that halves every 2 h, refill p90, "
        "enough idle for 99% of refill windows), recycles instances idle for 24 h and drains the oldest "
        "idle after 15 min above target; its variants read the median refill, cap idle at 48 idle-h/day, "
        "or (flash crowd) add a schedule, alone and with a peak that halves every 30 min "
        "(`POOL_SIZING_PEAK_HALF_LIFE_SECONDS=1800`). Limited by = ticks at which a limit, not demand, "
        "set ours' target.",
        "",
    ]
    for trace in result["traces"]:
        lines += [
            f"### {trace['name']}: {trace['description']}",
            "",
            "| policy | claims | warm hits | wait p50 s | wait p99 s | wait max s | idle instance-h "
            "| mean idle | created (failed) | limited by |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in trace["rows"]:
            limited = ", ".join(f"{k} {v}" for k, v in sorted(row["limited_by"].items())) or "–"
            lines.append(
                f"| {row['policy']} | {row['claims']} | {_pct(row['hit_rate'])} | {_num(row['wait_p50_s'])} "
                f"| {_num(row['wait_p99_s'])} | {_num(row['wait_max_s'])} | {_num(row['idle_hours'])} "
                f"| {_num(row['mean_idle'], 2)} | {row['created']} ({row['failed_creates']}) | {limited} |"
            )
        lines.append("")
    lines += ["Readings against the issue's bar:", ""]
    lines += [reading(trace) for trace in result["traces"]]
    lines += ["", f"![idle instances and misses over time per policy]({image})", ""]
    return lines
