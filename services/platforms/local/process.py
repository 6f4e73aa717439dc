"""Process bookkeeping of the local provider: free ports, private JSON files, and telling a live
runtime we started from an unrelated process that got the same pid."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_private(path: Path, payload: Any) -> None:
    # env.json carries the instance's tokens: readable by the owner only.
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh)
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def live_process(info: dict[str, Any] | None) -> psutil.Process | None:
    """The recorded runtime process if it is still alive and really ours (not a reused pid)."""
    if not info or not isinstance(info.get("pid"), int):
        return None
    try:
        proc = psutil.Process(info["pid"])
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if abs(proc.create_time() - float(info.get("create_time", 0))) > 0.05:
            return None
        if proc.cmdline() != info.get("cmdline"):
            return None
        return proc
    except (psutil.Error, ValueError, TypeError):
        return None


def await_cmdline(proc: psutil.Process, timeout: float = 2.0) -> None:
    """Just after exec, /proc/<pid>/cmdline can read empty for a moment (measured: ~0.3 ms, more
    under load), and `live_process` would then call the new child not ours: a destroy right
    after create would leave it running. Wait (bounded) until it is readable."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(psutil.Error):
        while not proc.cmdline() and time.monotonic() < deadline:
            time.sleep(0.001)


async def port_answers(port: int, timeout: float = 0.5) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
