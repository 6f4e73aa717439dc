"""The deploy-events benchmark's plot and section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from bench.sections.fmt import fmt, ok


def plot(result: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for label, events in (("events off", False), ("events on", True)):
        values = sorted(x for row in result["rows"] if row["events"] == events for x in row["latencies_s"])
        if values:
            ax.step(values, [(n + 1) / len(values) for n in range(len(values))], where="post", label=label)
    ax.set_xlabel("deploy SUCCESS → idle (s)")
    ax.set_ylabel("share of instances")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def section(result: dict[str, Any], image: str) -> list[str]:
    on, off = result["on"], result["off"]
    load = result["load_average"]
    lines = [
        "## Deploy events: promotion latency",
        "",
        "Command: `python -m bench events` (add `--quick` for a small run). The fake Railway on the "
        "`realistic` profile (API latencies and faults, deploy events delivered after median 1 s / p99 10 s, "
        f"2 % lost), deploys of {result['deploy_s'][0]:g}-{result['deploy_s'][1]:g} s with the runtime "
        "answering ready when SUCCESS is reported; the pool's default pacing "
        "(tick 30 s, starting prober 2 s). "
        f"{result['instances']} instances per run, {result['rounds']} rounds, events off and on alternating, "
        f"each from empty databases. Load average {load['before']} before, {load['after']} after.",
        "",
        "| events | instances | p50 (s) | p90 (s) | max (s) |",
        "|---|---|---|---|---|",
    ]
    for label, row in (("off", off), ("on", on)):
        lines.append(
            f"| {label} | {row.get('n', 0)} | {fmt(row.get('p50_s'), 2)} | {fmt(row.get('p90_s'), 2)} "
            f"| {fmt(row.get('max_s'), 2)} |"
        )
    after = result.get("after_delivery", {})
    if after.get("n"):
        lines += [
            "",
            f"Of the events-on latency, the platform's delivery delay is the larger part: from the event's "
            f"arrival at services to `idle` took p50 {fmt(after.get('p50_s'), 2)} s, p90 "
            f"{fmt(after.get('p90_s'), 2)} s, max {fmt(after.get('max_s'), 2)} s ({after['n']} instances "
            "whose event arrived before the starting prober promoted them).",
        ]
    if on.get("p50_s") is not None:
        lines += ["", f"- Events on: p50 = {on['p50_s']} s (target ≤ 2 s): {ok(on['p50_s'] <= 2.0)}."]
    lines += ["", f"![promotion latency]({image})", ""]
    return lines
