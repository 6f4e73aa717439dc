"""`poolctl templates ...` as operators run it: a separate process against the pool over real HTTP
(services over real HTTP too, for the tools check)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pool.config import Settings
from pool.main import create_app
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from tests.fakes.tools import vendor_fakes
from tests.pool.test_cli import poolctl
from tests.pool.tick.conftest import SERVICES_KEY
from tests.support import serve

NO_POLICY = {
    "minIdle": None,
    "maxIdle": None,
    "sizing": None,
    "schedules": [],
    "idleHoursPerDay": None,
    "maxIdleAgeSeconds": None,
}


@pytest.fixture
async def pool_url(
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
    services_db_url: str,
    tmp_path: Path,
) -> AsyncIterator[str]:
    with vendor_fakes(monkeypatch, pooled=False):
        services = ServicesSettings(
            environment="test",
            database_url=services_db_url,
            api_key=SERVICES_KEY,
            encryption_key="test-encryption-key",
            local_data_dir=str(tmp_path / "instances"),
        )
        async with serve(create_services_app(services)) as services_url:
            settings = make_settings(services_url=services_url, services_api_key=SERVICES_KEY)
            async with serve(create_app(settings)) as url:
                yield url


async def test_templates_create_update_show_fork_archive_and_list(pool_url: str) -> None:
    created = await poolctl(
        "templates", "create", "mailer", "--name", "Mailer", "--owner", "acme", "--public",
        "--tool", "openrouter", "--tool", "agentmail", "--env", "LOG_LEVEL=debug",
        "--min-idle", "1", "--max-idle", "3", "--rollout", "recreate", "--json", '{"rollout": {"floor": 2}}',
        url=pool_url,
    )  # fmt: skip
    assert created.code == 0, created.err
    template_id = created.out.split()[1]
    assert template_id.startswith("tpl_") and "version 1" in created.out

    updated = await poolctl("templates", "update", template_id, "--model", "openai/gpt-4o", url=pool_url)
    assert updated.code == 0 and "version 2" in updated.out, updated.err
    shown = await poolctl("templates", "show", template_id, "--version", "1", url=pool_url)
    first = json.loads(shown.out)
    assert (first["model"], first["tools"], first["rollout"]) == (
        None,
        ["openrouter", "agentmail"],
        {"strategy": "recreate", "floor": 2},
    )
    assert first["env"] == {"LOG_LEVEL": "debug"} and first["poolPolicy"] == {
        **NO_POLICY,
        "minIdle": 1,
        "maxIdle": 3,
    }

    forked = await poolctl("templates", "fork", template_id, "--owner", "bob", url=pool_url)
    assert forked.code == 0 and "forked" in forked.out, forked.err
    listed = await poolctl("templates", "list", "--owner", "bob", url=pool_url)
    assert "mailer" in listed.out and "private" in listed.out and "acme" not in listed.out

    archived = await poolctl("templates", "archive", template_id, url=pool_url)
    assert archived.code == 0, archived.err
    everything = await poolctl("templates", "list", url=pool_url)
    assert template_id not in everything.out and "default" in everything.out


async def test_templates_refusals_are_messages_and_exit_codes(pool_url: str) -> None:
    default = await poolctl("templates", "archive", "default", url=pool_url)
    assert default.code == 1 and "409: The default template cannot be archived" in default.err
    secret = await poolctl("templates", "create", "x", "--name", "X", "--env", "API_TOKEN=abc", url=pool_url)
    assert secret.code == 1 and "looks like a secret" in secret.err
    tool = await poolctl("templates", "create", "x", "--name", "X", "--tool", "nosuch", url=pool_url)
    assert tool.code == 1 and "Unknown or unconfigured tools: nosuch" in tool.err
    nothing = await poolctl("templates", "update", "default", url=pool_url)
    assert nothing.code == 2 and "nothing to change" in nothing.err
