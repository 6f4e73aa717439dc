import asyncio
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from runtime.launcher import runtime_command, runtime_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "gw_process_token_0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(tmp_path: Path, port: int, log_name: str, **extra: str) -> subprocess.Popen[bytes]:
    env = runtime_env(
        instance_id="inst_proc", gateway_token=TOKEN, port=port, data_dir=tmp_path / "data", extra=extra
    )
    with (tmp_path / log_name).open("wb") as log:
        return subprocess.Popen(runtime_command(), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "runtime exited before becoming ready"
        try:
            if (await client.get("/pool/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("runtime never became ready")


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while (code := proc.poll()) is None:
        assert time.monotonic() < deadline, "runtime did not exit"
        await asyncio.sleep(0.1)
    return code


async def test_binding_survives_a_process_restart(tmp_path: Path) -> None:
    port = free_port()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        proc = start(tmp_path, port, "first.log")
        try:
            await wait_ready(client, proc)
            body = {"agentName": "Ada", "instructions": "Be kind."}
            created = (await client.post("/pool/provision", json=body, headers=AUTH)).json()
            proc.send_signal(signal.SIGTERM)
            # uvicorn shuts down gracefully, then re-raises the signal so the parent sees how it ended.
            assert await wait_exit(proc) in (0, -signal.SIGTERM)
        finally:
            stop(proc)

        proc = start(tmp_path, port, "second.log")
        try:
            await wait_ready(client, proc)
            status = (await client.get("/convos/status", headers=AUTH)).json()
        finally:
            stop(proc)

    assert status["conversationId"] == created["conversationId"]
    assert status["clean"] is False
    logs = (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()
    assert "runtime.started" in logs and "runtime.provisioned" in logs
    assert TOKEN not in logs


async def test_crash_after_knob_exits_with_nonzero_status(tmp_path: Path) -> None:
    proc = start(tmp_path, free_port(), "crash.log", RUNTIME_CRASH_AFTER="0.5")
    try:
        assert await wait_exit(proc) == 1
    finally:
        stop(proc)
    assert "runtime.crash" in (tmp_path / "crash.log").read_text()


async def test_invalid_config_exits_without_echoing_secrets(tmp_path: Path) -> None:
    env = runtime_env(
        instance_id="inst_proc",
        gateway_token="",
        port=free_port(),
        data_dir=tmp_path / "data",
        extra={"INSTANCE_SERVICES_TOKEN": "svc-secret-123"},
    )
    del env["GATEWAY_TOKEN"]
    result = subprocess.run(runtime_command(), env=env, cwd=ROOT, capture_output=True, timeout=30)
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 2
    assert "runtime.config.invalid" in output and "gateway_token" in output
    assert "svc-secret-123" not in output
