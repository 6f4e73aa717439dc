"""Templates through the operator API: the default one the migration made, create/read/list,
changes as new immutable versions, archive and fork rules, and every bad input a clear 4xx."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest

from pool.config import Settings
from pool.main import create_app
from shared.db import libpq_url
from tests.pool.conftest import AUTH, running

DEFAULT_VERSION = {
    "templateId": "default",
    "version": 1,
    "image": None,
    "tools": None,
    "agentName": None,
    "instructions": None,
    "model": None,
    "env": {},
    "resources": {},
    "poolPolicy": {
        "minIdle": None,
        "maxIdle": None,
        "sizing": None,
        "schedules": [],
        "idleHoursPerDay": None,
        "maxIdleAgeSeconds": None,
    },
    "ownerAgentLimit": None,
    "rollout": {"strategy": "on-replenish"},
}
SPEC = {
    "slug": "mailer",
    "name": "Mailer",
    "owner": "acme",
    "visibility": "public",
    "image": "ghcr.io/acme/runtime:1",
    "tools": ["openrouter", "agentmail"],
    "agentName": "Postie",
    "instructions": "Answer mail.",
    "model": "openai/gpt-4o-mini",
    "env": {"LOG_LEVEL": "debug"},
    "resources": {"cpu": 1, "memory": "512Mi"},
    "poolPolicy": {
        "minIdle": 1,
        "maxIdle": 4,
        "sizing": "demand",
        "schedules": ["weekdays 09-18 >= 3"],
        "idleHoursPerDay": 48.0,
        "maxIdleAgeSeconds": 86400.0,
    },
    "ownerAgentLimit": 2,
    "rollout": {"strategy": "recreate", "floor": 1},
}


def _without_times(body: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in body.items() if k not in ("createdAt", "updatedAt", "id")}
    if "current" in body:
        body["current"] = _without_times(body["current"])
    return body


async def _create(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/api/templates", json={**SPEC, **overrides}, headers=AUTH)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_default_template_is_there_with_the_deployments_settings(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/templates", headers=AUTH)
    assert response.status_code == 200
    [default] = response.json()
    assert _without_times(default) == {
        "slug": "default",
        "name": "Default",
        "owner": "operator",
        "visibility": "public",
        "forkedFrom": None,
        "forkedFromVersion": None,
        "currentVersion": 1,
        "archivedAt": None,
        "current": {k: v for k, v in DEFAULT_VERSION.items() if k != "templateId"}
        | {"templateId": "default"},
    }
    assert default["id"] == "default"


async def test_create_read_list_and_filter(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    assert created["id"].startswith("tpl_") and created["currentVersion"] == 1
    expected_version = {
        "templateId": created["id"],
        "version": 1,
        **{k: v for k, v in SPEC.items() if k not in ("slug", "name", "owner", "visibility")},
    }
    assert _without_times(created["current"]) == _without_times(expected_version)

    read = (await client.get(f"/api/templates/{created['id']}", headers=AUTH)).json()
    assert read == created
    await _create(client, slug="private-one", owner="other", visibility="private", tools=None)

    def ids(response: httpx.Response) -> list[str]:
        return [t["slug"] for t in response.json()]

    assert ids(await client.get("/api/templates", headers=AUTH)) == ["default", "mailer", "private-one"]
    assert ids(await client.get("/api/templates?owner=acme", headers=AUTH)) == ["mailer"]
    assert ids(await client.get("/api/templates?visibility=private", headers=AUTH)) == ["private-one"]


async def test_a_change_is_a_new_version_and_old_versions_stay_as_written(
    client: httpx.AsyncClient, pool_db_url: str
) -> None:
    created = await _create(client)
    path = f"/api/templates/{created['id']}"
    changed = await client.patch(
        path, json={"image": "ghcr.io/acme/runtime:2", "tools": ["openrouter"]}, headers=AUTH
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["currentVersion"] == 2
    assert body["current"]["image"] == "ghcr.io/acme/runtime:2" and body["current"]["tools"] == ["openrouter"]
    # Fields the change did not name are carried over from version 1.
    assert body["current"]["instructions"] == "Answer mail." and body["current"]["env"] == {
        "LOG_LEVEL": "debug"
    }

    # Name and visibility belong to the template: no new version.
    renamed = (await client.patch(path, json={"name": "Mail bot"}, headers=AUTH)).json()
    assert renamed["name"] == "Mail bot" and renamed["currentVersion"] == 2

    versions = (await client.get(f"{path}/versions", headers=AUTH)).json()
    assert [v["version"] for v in versions] == [1, 2]
    first = (await client.get(f"{path}/versions/1", headers=AUTH)).json()
    assert first == created["current"]
    missing = await client.get(f"{path}/versions/3", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["kind"] == "NotFound"

    # The database itself refuses to rewrite a version.
    conn = await asyncpg.connect(libpq_url(pool_db_url))
    try:
        with pytest.raises(asyncpg.RaiseError, match="immutable"):
            await conn.execute(
                "UPDATE template_versions SET image = 'x' WHERE template_id = $1", created["id"]
            )
    finally:
        await conn.close()


async def test_archive_rules(client: httpx.AsyncClient) -> None:
    refused = await client.post("/api/templates/default/archive", headers=AUTH)
    assert refused.status_code == 409
    assert refused.json() == {
        "error": "The default template cannot be archived: it is what claims get without one.",
        "kind": "Conflict",
        "detail": "the default template cannot be archived: it is what claims get without one",
    }
    created = await _create(client)
    path = f"/api/templates/{created['id']}"
    archived = await client.post(f"{path}/archive", headers=AUTH)
    assert archived.status_code == 200 and archived.json()["archivedAt"] is not None
    again = await client.post(f"{path}/archive", headers=AUTH)
    assert again.status_code == 200 and again.json()["archivedAt"] == archived.json()["archivedAt"]

    listed = [t["id"] for t in (await client.get("/api/templates", headers=AUTH)).json()]
    assert listed == ["default"]
    with_archived = [t["id"] for t in (await client.get("/api/templates?archived=true", headers=AUTH)).json()]
    assert with_archived == ["default", created["id"]]
    assert (await client.patch(path, json={"model": "x/y"}, headers=AUTH)).status_code == 409
    # The slug is free again for the same owner.
    assert (await _create(client))["slug"] == "mailer"


async def test_fork_rules(client: httpx.AsyncClient) -> None:
    public = await _create(client)
    await client.patch(f"/api/templates/{public['id']}", json={"model": "anthropic/claude"}, headers=AUTH)
    fork = await client.post(f"/api/templates/{public['id']}/fork", json={"owner": "bob"}, headers=AUTH)
    assert fork.status_code == 201, fork.text
    forked = fork.json()
    assert (forked["owner"], forked["visibility"], forked["slug"]) == ("bob", "private", "mailer")
    assert (forked["forkedFrom"], forked["forkedFromVersion"], forked["currentVersion"]) == (
        public["id"],
        2,
        1,
    )
    source_v2 = (await client.get(f"/api/templates/{public['id']}/versions/2", headers=AUTH)).json()
    assert _without_times(forked["current"]) == _without_times(source_v2) | {
        "templateId": forked["id"],
        "version": 1,
    }

    # Bob's fork is private: Carol cannot fork it (it is not hers to know of); Bob can.
    by_carol = await client.post(f"/api/templates/{forked['id']}/fork", json={"owner": "carol"}, headers=AUTH)
    assert by_carol.status_code == 404 and by_carol.json()["kind"] == "NotFound"
    by_bob = await client.post(
        f"/api/templates/{forked['id']}/fork", json={"owner": "bob", "slug": "mailer-2"}, headers=AUTH
    )
    assert by_bob.status_code == 201
    # Bob already has a live `mailer`.
    clash = await client.post(f"/api/templates/{public['id']}/fork", json={"owner": "bob"}, headers=AUTH)
    assert clash.status_code == 409 and "slug" in clash.json()["error"]

    await client.post(f"/api/templates/{public['id']}/archive", headers=AUTH)
    archived = await client.post(f"/api/templates/{public['id']}/fork", json={"owner": "dan"}, headers=AUTH)
    assert archived.status_code == 409


BAD_CREATES: list[tuple[dict[str, Any], int, str]] = [
    ({"env": {"OPENAI_API_KEY": "x"}}, 400, "looks like a secret"),
    ({"env": {"DB_PASSWORD": "x"}}, 400, "looks like a secret"),
    ({"env": {"UPSTREAM": "sk-or-v1-abcdef"}}, 400, "looks like a secret"),
    ({"env": {"GATEWAY_TOKEN": "x"}}, 400, "set by the pool's services"),
    ({"env": {"POOL_URL": "http://x"}}, 400, "set by the pool's services"),
    ({"env": {"lower": "x"}}, 400, "upper-case"),
    ({"tools": ["nosuch"]}, 400, "unknown or unconfigured tools: nosuch"),
    ({"tools": ["bankr"]}, 400, "unknown or unconfigured tools: bankr"),
    ({"tools": ["openrouter", "openrouter"]}, 422, "each tool may be named once"),
    ({"slug": "Not A Slug"}, 422, "slug"),
    ({"poolPolicy": {"minIdle": 5, "maxIdle": 2}}, 422, "minIdle must not exceed maxIdle"),
    ({"poolPolicy": {"schedules": ["weekdays 09-25 >= 3"]}}, 422, "weekdays 09-25 >= 3"),
    ({"poolPolicy": {"sizing": "magic"}}, 422, "sizing"),
    ({"rollout": {"strategy": "big-bang"}}, 422, "rollout"),
    ({"rollout": {"strategy": "canary", "count": 0}}, 422, "rollout"),
    ({"resources": {"blob": "x" * 3000}}, 422, "resources must serialise"),
    ({"visibility": "secret"}, 422, "visibility"),
    ({"surprise": 1}, 422, "surprise"),
    ({"instructions": "nul\x00"}, 422, "NUL"),
]


@pytest.mark.parametrize(("change", "status", "says"), BAD_CREATES)
async def test_bad_input_is_a_clear_4xx_and_writes_nothing(
    client: httpx.AsyncClient, change: dict[str, Any], status: int, says: str
) -> None:
    response = await client.post("/api/templates", json={**SPEC, **change}, headers=AUTH)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "kind", "detail"} and says in str(body)
    assert body["error"].endswith(".")
    # A refused env value is never echoed back (a 422 would echo its input).
    assert "sk-or-v1" not in response.text
    assert [t["id"] for t in (await client.get("/api/templates", headers=AUTH)).json()] == ["default"]


async def test_bad_ids_duplicates_and_missing_templates(client: httpx.AsyncClient) -> None:
    await _create(client)
    duplicate = await client.post("/api/templates", json=SPEC, headers=AUTH)
    assert duplicate.status_code == 409
    assert duplicate.json()["error"] == "Owner 'acme' already has a template with slug 'mailer'."
    assert (await client.get("/api/templates/not-an-id", headers=AUTH)).status_code == 422
    missing = await client.get("/api/templates/tpl_000000000000", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"] == "No template tpl_000000000000."
    bad_change = await client.patch("/api/templates/default", json={"env": {"SECRET": "x"}}, headers=AUTH)
    assert bad_change.status_code == 400
    # A null name or visibility is refused (the fuzzer's 500: the columns are NOT NULL), not written.
    for field in ("name", "visibility"):
        nulled = await client.patch("/api/templates/default", json={field: None, "model": "m"}, headers=AUTH)
        assert nulled.status_code == 422 and f"{field} cannot be null" in nulled.json()["error"], nulled.text
    assert (await client.get("/api/templates/default", headers=AUTH)).json()["currentVersion"] == 1


async def test_tools_cannot_be_checked_while_services_is_down_and_nothing_is_written(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(create_app(make_settings(services_url="http://127.0.0.1:9"))) as pool:
        response = await pool.post("/api/templates", json=SPEC, headers=AUTH)
        assert response.status_code == 502 and response.json()["kind"] == "TransientError"
        assert response.json()["error"].startswith("Services unreachable")
        # Without tools there is nothing to ask services.
        assert (
            await pool.post("/api/templates", json={**SPEC, "tools": None}, headers=AUTH)
        ).status_code == 201
        assert [t["slug"] for t in (await pool.get("/api/templates", headers=AUTH)).json()] == [
            "default",
            "mailer",
        ]


async def test_a_change_after_a_rollback_is_a_version_past_the_rolled_back_one(
    client: httpx.AsyncClient, pool_db_url: str
) -> None:
    """A rolled-back canary leaves its version written and the template's current version one
    below it: the next change must not try to write that version again (it answered 500)."""
    created = await _create(client)
    path = f"/api/templates/{created['id']}"
    canary = {"instructions": "Answer mail, v2.", "rollout": {"strategy": "canary", "windowSeconds": 10}}
    assert (await client.patch(path, json=canary, headers=AUTH)).json()["currentVersion"] == 2
    # What the tick writes when the canary fails (pool.templates.rollouts.advance_all).
    conn = await asyncpg.connect(libpq_url(pool_db_url))
    try:
        await conn.execute(
            "UPDATE templates SET current_version = 1, "
            'rollout_state = rollout_state || \'{"phase": "rolled_back", "reason": "canary died"}\' '
            "WHERE id = $1",
            created["id"],
        )
    finally:
        await conn.close()
    again = await client.patch(path, json={"instructions": "Answer mail, v3."}, headers=AUTH)
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["currentVersion"] == 3 and body["current"]["instructions"] == "Answer mail, v3."
    # The new version is made from the current one (1), not from the rolled-back one.
    assert body["current"]["image"] == SPEC["image"]
    versions = (await client.get(f"{path}/versions", headers=AUTH)).json()
    assert [(v["version"], v["instructions"]) for v in versions] == [
        (1, "Answer mail."),
        (2, "Answer mail, v2."),
        (3, "Answer mail, v3."),
    ]
