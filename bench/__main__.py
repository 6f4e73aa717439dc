"""`python -m bench [claims] [reconcile] [warmup] [queue] [--quick]`: run benchmarks, write BENCHMARKS.md.

A full run (no `--quick`) merges its results into `bench/results/results.json` and rewrites
`BENCHMARKS.md` and the plots; `--quick` writes everything under `.data/bench-quick/` instead,
so a quick look never replaces the committed figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench import claims, queue, reconcile, report, warmup
from bench.procs import ROOT, embedded_postgres

BENCHMARKS = ("claims", "reconcile", "warmup", "queue")


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


async def run(names: list[str], quick: bool, admin_url: str, log_dir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in names:
        started = time.perf_counter()
        print(f"bench: {name} ...", flush=True)
        if name == "claims":
            results[name] = await claims.run(
                admin_url, claims.QUICK if quick else claims.ClaimsConfig(), log_dir
            )
        elif name == "reconcile":
            config = reconcile.QUICK if quick else reconcile.ReconcileConfig()
            results[name] = await reconcile.run(admin_url, config, log_dir)
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
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(args.benchmarks)) or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    out = ROOT / (".data/bench-quick" if args.quick else "bench/results")
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as logs, embedded_postgres() as admin_url:
        log_dir = Path(os.environ.get("BENCH_LOG_DIR", logs))
        results.update(asyncio.run(run(names, args.quick, admin_url, log_dir)))
    results["machine"] = machine()
    results_path.write_text(json.dumps(results, indent=1) + "\n")
    markdown = out / "BENCHMARKS.md" if args.quick else ROOT / "BENCHMARKS.md"
    report.write(results, markdown, out)
    print(f"bench: wrote {markdown} and plots in {out}", flush=True)


if __name__ == "__main__":
    main()
