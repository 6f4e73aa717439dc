"""The reconcile benchmark's plot and section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from bench.sections.fmt import fmt, ok


def plot(result: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for mode in sorted({row["mode"] for row in result["rows"]}):
        rows = sorted((r for r in result["rows"] if r["mode"] == mode), key=lambda r: r["size"])
        ax.plot([r["size"] for r in rows], [r["tick_s"]["median"] for r in rows], marker="o", label=mode)
    ax.axhline(5.0, color="grey", linestyle="--", label="target 5 s at 10,000")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("instances (log)")
    ax.set_ylabel("tick wall time, median (s, log)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def section(result: dict[str, Any], image: str) -> list[str]:
    lines = [
        "## Reconcile at scale",
        "",
        "Command: `python -m bench reconcile`.",
        "",
        f"Fake Railway (state written into its store), fake fleet answering `/pool/health` in "
        f"{result['health_latency_ms']} ms, services and the pool as real processes; on-demand ticks "
        "(`POST /api/pool/reconcile`; the count per row is in the tick column), all steady-state: every "
        "instance idle, healthy and clean, so a correct tick changes nothing; a tick observes what can "
        "have changed plus a rotation of the rest (`pool/tick/selection.py`), and the platform's full "
        "listing, the safety net (`pool/tick/listing.py`), is measured once per case as the services call "
        "the pool makes for it. Calls/h = 120 steady ticks + the listings the default pacing allows. "
        "Tick = the pool's own "
        "`last_tick_duration_ms`. Fake Railway = time the fake spent answering (not Railway's). "
        "CPU = CPU-seconds per tick of each process (median). Actions = what each tick changed. "
        f"Load average at the end: {result['load_average']}. Extra settings: "
        f"{result['env'] or 'none (defaults)'}.",
        "",
        "| mode | instances | tick s median [max] (ticks) | Railway calls per tick (expected) "
        "| listing: Railway calls, s | Railway calls/h (ticks + listings) | fake Railway s "
        "| CPU s pool / services / fleet | pool RSS MB (peak) | services RSS MB (peak) | actions |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        cpu = row["cpu_s_per_tick"]
        actions = "; ".join(",".join(f"{k}:{v}" for k, v in a.items()) or "none" for a in row["actions"])
        listed, hourly = row.get("listing") or {}, row.get("calls_per_hour") or {}
        lines.append(
            f"| {row['mode']} | {row['size']:,} | {fmt(row['tick_s']['median'], 2)} "
            f"[{fmt(row['tick_s']['max'], 2)}] ({row['tick_s']['runs']}) "
            f"| {fmt(row['railway_calls']['median'], 0)} ({row['expected_calls']}) "
            f"| {listed.get('railway_calls', '?')}, {fmt(listed.get('seconds', 0), 2)} "
            f"| {hourly.get('ticks', 0):,} + {hourly.get('listings', 0):,} = {hourly.get('total', 0):,} "
            f"| {fmt(row['fake_railway_s']['median'], 2)} "
            f"| {fmt(cpu['pool'], 2)} / {fmt(cpu['services'], 2)} / {fmt(cpu['fleet'], 2)} "
            f"| {fmt(row['pool_rss_mb'])} ({fmt(row['pool_peak_rss_mb'])}) "
            f"| {fmt(row['services_rss_mb'])} ({fmt(row['services_peak_rss_mb'])}) | {actions} |"
        )
    lines += ["", "Readings against the targets:", ""]
    for row in result["rows"]:
        calls = row["railway_calls"]["max"]
        lines.append(
            f"- {row['mode']}, {row['size']:,}: {fmt(calls, 0)} Railway calls per steady tick (worst), "
            f"expected {row['expected_calls']}: {ok(calls <= row['expected_calls'])}."
        )
    for row in (r for r in result["rows"] if r["size"] == max(x["size"] for x in result["rows"])):
        tick, rss = row["tick_s"]["median"], row["pool_peak_rss_mb"]
        hourly = (row.get("calls_per_hour") or {}).get("total", 0)
        lines.append(
            f"- {row['mode']}, {row['size']:,}: tick {fmt(tick, 2)} s against 3 s"
            + (f" ({ok(tick <= 3)})" if row["mode"] == "shared" else " (the target is for shared mode)")
            + f"; pool peak RSS {fmt(rss)} MB against 120 MB ({ok(rss <= 120)}); "
            f"steady-state Railway calls {hourly:,}/h against 5,000/h ({ok(hourly <= 5000)})."
        )
    for row in (r for r in result["rows"] if r["errors"]):
        lines.append(
            f"- {row['mode']}, {row['size']:,}: the tick observed nothing and changed nothing: "
            f"{'; '.join(row['errors'])}."
        )
    lines += ["", f"![tick time against fleet size]({image})", ""]
    return lines
