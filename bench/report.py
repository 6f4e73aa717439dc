"""BENCHMARKS.md and one PNG per benchmark, from the results JSON of `python -m bench`.

The analysis that needs a human (profiles, suggested fixes) lives in `bench/findings.md` and is
appended as written, so regenerating the figures never loses it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

from bench.sim import report as sim_report

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FINDINGS = Path(__file__).with_name("findings.md")


def _ok(good: bool) -> str:
    return "✅ meets" if good else "❌ misses"


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def claims_plot(result: dict[str, Any], path: Path) -> None:
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


def reconcile_plot(result: dict[str, Any], path: Path) -> None:
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


def warmup_plot(result: dict[str, Any], path: Path) -> None:
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
                    f"{_fmt(row['throughput']['median'])} claims/s, "
                    f"overhead p99 {_fmt(row['overhead_ms']['p99'])} ms"
                )
            else:
                figure = f"{_fmt(row['overhead_ms']['p50'])} ms"
            said.append(f"{label}: {figure}")
        return f" (the floors in the same runs, {'; '.join(said)})"

    lines = []
    for c in (10, 50):
        if (0, c) in at:
            cpu = at[(0, c)]["cpu_ms_per_claim"]["pool"]
            lines.append(
                f"- Pool CPU per claim at concurrency {c}, 0 ms runtime: {_fmt(cpu)} ms (median of the runs; "
                f"target ≤ 1.5 ms): {_ok(cpu <= 1.5)}."
            )
    if (200, 50) in at:
        row = at[(200, 50)]
        rate, p99 = row["throughput"]["median"], row["overhead_ms"]["p99"]
        met = rate >= 225 and p99 <= 50
        lines.append(
            f"- 200 ms runtime at concurrency 50: {_fmt(rate)} claims/s ({rate / 250:.0%} of the ideal 250; "
            f"target ≥ 225) and overhead p99 {_fmt(p99)} ms (target ≤ 50 ms){floor_says((200, 50), 'rate')}: "
            f"{_ok(met)}."
        )
    for delay in (0, 200):
        if (delay, 1) in at:
            p50 = at[(delay, 1)]["overhead_ms"]["p50"]
            lines.append(
                f"- Overhead p50 at concurrency 1, {delay} ms runtime: {_fmt(p50)} ms (target ≤ 2 ms)"
                f"{floor_says((delay, 1), 'p50')}: {_ok(p50 <= 2)}."
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
        over = " | ".join(f"{_fmt(r['overhead_ms']['p50'])} / {_fmt(r['overhead_ms']['p99'])}" for r in three)
        rate = " | ".join(_fmt(r["throughput"]["median"]) for r in three)
        cpu = " | ".join(_fmt(r["cpu_ms_per_claim"]["pool"]) for r in three)
        lines.append(f"| {key[0]} ms | {key[1]} | {over} | {rate} | {cpu} |")
    return lines


def claims_section(result: dict[str, Any], image: str) -> list[str]:
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
        f"{_fmt(result['pool_rss_mb'])} MB. Load average "
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
            f"| {_fmt(lat['p50'])} | {_fmt(lat['p90'])} | {_fmt(lat['p99'])} | {_fmt(over['p50'])} "
            f"| {_fmt(over['p99'])} | {_fmt(tput['median'])} [{_fmt(tput['min'])}–{_fmt(tput['max'])}] "
            f"| {_fmt(cpu['pool'])} | {row['errors']} | {row['double_claims']} |"
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
            f"p50 {_fmt(o['p50'])} ms ({o['p50'] / 10:.1f}× the 10 ms target), "
            f"p99 {_fmt(o['p99'])} ms ({o['p99'] / 50:.1f}× the 50 ms target): "
            f"{_ok(o['p50'] <= 10 and o['p99'] <= 50)}."
        )
    lines += _claim_path_readings(result["rows"], result.get(FLOORS[0], []), result.get(FLOORS[1], []))
    lines.append(
        f"- Throughput with a 0 ms runtime: best median {_fmt(best)} claims/s = {best / 300:.2f}× the 300/s "
        f"target: {_ok(best >= 300)}."
    )
    lines.append(
        f"- Double claims: {doubles} (claims rows sharing an instance, answers sharing an instance, "
        "instances "
        f"provisioned twice, claimed rows ≠ successes, rows left `claiming`): {_ok(doubles == 0)}."
    )
    lines += ["", f"![claim latency distribution]({image})", ""]
    return lines


def reconcile_section(result: dict[str, Any], image: str) -> list[str]:
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
            f"| {row['mode']} | {row['size']:,} | {_fmt(row['tick_s']['median'], 2)} "
            f"[{_fmt(row['tick_s']['max'], 2)}] ({row['tick_s']['runs']}) "
            f"| {_fmt(row['railway_calls']['median'], 0)} ({row['expected_calls']}) "
            f"| {listed.get('railway_calls', '?')}, {_fmt(listed.get('seconds', 0), 2)} "
            f"| {hourly.get('ticks', 0):,} + {hourly.get('listings', 0):,} = {hourly.get('total', 0):,} "
            f"| {_fmt(row['fake_railway_s']['median'], 2)} "
            f"| {_fmt(cpu['pool'], 2)} / {_fmt(cpu['services'], 2)} / {_fmt(cpu['fleet'], 2)} "
            f"| {_fmt(row['pool_rss_mb'])} ({_fmt(row['pool_peak_rss_mb'])}) "
            f"| {_fmt(row['services_rss_mb'])} ({_fmt(row['services_peak_rss_mb'])}) | {actions} |"
        )
    lines += ["", "Readings against the targets:", ""]
    for row in result["rows"]:
        calls = row["railway_calls"]["max"]
        lines.append(
            f"- {row['mode']}, {row['size']:,}: {_fmt(calls, 0)} Railway calls per steady tick (worst), "
            f"expected {row['expected_calls']}: {_ok(calls <= row['expected_calls'])}."
        )
    for row in (r for r in result["rows"] if r["size"] == max(x["size"] for x in result["rows"])):
        tick, rss = row["tick_s"]["median"], row["pool_peak_rss_mb"]
        hourly = (row.get("calls_per_hour") or {}).get("total", 0)
        lines.append(
            f"- {row['mode']}, {row['size']:,}: tick {_fmt(tick, 2)} s against 3 s"
            + (f" ({_ok(tick <= 3)})" if row["mode"] == "shared" else " (the target is for shared mode)")
            + f"; pool peak RSS {_fmt(rss)} MB against 120 MB ({_ok(rss <= 120)}); "
            f"steady-state Railway calls {hourly:,}/h against 5,000/h ({_ok(hourly <= 5000)})."
        )
    for row in (r for r in result["rows"] if r["errors"]):
        lines.append(
            f"- {row['mode']}, {row['size']:,}: the tick observed nothing and changed nothing: "
            f"{'; '.join(row['errors'])}."
        )
    lines += ["", f"![tick time against fleet size]({image})", ""]
    return lines


def warmup_section(result: dict[str, Any], image: str) -> list[str]:
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
            f"| {row['variant']} | {_fmt(wall, 2)} | {_fmt(wall / result['scale'] if wall else None, 0)} s "
            f"| {_fmt(wall / result['limit_s'] if wall else None, 2)} | {calls} | "
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


def queue_plot(result: dict[str, Any], path: Path) -> None:
    pairs = result.get("pairs") or []
    fig, ax = plt.subplots(figsize=(5, 5))
    waits = [p["wait_s"] for p in pairs]
    etas = [p["eta_s"] for p in pairs]
    ax.scatter(waits, etas, s=12)
    top = max(waits + etas + [1.0])
    ax.plot([0, top], [0, top], linestyle="--", linewidth=1)
    ax.set_xlabel("real wait (s)")
    ax.set_ylabel("ETA given at enqueue (s)")
    ax.set_title("queued claims: ETA against the real wait")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def queue_section(result: dict[str, Any], image: str) -> list[str]:
    config = result["config"]
    relative = result.get("median_relative_error")
    lines = [
        "## Claim queue: ETA honesty",
        "",
        "Command: `python -m bench queue`.",
        "",
        f"The whole system as the soak runs it (real pool and services processes, the fake Railway in "
        f"{config['mode']} mode on its realistic profile, seed {config['seed']}, time scaled ×"
        f"{config['time_scale']}: deploys of 60-180 s take 1.2-3.6 s), a warm pool of {config['min_idle']}. "
        f"{config['waves']} waves of {config['claims_per_wave']} claims, {config['wave_gap_s']} s apart, "
        "through `POST /api/pool/claims`; each queued claim keeps the ETA of its 202 and is followed until "
        "it succeeds. Error = |ETA − real wait|.",
        "",
        "| claims | served at once | queued | queued and served | not served | median wait s | "
        "median abs error s | median error / wait | p90 error / wait |",
        "|---|---|---|---|---|---|---|---|---|",
        "| "
        + " | ".join(
            [
                str(result["claims"]),
                str(result["served_at_once"]),
                str(result["queued"]),
                str(result["queued_served"]),
                str(result["not_served"]),
                _fmt(result["median_wait_s"], 2),
                _fmt(result["median_abs_error_s"], 2),
                _fmt(relative, 3),
                _fmt(result.get("p90_relative_error"), 3),
            ]
        )
        + " |",
        "",
    ]
    if relative is not None:
        lines.append(
            f"- Median absolute ETA error = {relative * 100:.0f}% of the real wait (target ≤ 25%): "
            f"{_ok(relative <= 0.25)}."
        )
    lines += ["", f"![ETA against the real wait]({image})", ""]
    return lines


def events_plot(result: dict[str, Any], path: Path) -> None:
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


def events_section(result: dict[str, Any], image: str) -> list[str]:
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
            f"| {label} | {row.get('n', 0)} | {_fmt(row.get('p50_s'), 2)} | {_fmt(row.get('p90_s'), 2)} "
            f"| {_fmt(row.get('max_s'), 2)} |"
        )
    after = result.get("after_delivery", {})
    if after.get("n"):
        lines += [
            "",
            f"Of the events-on latency, the platform's delivery delay is the larger part: from the event's "
            f"arrival at services to `idle` took p50 {_fmt(after.get('p50_s'), 2)} s, p90 "
            f"{_fmt(after.get('p90_s'), 2)} s, max {_fmt(after.get('max_s'), 2)} s ({after['n']} instances "
            "whose event arrived before the starting prober promoted them).",
        ]
    if on.get("p50_s") is not None:
        lines += ["", f"- Events on: p50 = {on['p50_s']} s (target ≤ 2 s): {_ok(on['p50_s'] <= 2.0)}."]
    lines += ["", f"![promotion latency]({image})", ""]
    return lines


def write(results: dict[str, Any], markdown: Path, images: Path) -> None:
    images.mkdir(parents=True, exist_ok=True)
    rel = images.relative_to(markdown.parent) if images.is_relative_to(markdown.parent) else images
    machine = results.get("machine", {})
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`; one benchmark: `python -m bench "
        "claims|reconcile|warmup|queue|sim|events`, "
        "small and fast: `--quick`) from `bench/results/results.json`. Every figure below was measured on "
        "the "
        "machine described here, in one run per benchmark; compare ratios, not absolute times.",
        "",
        f"Machine: {machine.get('cpus', '?')} CPUs ({machine.get('cpu', '?')}), "
        f"{machine.get('memory_gb', '?')} GB, "
        f"{machine.get('kernel', '?')}, Python {machine.get('python', '?')}. Each section names the commit "
        "it measured.",
        "",
    ]
    for name, section in (
        ("claims", claims_section),
        ("reconcile", reconcile_section),
        ("warmup", warmup_section),
        ("queue", queue_section),
        ("sim", sim_report.section),
        ("events", events_section),
    ):
        if name in results:
            image = images / f"{name}.png"
            plots = {
                "claims": claims_plot,
                "reconcile": reconcile_plot,
                "warmup": warmup_plot,
                "queue": queue_plot,
                "sim": sim_report.plot,
                "events": events_plot,
            }
            plots[name](results[name], image)
            body = section(results[name], str(rel / f"{name}.png"))
            measured = results[name].get("measured")
            if measured:
                # Under the section's heading: which code these figures are of.
                body[1:1] = ["", f"Measured at commit {measured['commit']}, {measured['date']}."]
            lines += body
    if FINDINGS.exists():
        lines += [FINDINGS.read_text().rstrip(), ""]
    markdown.write_text("\n".join(lines))
