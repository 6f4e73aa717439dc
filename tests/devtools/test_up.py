"""`make up`'s entry point as an operator runs it: a real process tree, real signals, real ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from devtools.processes import runtime_leftovers
from devtools.up import UpOptions, services_env, start_fake_railway
from tests.support import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]


class UpRun:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pool_port, self.services_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POOL_", "SERVICES_", "RAILWAY_"))}
        self.out = open(data_dir.parent / f"up-{self.pool_port}.out", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devtools.up", "--data-dir", str(data_dir), "--min-idle", "2",
             "--pool-port", str(self.pool_port), "--services-port", str(self.services_port)],
            cwd=ROOT, env=env, stdout=self.out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.pool_port}"

    def output(self) -> str:
        return (self.data_dir.parent / f"up-{self.pool_port}.out").read_text(errors="replace")

    def api_key(self) -> str:
        return (self.data_dir / "admin-key").read_text().strip()

    def wait_for_idle(self, count: int, timeout: float = 120.0) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                headers = {"Authorization": f"Bearer {self.api_key()}"}
                counts = httpx.get(f"{self.url}/api/pool/counts", headers=headers, timeout=5).json()
                if counts.get("idle", 0) >= count:
                    return counts
            except (OSError, httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"idle never reached {count}: {counts}\n{self.output()}")

    def process_tree(self) -> list[psutil.Process]:
        """Everything this run started: children, runtime instances (own sessions), PostgreSQL."""
        procs = psutil.Process(self.process.pid).children(recursive=True)
        procs += runtime_leftovers(self.data_dir / "local-instances")
        pid_file = self.data_dir / "pg" / "pgdata" / "postmaster.pid"
        procs.append(psutil.Process(int(pid_file.read_text().splitlines()[0])))
        return procs

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 60.0) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self.out.close()


def survivors(procs: list[psutil.Process]) -> list[str]:
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{proc.pid} {' '.join(proc.cmdline())}")
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    path.mkdir()
    yield path
    # Whatever a failed test left running is stopped, so no test leaks processes.
    for proc in runtime_leftovers(path / "local-instances"):
        proc.kill()
    pid_file = path / "pg" / "pgdata" / "postmaster.pid"
    if pid_file.exists():
        subprocess.run(["kill", "-INT", pid_file.read_text().splitlines()[0]], check=False)


def test_up_warms_the_pool_answers_a_claim_and_stops_everything_on_sigint(data_dir: Path) -> None:
    run = UpRun(data_dir)
    try:
        counts = run.wait_for_idle(2)
        assert counts["idle"] >= 2
        claim = httpx.post(
            f"{run.url}/api/pool/claim",
            headers={"Authorization": f"Bearer {run.api_key()}"},
            json={"agentName": "up-test", "instructions": "say hi"},
            timeout=30,
        )
        assert claim.status_code == 200, claim.text
        assert claim.json()["inviteUrl"].startswith("https://")
        tree = run.process_tree()
        assert len(tree) >= 5  # services, pool, 2+ runtimes, postgres
    finally:
        code = run.stop()
    assert code == 0, run.output()
    assert survivors(tree) == []
    assert runtime_leftovers(data_dir / "local-instances") == []
    secrets_file = data_dir / "secrets.json"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert "dashboard" in run.output() and "stopped" in run.output()

    # A second run reuses the data dir: same secrets, same database, pool refilled.
    first_secrets = json.loads(secrets_file.read_text())
    again = UpRun(data_dir)
    try:
        again.wait_for_idle(2)
        assert json.loads(secrets_file.read_text()) == first_secrets
        tree = again.process_tree()
    finally:
        assert again.stop() == 0, again.output()
    assert survivors(tree) == []


def test_up_recovers_after_being_killed(data_dir: Path) -> None:
    crashed = UpRun(data_dir)
    try:
        crashed.wait_for_idle(2)
        orphans = crashed.process_tree()
    finally:
        crashed.stop(signal.SIGKILL)
    # SIGKILL gives `up` no chance to clean up: its children live on in their own sessions.
    assert len(survivors(orphans)) >= 4
    recovered = UpRun(data_dir)
    try:
        recovered.wait_for_idle(2)
        assert "stopped leftovers of an earlier run" in recovered.output()
        leftover_children = [p for p in survivors(orphans) if "postgres" not in p]
        assert leftover_children == []
        tree = recovered.process_tree()
    finally:
        assert recovered.stop() == 0, recovered.output()
    assert survivors(tree) == []
    assert survivors(orphans) == []


def test_up_hands_services_platforms_to_services_unchanged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    platforms = (
        '[{"name": "local", "provider": "local", "capacity": 2}, {"name": "railway", "provider": "railway"}]'
    )
    monkeypatch.setenv("SERVICES_PLATFORMS", platforms)
    opts = UpOptions(data_dir=str(tmp_path), min_idle=2, pool_port=8000, services_port=8001, host="127.0.0.1")
    keys = {"services_api_key": "k", "services_encryption_key": "e"}
    env = services_env(opts, tmp_path, keys, "postgresql://x/services")
    assert env["SERVICES_PLATFORMS"] == platforms
    # The fake Railway points the Railway settings at itself and leaves the list alone.
    started: list[list[str]] = []

    class Recorder:
        def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
            started.append(args)

    start_fake_railway(opts, Recorder(), env)  # type: ignore[arg-type]
    assert env["SERVICES_PLATFORMS"] == platforms and env["RAILWAY_API_URL"].startswith("http://127.0.0.1:")
