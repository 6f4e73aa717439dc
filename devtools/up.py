"""`make up` (`python -m devtools.up`): the whole system on one machine, stopped cleanly by Ctrl-C.

Order: recover from a previous crash → embedded PostgreSQL → both databases migrated → (fake
Railway) → services → pool → banner → warm-up progress → wait for Ctrl-C or a child's death →
stop children in reverse order → kill leftover runtime processes → stop PostgreSQL.

Crash recovery relies on two records under the data dir: `up.pids` (pid + create time of every
child we started, so a reused pid is never mistaken for ours) and the local provider's instance
folders (runtime processes carry `RUNTIME_DATA_DIR` inside them); devtools/processes.py keeps both.
The next run finds those instances dead and the pool replaces them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from devtools.pg import EmbeddedPostgres
from devtools.processes import (
    STOP_GRACE_SECONDS,
    Supervisor,
    console,
    log_tail,
    recover,
    runtime_leftovers,
    terminate,
)
from shared.migrations import upgrade


@dataclass
class UpOptions:
    data_dir: str = ".data"
    min_idle: int = 2
    pool_port: int = 8000
    services_port: int = 8001
    host: str = "127.0.0.1"
    warmup_timeout: float = 300.0
    # Exit after warm-up instead of serving until a signal (not used by `make up`).
    exit_when_ready: bool = False


# -- secrets -----------------------------------------------------------------------------------


SECRET_NAMES = ("pool_api_key", "services_api_key", "pool_encryption_key", "services_encryption_key")


def load_secrets(data_dir: Path) -> dict[str, str]:
    """Generated once and kept (mode 0600) so a restart can still decrypt what it stored."""
    path = data_dir / "secrets.json"
    stored: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(path.read_text())
        if isinstance(loaded, dict):
            stored = {str(k): str(v) for k, v in loaded.items()}
    prefixes = {"pool_api_key": "pool_sk", "services_api_key": "services_sk"}
    for name in SECRET_NAMES:
        stored.setdefault(name, f"{prefixes.get(name, 'key')}_{secrets.token_urlsafe(32)}")
    stored.setdefault("admin_password", secrets.token_urlsafe(12))
    _write_private(path, json.dumps(stored, indent=2))
    return stored


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    path.chmod(0o600)  # an older file keeps its mode through O_CREAT


# -- the run -----------------------------------------------------------------------------------


class Stopped(Exception):
    """A signal asked us to stop."""


class ChildDied(Exception):
    """A process we started exited, or never became healthy."""


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def services_env(opts: UpOptions, data_dir: Path, keys: dict[str, str], db_url: str) -> dict[str, str]:
    env = _base_env()
    env.update(
        SERVICES_DATABASE_URL=db_url,
        SERVICES_HOST=opts.host,
        SERVICES_PORT=str(opts.services_port),
        SERVICES_API_KEY=keys["services_api_key"],
        SERVICES_ENCRYPTION_KEY=keys["services_encryption_key"],
        SERVICES_POOL_URL=f"http://{opts.host}:{opts.pool_port}",
        SERVICES_LOCAL_DATA_DIR=str(data_dir / "local-instances"),
    )
    env.setdefault("SERVICES_PLATFORM", "railway" if env.get("RAILWAY_API_TOKEN") else "local")
    return env


def pool_env(opts: UpOptions, keys: dict[str, str], db_url: str) -> dict[str, str]:
    env = _base_env()
    # A key or password the operator configured wins over the generated one.
    env.setdefault("POOL_API_KEY", keys["pool_api_key"])
    env.setdefault("POOL_ADMIN_PASSWORD", keys["admin_password"])
    env.setdefault("POOL_TICK_INTERVAL_SECONDS", "5")
    env.update(
        POOL_DATABASE_URL=db_url,
        POOL_HOST=opts.host,
        POOL_PORT=str(opts.pool_port),
        POOL_MIN_IDLE=str(opts.min_idle),
        POOL_SERVICES_URL=f"http://{opts.host}:{opts.services_port}",
        POOL_SERVICES_API_KEY=keys["services_api_key"],
        POOL_ENCRYPTION_KEY=keys["pool_encryption_key"],
    )
    return env


def _check(stop: threading.Event, supervisor: Supervisor) -> None:
    if stop.is_set():
        raise Stopped
    dead = supervisor.dead_child()
    if dead is not None:
        raise ChildDied(f"{dead.name} exited with code {dead.process.returncode}:\n{log_tail(dead.log_path)}")


def wait_healthy(url: str, stop: threading.Event, supervisor: Supervisor, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check(stop, supervisor)
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        stop.wait(0.2)
    raise ChildDied(f"{url} did not become healthy within {timeout:.0f}s")


def watch_warmup(opts: UpOptions, api_key: str, stop: threading.Event, supervisor: Supervisor) -> None:
    """A progress bar of idle instances against the target, fed by GET /api/pool/counts."""
    url = f"http://{opts.host}:{opts.pool_port}/api/pool/counts"
    headers = {"Authorization": f"Bearer {api_key}"}
    columns = (TextColumn("warming up"), BarColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    deadline = time.monotonic() + opts.warmup_timeout
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("", total=max(opts.min_idle, 1))
        while time.monotonic() < deadline:
            _check(stop, supervisor)
            counts: dict[str, Any] = {}
            with contextlib.suppress(httpx.HTTPError, ValueError):
                counts = httpx.get(url, headers=headers, timeout=5.0).json()
            idle, starting = int(counts.get("idle", 0)), int(counts.get("starting", 0))
            progress.update(
                task, completed=min(idle, opts.min_idle), description=f"{idle} idle, {starting} starting"
            )
            if idle >= opts.min_idle:
                return
            stop.wait(1.0)
    console.print(
        f"[yellow]warm-up is slow: fewer than {opts.min_idle} idle after {opts.warmup_timeout:.0f}s[/]"
    )


def banner(opts: UpOptions, data_dir: Path) -> None:
    base = f"http://{opts.host}:{opts.pool_port}"
    where = "POOL_ADMIN_PASSWORD" if "POOL_ADMIN_PASSWORD" in os.environ else data_dir / "admin-password"
    console.print(f"\n[bold green]dashboard[/]  {base}/dashboard")
    console.print(f"log in with the password in {where}, or the admin key")
    console.print(f"[bold]poolctl[/]    export POOL_URL={base} POOL_API_KEY=$(cat {data_dir / 'admin-key'})")
    console.print(f"logs       {data_dir / 'logs'}/   Ctrl-C stops everything\n")


def start_all(opts: UpOptions, data_dir: Path, stop: threading.Event, supervisor: Supervisor) -> None:
    stale = recover(data_dir)
    if stale:
        console.print(f"[yellow]stopped leftovers of an earlier run:[/] {', '.join(stale)}")
    keys = load_secrets(data_dir)
    with console.status("starting PostgreSQL and migrating…"):
        pg = EmbeddedPostgres(data_dir / "pg").start()
        supervisor.postgres = pg
        pool_db, services_db = pg.create_database("pool"), pg.create_database("services")
        upgrade("services", services_db)
        upgrade("pool", pool_db)
    console.print(f"PostgreSQL on 127.0.0.1:{pg.port} (data in {pg.data_dir})")
    s_env = services_env(opts, data_dir, keys, services_db)
    if os.environ.get("RAILWAY_FAKE") == "1":
        start_fake_railway(opts, supervisor, s_env)
    supervisor.start("services", [sys.executable, "-m", "services"], s_env)
    wait_healthy(f"http://{opts.host}:{opts.services_port}/healthz", stop, supervisor)
    p_env = pool_env(opts, keys, pool_db)
    _write_private(data_dir / "admin-key", p_env["POOL_API_KEY"])
    _write_private(data_dir / "admin-password", p_env["POOL_ADMIN_PASSWORD"])
    supervisor.start("pool", [sys.executable, "-m", "pool"], p_env)
    wait_healthy(f"http://{opts.host}:{opts.pool_port}/healthz", stop, supervisor)
    banner(opts, data_dir)
    watch_warmup(opts, p_env["POOL_API_KEY"], stop, supervisor)


def start_fake_railway(opts: UpOptions, supervisor: Supervisor, s_env: dict[str, str]) -> None:
    """RAILWAY_FAKE=1: the fake Railway API as one more child, with services pointed at it.

    Project-per-instance mode with short creation throttles, so a laptop pool fills in seconds.
    """
    port, token = _free_port(), f"fake_railway_{secrets.token_urlsafe(16)}"
    args = [sys.executable, "-m", "devtools.railway_fake", "--port", str(port), "--token", token]
    supervisor.start(
        "railway-fake", [*args, "--project-interval", "1", "--volume-interval", "1"], _base_env()
    )
    s_env.update(
        SERVICES_PLATFORM="railway",
        RAILWAY_API_URL=f"http://{opts.host}:{port}/graphql/v2",
        RAILWAY_API_TOKEN=token,
        RAILWAY_API_TOKENS="",
        RAILWAY_MODE="per-instance",
        # The fake routes each service domain to a local runtime on 127.0.0.1:<port>, plain HTTP.
        RAILWAY_PUBLIC_SCHEME="http",
        RAILWAY_PROJECT_CREATE_COOLDOWN_SECONDS="1",
        RAILWAY_VOLUME_CREATE_COOLDOWN_SECONDS="1",
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(opts: UpOptions) -> int:
    data_dir = Path(opts.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    supervisor = Supervisor(data_dir)
    code = 0
    try:
        start_all(opts, data_dir, stop, supervisor)
        console.print("[bold green]ready[/]")
        while not opts.exit_when_ready:
            _check(stop, supervisor)
            stop.wait(0.5)
    except Stopped:
        console.print("\nstopping…")
    except ChildDied as exc:
        console.print(f"[bold red]{exc}[/]")
        code = 1
    finally:
        shutdown(supervisor, data_dir)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def shutdown(supervisor: Supervisor, data_dir: Path) -> None:
    supervisor.stop_all()
    leftovers = runtime_leftovers(data_dir / "local-instances")
    if leftovers:
        console.print(f"stopping {len(leftovers)} runtime instance(s)…")
        terminate(leftovers, STOP_GRACE_SECONDS)
    if supervisor.postgres is not None:
        console.print("stopping PostgreSQL…")
        supervisor.postgres.stop()
    console.print("stopped")


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    # `make up` passes no flags: each default is the environment variable README documents; argparse
    # converts (and rejects) string defaults like typed arguments, so a bad value is a usage error.
    parser = argparse.ArgumentParser(prog="python -m devtools.up", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("WARMPOOL_DATA_DIR", ".data"))
    parser.add_argument("--min-idle", type=_count, default=os.environ.get("POOL_MIN_IDLE", "2"))
    parser.add_argument("--pool-port", type=int, default=os.environ.get("POOL_PORT", "8000"))
    parser.add_argument("--services-port", type=int, default=os.environ.get("SERVICES_PORT", "8001"))
    args = parser.parse_args(argv)
    opts = UpOptions(args.data_dir, args.min_idle, args.pool_port, args.services_port)
    return run(opts)


if __name__ == "__main__":
    sys.exit(main())
