import os
import sys
from pathlib import Path

# Contract variables a parent process may carry for itself; a child gets only the values passed in.
_NOT_INHERITED = (
    "INSTANCE_ID",
    "GATEWAY_TOKEN",
    "INSTANCE_SERVICES_TOKEN",
    "POOL_URL",
    "SERVICES_URL",
    "PORT",
)


def runtime_command() -> list[str]:
    return [sys.executable, "-m", "runtime"]


def runtime_env(
    *,
    instance_id: str,
    gateway_token: str,
    port: int,
    data_dir: str | Path,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _NOT_INHERITED and not key.startswith("RUNTIME_")
    }
    env.update(
        INSTANCE_ID=instance_id,
        GATEWAY_TOKEN=gateway_token,
        PORT=str(port),
        RUNTIME_DATA_DIR=str(data_dir),
    )
    env.update(extra or {})
    return env
