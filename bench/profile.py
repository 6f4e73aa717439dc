"""`python -m bench.profile`: where the pool's CPU goes on the claim path.

Runs the claim benchmark's set-up (PostgreSQL, the fake fleet, the pool as its own process, this
process as the load generator), then samples the pool with py-spy while claims run, and prints the
samples grouped by where they were taken (the innermost frame of a package we care about) and the
pool's own functions by inclusive share. `--raw FILE` keeps py-spy's collapsed stacks (one line per
stack, flamegraph.pl's input); `--speedscope FILE` writes a profile for speedscope.app instead.

py-spy attaches to the running pool (ptrace: root or CAP_SYS_PTRACE). Where it cannot,
`--profiler cprofile` runs the pool under `python -m cProfile` instead and prints its top functions
by own time (cProfile slows the pool ~2× and attributes awaits poorly: prefer py-spy).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from bench import claims
from bench.procs import app_process, drop_database, embedded_postgres, fleet_process, fresh_database

# Where a sample is charged: the innermost frame from one of these packages (py-spy names a frame
# `function (path:line)`, the path relative to its sys.path entry: `asyncpg/pool.py`).
CATEGORIES: dict[str, str] = {
    "asyncpg": "asyncpg (statements, connection pool)",
    "aiohttp": "aiohttp (the instance call)",
    "yarl": "aiohttp (the instance call)",
    "multidict": "aiohttp (the instance call)",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "json": "json",
    "prometheus_client": "metrics",
    "logging": "logging",
    "cryptography": "token decryption",
    "fastapi": "fastapi",
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "httptools": "uvicorn",
    "pool": "pool code",
    "shared": "shared code",
    "asyncio": "asyncio",
}
# The pool's own files that stand for something else.
SHARED_FILES = {"shared/logging.py": "logging", "shared/auth.py": "token decryption"}


def _path(frame: str) -> str:
    return frame.rpartition(" (")[2].rpartition(":")[0]


def category(stack: list[str]) -> str:
    for frame in reversed(stack):
        path = _path(frame)
        if path in SHARED_FILES:
            return SHARED_FILES[path]
        name = CATEGORIES.get(path.split("/", 1)[0])
        if name is not None:
            return name
    return "other (event loop, C)"


def _ours(frame: str) -> bool:
    return _path(frame).startswith(("pool/", "shared/"))


def summarise(collapsed: Path, top: int = 25) -> str:
    """py-spy's collapsed stacks (`frame;frame;... count`) grouped by category, and the pool's own
    functions by inclusive share."""
    by_category: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text:
            continue
        count = int(count_text)
        stack = stack_text.split(";")
        total += count
        by_category[category(stack)] += count
        # py-spy names a frame `function (path/file.py:line)`; the pool's own, once per stack.
        ours = {frame.rpartition(":")[0] for frame in stack if _ours(frame)}
        for frame in ours:
            inclusive[frame] += count
    lines = [f"{total} samples", "", "share  where (innermost frame)"]
    lines += [f"{100 * n / total:5.1f}% {name}" for name, n in by_category.most_common()]
    lines += ["", "share  the pool's and shared's functions, inclusive"]
    lines += [f"{100 * n / total:5.1f}% {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def _stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGINT makes py-spy write what it sampled; it is killed if it does not within `timeout`."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def profile(args: argparse.Namespace, admin_url: str, log_dir: Path) -> None:
    db_url = await fresh_database(admin_url, "pool")
    out = Path(args.raw or args.speedscope or log_dir / "pool.collapsed")
    stats_path = log_dir / "pool.pstats"
    try:
        async with fleet_process(log_dir) as fleet:
            await claims.seed(db_url, fleet.url, args.claims)
            env = claims.pool_env(db_url, args.claims)
            python_args = ("-m", "bench.profiled", str(stats_path)) if args.profiler == "cprofile" else ()
            async with (
                app_process("pool-profile", "pool", env, log_dir, python_args) as pool,
                httpx.AsyncClient() as http,
            ):
                pids = claims.Pids(pool.popen.pid, fleet.popen.pid)
                await claims.one_run(pool.url, db_url, fleet.url, http, args.delay_ms, 10, 50, pids)
                spy = None
                if args.profiler == "py-spy":
                    fmt = "speedscope" if args.speedscope else "raw"
                    command = [args.py_spy, "record", "--pid", str(pool.popen.pid), "--rate", str(args.rate)]
                    spy = subprocess.Popen([*command, "--format", fmt, "--output", str(out), "--nonblocking"])
                    await asyncio.sleep(1.0)  # attached before the load starts
                try:
                    run = await claims.one_run(
                        pool.url, db_url, fleet.url, http, args.delay_ms, args.concurrency, args.claims, pids
                    )
                finally:
                    if spy is not None:
                        await asyncio.to_thread(_stop, spy)
                pool_cpu, _, _ = run["cpu_ms"]
                doubles = sum(v for k, v in run["checks"].items() if k != "left_claiming")
                print(
                    f"{len(run['latency'])} claims at concurrency {args.concurrency}, "
                    f"runtime {args.delay_ms} ms: {run['throughput']:.0f} claims/s, "
                    f"pool CPU {pool_cpu:.2f} ms/claim (profiler on), double claims {doubles}"
                )
    finally:
        await drop_database(admin_url, db_url)
    if args.profiler == "cprofile":
        pstats.Stats(str(stats_path)).sort_stats("tottime").print_stats(args.top)
    elif not args.speedscope:
        print(summarise(out, args.top))
        print(f"\ncollapsed stacks: {out}")
    else:
        print(f"speedscope profile: {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--claims", type=int, default=3000, help="claims sampled (and idle instances seeded)")
    parser.add_argument("--delay-ms", type=int, default=0, help="the fleet's provision time")
    parser.add_argument("--profiler", choices=("py-spy", "cprofile"), default="py-spy")
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks in this file")
    parser.add_argument("--speedscope", type=Path, help="write a speedscope profile here instead")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    args.py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if args.profiler == "py-spy" and not Path(args.py_spy).exists():
        parser.error("py-spy is not installed (pip install py-spy), or use --profiler cprofile")
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as logs, embedded_postgres() as admin_url:
        asyncio.run(profile(args, admin_url, Path(os.environ.get("BENCH_LOG_DIR", logs))))


if __name__ == "__main__":
    main()
