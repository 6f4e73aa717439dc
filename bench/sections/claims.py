"""The claim benchmark's plot and section, with the floors beside the pool and issue 15's readings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from bench.sections.fmt import fmt, ok


def plot(result: dict[str, Any], path: Path) -> None:
    delays = sorted({row["delay_ms"] for row in result["rows"]})
    fig, axes = plt.subplots(1, len(delays), figsize=(5 * len(delays), 3.6), squeeze=False)
    for ax, delay in zip(axes[0], delays, strict=True):
        for row in (r for r in result["rows"] if r["delay_ms"] == delay):
            values = sorted(row["samples_ms"])
            if values:
                ys = [(i + 1) / len(values) for i in range(len(values))]
                ax.plot(values, ys, label=f"concurrency {row['concurrency']}")
        ax.set_xscale("log")
        ax.set_xlabel("claim latency (ms, log)")
        ax.set_ylabel("fraction of claims")
        ax.set_title(f"runtime provision {delay} ms")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# The floors' rows in a claims result: one statement, then two (bench/floor.py).
FLOORS = ("floor_rows", "floor2_rows")


def _claim_path_readings(
    rows: list[dict[str, Any]], floor_rows: list[dict[str, Any]], floor2_rows: list[dict[str, Any]]
) -> list[str]:
    """Issue 15's targets: the pool's CPU per claim, throughput and overhead near the ideal; each
    timed one also read against the floors' figures in the same runs."""
    at = {(r["delay_ms"], r["concurrency"]): r for r in rows}
    floors = [{(r["delay_ms"], r["concurrency"]): r for r in f} for f in (floor_rows, floor2_rows)]

    def floor_says(key: tuple[int, int], what: str) -> str:
        if not all(key in f for f in floors):
            return ""
        said = []
        for label, row in zip(("1 statement", "2 statements"), (f[key] for f in floors), strict=True):
            if what == "rate":
                figure = (
                    f"{fmt(row['throughput']['median'])} claims/s, "
                    f"overhead p99 {fmt(row['overhead_ms']['p99'])} ms"
                )
            else:
                figure = f"{fmt(row['overhead_ms']['p50'])} ms"
            said.append(f"{label}: {figure}")
        return f" (the floors in the same runs, {'; '.join(said)})"

    lines = []
    for c in (10, 50):
        if (0, c) in at:
            cpu = at[(0, c)]["cpu_ms_per_claim"]["pool"]
            lines.append(
                f"- Pool CPU per claim at concurrency {c}, 0 ms runtime: {fmt(cpu)} ms (median of the runs; "
                f"target ≤ 1.5 ms): {ok(cpu <= 1.5)}."
            )
    if (200, 50) in at:
        row = at[(200, 50)]
        rate, p99 = row["throughput"]["median"], row["overhead_ms"]["p99"]
        met = rate >= 225 and p99 <= 50
        lines.append(
            f"- 200 ms runtime at concurrency 50: {fmt(rate)} claims/s ({rate / 250:.0%} of the ideal 250; "
            f"target ≥ 225) and overhead p99 {fmt(p99)} ms (target ≤ 50 ms){floor_says((200, 50), 'rate')}: "
            f"{ok(met)}."
        )
    for delay in (0, 200):
        if (delay, 1) in at:
            p50 = at[(delay, 1)]["overhead_ms"]["p50"]
            lines.append(
                f"- Overhead p50 at concurrency 1, {delay} ms runtime: {fmt(p50)} ms (target ≤ 2 ms)"
                f"{floor_says((delay, 1), 'p50')}: {ok(p50 <= 2)}."
            )
    return lines


def _floor_table(result: dict[str, Any]) -> list[str]:
    """The floors' own figures beside the pool's, case by case (`bench/floor.py`)."""
    floors = [{(r["delay_ms"], r["concurrency"]): r for r in result.get(k, [])} for k in FLOORS]
    if not all(floors):
        return []
    lines = [
        "",
        "The floors (`bench/floor.py`, on the pool's server stack, nothing else): the issue's, one "
        "statement and one instance call (1 st.); the pool's design's, `claiming` before the call and "
        "`claimed` after it (2 st., DESIGN.md §14). Run for run they alternate with the pool, against "
        "the same rows, fleet and load generator: what the machine costs whatever the code.",
        "",
        "| runtime | concurrency | overhead p50 / p99 ms: 1 st. | 2 st. | pool | claims/s: 1 st. | 2 st. "
        "| pool | CPU ms/claim: 1 st. | 2 st. | pool |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        key = (row["delay_ms"], row["concurrency"])
        if not all(key in f for f in floors):
            continue
        three = [floors[0][key], floors[1][key], row]
        over = " | ".join(f"{fmt(r['overhead_ms']['p50'])} / {fmt(r['overhead_ms']['p99'])}" for r in three)
        rate = " | ".join(fmt(r["throughput"]["median"]) for r in three)
        cpu = " | ".join(fmt(r["cpu_ms_per_claim"]["pool"]) for r in three)
        lines.append(f"| {key[0]} ms | {key[1]} | {over} | {rate} | {cpu} |")
    return lines


def section(result: dict[str, Any], image: str) -> list[str]:
    lines = [
        "## Claim",
        "",
        "Command: `python -m bench claims` (add `--quick` for a small run).",
        "",
        f"{result['idle']:,} idle instances (rows in the pool DB pointing at the fake fleet), every run "
        f"starting from all idle; {result['runs']} runs per row, latency percentiles over all runs' claims, "
        "claims/s as the median [min–max] of the runs. Overhead = claim latency − the fleet's own time "
        "in `/pool/provision` for that instance. CPU = CPU-milliseconds per claim of the pool process "
        f"(median of the runs). Pool: {result.get('pool_workers', 1)} process(es), uvicorn on "
        f"{result.get('server', 'asyncio + h11')}. Pool RSS after the runs: "
        f"{fmt(result['pool_rss_mb'])} MB. Load average "
        f"before/after: {result['load_average']['before']} / {result['load_average']['after']}.",
        "",
        "| runtime | concurrency | claims × runs | p50 ms | p90 ms | p99 ms | overhead p50 | overhead p99 "
        "| claims/s | pool CPU ms/claim | errors | double claims |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lat, over, tput, cpu = (
            row["latency_ms"],
            row["overhead_ms"],
            row["throughput"],
            row["cpu_ms_per_claim"],
        )
        lines.append(
            f"| {row['delay_ms']} ms | {row['concurrency']} | {row['claims_per_run']} × {tput['runs']} "
            f"| {fmt(lat['p50'])} | {fmt(lat['p90'])} | {fmt(lat['p99'])} | {fmt(over['p50'])} "
            f"| {fmt(over['p99'])} | {fmt(tput['median'])} [{fmt(tput['min'])}–{fmt(tput['max'])}] "
            f"| {fmt(cpu['pool'])} | {row['errors']} | {row['double_claims']} |"
        )
    lines += _floor_table(result)
    top = [r for r in result["rows"] if r["concurrency"] == max(x["concurrency"] for x in result["rows"])]
    best = max((r["throughput"]["median"] for r in result["rows"] if r["delay_ms"] == 0), default=0.0)
    doubles = sum(r["double_claims"] + r["checks"].get("left_claiming", 0) for r in result["rows"])
    lines += ["", "Readings against the targets:", ""]
    for row in top:
        o = row["overhead_ms"]
        lines.append(
            f"- Overhead at concurrency {row['concurrency']}, {row['delay_ms']} ms runtime: "
            f"p50 {fmt(o['p50'])} ms ({o['p50'] / 10:.1f}× the 10 ms target), "
            f"p99 {fmt(o['p99'])} ms ({o['p99'] / 50:.1f}× the 50 ms target): "
            f"{ok(o['p50'] <= 10 and o['p99'] <= 50)}."
        )
    lines += _claim_path_readings(result["rows"], result.get(FLOORS[0], []), result.get(FLOORS[1], []))
    lines.append(
        f"- Throughput with a 0 ms runtime: best median {fmt(best)} claims/s = {best / 300:.2f}× the 300/s "
        f"target: {ok(best >= 300)}."
    )
    lines.append(
        f"- Double claims: {doubles} (claims rows sharing an instance, answers sharing an instance, "
        "instances "
        f"provisioned twice, claimed rows ≠ successes, rows left `claiming`): {ok(doubles == 0)}."
    )
    lines += ["", f"![claim latency distribution]({image})", ""]
    return lines
