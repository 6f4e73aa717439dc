"""`POST /api/pool/instances/{id}/clone` against reference runtimes served in-process over real
HTTP (one uvicorn server each, its own data dir and knobs): which instance a clone takes, and what
every refusal and failure leaves behind (the source untouched; the target idle again or recovered)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from pool.main import create_app
from pool.models import Claim, Instance
from runtime.app import create_app as create_runtime_app
from runtime.config import Settings as RuntimeSettings
from tests.pool.conftest import AUTH, FakeServices, running
from tests.pool.factories import make_instance
from tests.support import serve

TEMPLATE = "tpl_clone"


class Fleet:
    """Reference runtimes served in-process, with pool rows for them."""

    def __init__(self, stack: contextlib.AsyncExitStack, tmp_path: Path, sessionmaker: Any) -> None:
        self._stack, self._tmp, self._sessionmaker = stack, tmp_path, sessionmaker
        self.clients: dict[str, httpx.AsyncClient] = {}

    async def add(self, *, status: str = "idle", age_minutes: int = 0, **row: Any) -> str:
        knobs = {k: v for k, v in row.items() if k.startswith("runtime_")}
        row = {k: v for k, v in row.items() if not k.startswith("runtime_")}
        token = f"gw_{secrets.token_hex(8)}"
        settings = RuntimeSettings(
            gateway_token=token, runtime_data_dir=self._tmp / secrets.token_hex(4), **knobs
        )
        url = await self._stack.enter_async_context(serve(create_runtime_app(settings)))
        created = datetime.now(UTC) - timedelta(minutes=age_minutes)
        row.setdefault("template_id", TEMPLATE)
        async with self._sessionmaker() as session, session.begin():
            instance = await make_instance(
                session, token=token, status=status, url=url, created_at=created, **row
            )
        client = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self.clients[instance.id] = await self._stack.enter_async_context(client)
        return instance.id

    async def source(self, *notes: str, **row: Any) -> str:
        """A claimed agent, provisioned on its runtime, that remembers `notes`."""
        instance_id = await self.add(status="claimed", agent_name="Ada", instructions="Be brief.", **row)
        runtime = self.clients[instance_id]
        provisioned = await runtime.post("/pool/provision", json={"agentName": "Ada", "instructions": "x"})
        assert provisioned.status_code == 200, provisioned.text
        for note in notes:
            assert (await runtime.post("/convos/memory", json={"text": note})).status_code == 200
        return instance_id

    async def notes(self, instance_id: str) -> list[str]:
        memory = (await self.clients[instance_id].get("/convos/memory")).json()
        return [note["text"] for note in memory["notes"]]

    async def status(self, instance_id: str) -> dict[str, Any]:
        return dict((await self.clients[instance_id].get("/convos/status")).json())


@pytest.fixture
async def fleet(tmp_path: Path, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[Fleet]:
    async with contextlib.AsyncExitStack() as stack:
        yield Fleet(stack, tmp_path, sessionmaker)


@pytest.fixture
async def pool(
    make_settings: Callable[..., Settings], fake_services: FakeServices
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(services_url=fake_services.url, clone_max_state_bytes=4096)
    async with running(create_app(settings)) as client:
        yield client


async def rows(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Instance]:
    async with sessionmaker() as session:
        return {row.id: row for row in await session.scalars(select(Instance))}


async def clone_of(pool: httpx.AsyncClient, source: str) -> httpx.Response:
    return await pool.post(f"/api/pool/instances/{source}/clone", headers=AUTH)


async def test_a_clone_takes_the_templates_newest_version_then_its_oldest_instance(
    pool: httpx.AsyncClient, fleet: Fleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    source = await fleet.source("a note", owner_id="owner-1")
    other_template = await fleet.add(template_id="default", age_minutes=30)
    old_version = await fleet.add(template_version=1, age_minutes=20)
    newest_younger = await fleet.add(template_version=2, age_minutes=1)
    newest_older = await fleet.add(template_version=2, age_minutes=10)

    taken = []
    for _ in range(3):
        response = await clone_of(pool, source)
        assert response.status_code == 200, response.text
        taken.append(response.json()["instanceId"])
    assert taken == [newest_older, newest_younger, old_version]
    assert [await fleet.notes(i) for i in taken] == [["a note"]] * 3

    # Only the other template's instance is idle: no instance of this one to clone into.
    empty = await clone_of(pool, source)
    assert empty.status_code == 503, empty.text
    assert empty.headers["Retry-After"] == "5"
    assert "no idle instance of template tpl_clone to clone into (none is idle)" in empty.json()["detail"]
    found = await rows(sessionmaker)
    assert found[other_template].status == "idle"
    for clone in taken:
        assert (found[clone].status, found[clone].parent_instance, found[clone].owner_id) == (
            "claimed",
            source,
            "owner-1",
        )
        assert found[clone].template_id == TEMPLATE
    assert found[newest_older].template_version == 2
    # Each clone is a succeeded claim of its own, recorded like any claim.
    async with sessionmaker() as session:
        claims = (await session.scalars(select(Claim).where(Claim.source == "clone"))).all()
    assert sorted((c.status, c.instance_id, c.template) for c in claims) == sorted(
        ("succeeded", i, TEMPLATE) for i in taken
    )


async def test_no_barging_a_clone_does_not_take_an_instance_claims_of_its_template_wait_for(
    pool: httpx.AsyncClient, fleet: Fleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    source = await fleet.source("a note")
    target = await fleet.add()
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO claims (id, caller, request_hash, status, template, queued_at, deadline_at) "
                "VALUES (:id, 'pool_api_key', 'x', 'queued', :template, now(), now() + interval '1 hour')"
            ),
            {"id": secrets.token_hex(16), "template": TEMPLATE},
        )
    response = await clone_of(pool, source)
    assert response.status_code == 503, response.text
    assert "(claims of it are queued)" in response.json()["detail"]
    assert (await rows(sessionmaker))[target].status == "idle"


async def test_a_target_that_cannot_import_goes_back_to_idle_untouched(
    pool: httpx.AsyncClient, fleet: Fleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    source = await fleet.source("a note")
    target = await fleet.add(runtime_capabilities=[])
    response = await clone_of(pool, source)
    assert response.status_code == 409, response.text
    assert "the target instance's runtime cannot be cloned into" in response.json()["detail"]
    found = await rows(sessionmaker)
    assert (found[source].status, found[target].status) == ("claimed", "idle")
    assert (await fleet.status(target))["clean"] is True
    assert await fleet.notes(source) == ["a note"]
    async with sessionmaker() as session:
        (claim,) = (await session.scalars(select(Claim).where(Claim.source == "clone"))).all()
    assert (claim.status, claim.instance_id) == ("failed", target)


async def test_a_failed_provision_after_the_import_recovers_the_target_and_keeps_the_source(
    pool: httpx.AsyncClient, fleet: Fleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    source = await fleet.source("a note")
    target = await fleet.add(runtime_fail_provision=True)
    response = await clone_of(pool, source)
    assert response.status_code == 502, response.text
    assert "/pool/provision answered 500" in response.json()["detail"]
    found = await rows(sessionmaker)
    assert (found[source].status, found[source].conversation_id) == ("claimed", None)
    assert found[target].status == "idle"
    assert (found[target].last_error or "").startswith("clone failed")
    # The import had happened: the recovery's reset cleared it.
    assert (await fleet.status(target))["clean"] is True
    assert await fleet.notes(target) == []
    assert await fleet.notes(source) == ["a note"]


async def test_state_past_the_pools_cap_is_refused_with_413_and_nothing_is_taken(
    pool: httpx.AsyncClient, fleet: Fleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # Random text hardly compresses: the archive is over the pool's 4096-byte cap.
    source = await fleet.source(secrets.token_urlsafe(6000))
    target = await fleet.add()
    response = await clone_of(pool, source)
    assert response.status_code == 413, response.text
    assert (await rows(sessionmaker))[target].status == "idle"


async def test_only_a_claimed_agent_can_be_cloned(
    pool: httpx.AsyncClient, fleet: Fleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    pending = await fleet.add(status="pending_acceptance")
    await fleet.add()
    response = await clone_of(pool, pending)
    assert response.status_code == 409, response.text
    assert response.json()["detail"] == (
        f"only a claimed agent can be cloned: instance {pending} is pending_acceptance"
    )
    missing = await clone_of(pool, "000000000000")
    assert (missing.status_code, missing.json()["kind"]) == (404, "NotFound")
    bad_id = await clone_of(pool, "not-an-id")
    assert bad_id.status_code == 422
