"""`python -m bench [claims] [reconcile] [warmup] [queue] [sim] [events] [--quick]`: run them, write
BENCHMARKS.md.

A full run (no `--quick`) merges its results into `bench/results/results.json` and rewrites
`BENCHMARKS.md` and the plots; `--quick` writes everything under `.data/bench-quick/` instead,
so a quick look never replaces the committed figures. So does `sim --trace file.csv` (a demand
trace of one's own), under `.data/bench-sim/`. The simulator alone needs no PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench import claims, events, queue, reconcile, report, sim, warmup
from bench.procs import ROOT, embedded_postgres
from bench.sim.traces import TraceError

BENCHMARKS = ("claims", "reconcile", "warmup", "queue", "sim", "events")


def machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit or "?",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


async def run(
    names: list[str], quick: bool, admin_url: str, log_dir: Path, sim_run: sim.SimRun | None = None
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in names:
        started = time.perf_counter()
        print(f"bench: {name} ...", flush=True)
        if name == "sim":
            results[name] = sim.run(sim_run or (sim.QUICK if quick else sim.SimRun()))
        elif name == "claims":
            results[name] = await claims.run(
                admin_url, claims.QUICK if quick else claims.ClaimsConfig(), log_dir
            )
        elif name == "reconcile":
            config = reconcile.QUICK if quick else reconcile.ReconcileConfig()
            results[name] = await reconcile.run(admin_url, config, log_dir)
        elif name == "events":
            events_config = events.QUICK if quick else events.EventsConfig()
            results[name] = await events.run(admin_url, events_config, log_dir)
        elif name == "queue":
            results[name] = await queue.run(admin_url, queue.QUICK if quick else queue.QueueConfig(), log_dir)
        else:
            results[name] = await warmup.run(
                admin_url, warmup.QUICK if quick else warmup.WarmupConfig(), log_dir
            )
        results[name]["seconds"] = round(time.perf_counter() - started, 1)
        # Benchmarks run one at a time: each section says which code it measured.
        here = machine()
        results[name]["measured"] = {"commit": here["commit"], "date": here["date"]}
        print(f"bench: {name} done in {results[name]['seconds']} s", flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("benchmarks", nargs="*", help=f"any of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each")
    parser.add_argument("--trace", type=Path, help="sim: a CSV of claim times instead of the bundled traces")
    parser.add_argument(
        "--warmup", type=float, default=0.0, help="sim --trace: seconds simulated, not counted"
    )
    parser.add_argument("--seed", type=int, default=1, help="sim: the seed of the traces and the platform")
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(args.benchmarks)) or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    if args.trace is not None and names != ["sim"]:
        parser.error("--trace is for the simulator alone: python -m bench sim --trace file.csv")
    sim_run = sim.QUICK if args.quick else sim.SimRun()
    sim_run = dataclasses.replace(sim_run, seed=args.seed, csv=args.trace, csv_warmup_s=args.warmup)
    if args.trace is not None:
        try:
            sim.load_traces(sim_run)  # a bad file is told before anything runs
        except TraceError as exc:
            parser.error(str(exc))
    out = ROOT / (".data/bench-quick" if args.quick else ".data/bench-sim" if args.trace else "bench/results")
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as logs, contextlib.ExitStack() as stack:
        # The simulator runs in memory: PostgreSQL starts only for the benchmarks that need it.
        admin_url = "" if names == ["sim"] else stack.enter_context(embedded_postgres())
        log_dir = Path(os.environ.get("BENCH_LOG_DIR", logs))
        results.update(asyncio.run(run(names, args.quick, admin_url, log_dir, sim_run)))
    results["machine"] = machine()
    results_path.write_text(json.dumps(results, indent=1) + "\n")
    markdown = out / "BENCHMARKS.md" if args.quick else ROOT / "BENCHMARKS.md"
    report.write(results, markdown, out)
    print(f"bench: wrote {markdown} and plots in {out}", flush=True)


if __name__ == "__main__":
    main()
