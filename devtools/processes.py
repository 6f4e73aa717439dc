"""The supervisor's process bookkeeping: the children it starts (own sessions, logs under the data
dir), the `up.pids` record of them, and recovery after a crash.

`up.pids` holds pid + create time of every child, so a reused pid is never mistaken for ours. Runtime
processes run in their own sessions and are found by the `RUNTIME_DATA_DIR` they carry, not by
parentage.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from rich.console import Console

from devtools.pg import EmbeddedPostgres

console = Console(highlight=False, soft_wrap=True)
STOP_GRACE_SECONDS = 10.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    create_time: float = field(default=0.0)


def _same_process(pid: int, create_time: float) -> psutil.Process | None:
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > 0.05 or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def terminate(procs: list[psutil.Process], grace: float) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace)


def runtime_leftovers(instances_dir: Path) -> list[psutil.Process]:
    """Runtime processes whose data dir lies under ours, whoever started them."""
    root = str(instances_dir.resolve()) + os.sep
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            data_dir = proc.environ().get("RUNTIME_DATA_DIR")
            if data_dir and str(Path(data_dir).resolve()).startswith(root):
                found.append(proc)
    return found


def recover(data_dir: Path) -> list[str]:
    """Stop what a crashed earlier run left behind; returns what was stopped, for the banner."""
    stopped: list[str] = []
    pidfile = data_dir / "up.pids"
    with contextlib.suppress(OSError, ValueError):
        for entry in json.loads(pidfile.read_text()):
            proc = _same_process(int(entry["pid"]), float(entry["create_time"]))
            if proc is not None:
                terminate([proc, *proc.children(recursive=True)], STOP_GRACE_SECONDS)
                stopped.append(f"{entry['name']} (pid {entry['pid']})")
    with contextlib.suppress(FileNotFoundError):
        pidfile.unlink()
    leftovers = runtime_leftovers(data_dir / "local-instances")
    terminate(leftovers, STOP_GRACE_SECONDS)
    stopped += [f"runtime (pid {proc.pid})" for proc in leftovers]
    return stopped


class Supervisor:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.children: list[Child] = []
        self.postgres: EmbeddedPostgres | None = None
        (data_dir / "logs").mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        log_path = self.data_dir / "logs" / f"{name}.log"
        with open(log_path, "ab") as log:
            # Own session: Ctrl-C reaches only us, and we stop the children in our own order.
            process = subprocess.Popen(
                args, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        child = Child(name, process, log_path, psutil.Process(process.pid).create_time())
        self.children.append(child)
        self._record()
        return child

    def _record(self) -> None:
        entries = [
            {"name": c.name, "pid": c.process.pid, "create_time": c.create_time} for c in self.children
        ]
        (self.data_dir / "up.pids").write_text(json.dumps(entries))

    def dead_child(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                console.print(f"stopping {child.name}…")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
                try:
                    child.process.wait(STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child.process.pid, signal.SIGKILL)
                    child.process.wait()
            # Anything left in the child's process group (workers it spawned) goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "up.pids").unlink()


def log_tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""
