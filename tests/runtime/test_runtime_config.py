import os
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from runtime.config import Settings
from runtime.launcher import runtime_command, runtime_env


def test_settings_defaults_follow_the_contract() -> None:
    settings = Settings(gateway_token="s3cret-token", instance_id="inst_1")
    assert (settings.host, settings.port, settings.runtime_version) == ("127.0.0.1", 8080, "0.1.0")
    assert settings.data_dir == Path(".data/runtime/inst_1")
    assert "s3cret-token" not in repr(settings)


@pytest.mark.parametrize("token", ["", None])
def test_settings_require_a_gateway_token(token: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_TOKEN", raising=False)
    with pytest.raises(ValidationError):
        Settings() if token is None else Settings(gateway_token=token)


@pytest.mark.parametrize("instance_id", ["..", "../x", "a/b", ""])
def test_settings_reject_instance_ids_that_are_not_a_plain_name(instance_id: str) -> None:
    with pytest.raises(ValidationError):
        Settings(gateway_token="t", instance_id=instance_id)


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TOKEN", "env-token")
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("RUNTIME_NEVER_READY", "1")
    monkeypatch.setenv("RUNTIME_STARTUP_DELAY", "1.5")
    settings = Settings()
    assert settings.gateway_token.get_secret_value() == "env-token"
    assert (settings.port, settings.runtime_never_ready, settings.runtime_startup_delay) == (9123, True, 1.5)


def test_runtime_command_runs_the_package_with_this_interpreter() -> None:
    assert runtime_command() == [sys.executable, "-m", "runtime"]


def test_runtime_env_sets_the_contract_and_drops_inherited_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_NEVER_READY", "1")
    monkeypatch.setenv("GATEWAY_TOKEN", "parent-token")
    monkeypatch.setenv("SOME_TOOL_KEY", "kept")
    env = runtime_env(
        instance_id="inst_1",
        gateway_token="child-token",
        port=9001,
        data_dir=Path("/tmp/rt"),
        extra={"RUNTIME_JOIN_PENDING": "1", "POOL_URL": "http://pool"},
    )
    assert env["INSTANCE_ID"] == "inst_1"
    assert env["GATEWAY_TOKEN"] == "child-token"
    assert env["PORT"] == "9001"
    assert env["RUNTIME_DATA_DIR"] == "/tmp/rt"
    assert env["RUNTIME_JOIN_PENDING"] == "1"
    assert env["POOL_URL"] == "http://pool"
    assert env["SOME_TOOL_KEY"] == "kept"
    assert env["PATH"] == os.environ["PATH"]
    assert "RUNTIME_NEVER_READY" not in env
