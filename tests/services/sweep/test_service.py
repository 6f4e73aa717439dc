"""The sweep against the vendor fakes and a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.config import Settings
from services.ledger import service as ledger
from services.locks import SWEEP_KEY, hold_instance
from services.models import InstanceInfra, InstanceService
from services.sweep.service import run_sweep
from services.tools.agentmail import AgentMailProvider, AgentMailSettings
from services.tools.base import ToolProvider
from services.tools.openrouter import OpenRouterProvider, OpenRouterSettings
from services.tools.telnyx import TelnyxProvider, TelnyxSettings
from shared.auth import SecretBox
from shared.db import make_engine, make_sessionmaker
from tests.fakes.tools import PROFILE, Vendors, vendor_fakes

BOX = SecretBox("test-encryption-key")
IID = "inst00000001"
HOUR = 3600.0
GRACE = 600.0


@pytest.fixture
def vendors(monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendors]:
    with vendor_fakes(monkeypatch) as fakes:
        yield fakes


@pytest.fixture
async def sessionmaker(services_db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(services_db_url, pool_size=5)
    try:
        async with make_sessionmaker(engine).begin() as session:
            session.add(
                InstanceInfra(
                    instance_id=IID, name="agent", provider="memory", platform="memory", state="active"
                )
            )
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def tools(
    vendors: Vendors, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[dict[str, ToolProvider]]:
    async with httpx.AsyncClient() as http:
        telnyx = TelnyxSettings(
            api_key=vendors.telnyx.api_key, messaging_profile_id=PROFILE, order_poll_seconds=0.01
        )
        yield {
            "openrouter": OpenRouterProvider.from_settings(
                OpenRouterSettings(management_key=vendors.openrouter.management_key), http
            ),
            "agentmail": AgentMailProvider.from_settings(
                AgentMailSettings(api_key=vendors.agentmail.api_key), http
            ),
            "telnyx": TelnyxProvider.from_settings(telnyx, http, sessionmaker, BOX),
        }


class LedgerUpdateFails:
    """Makes the ledger's 'row is active now' update raise once: a crash after the provider made it."""

    def __init__(self) -> None:
        self.fired = False

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.fired and statement.startswith("UPDATE instance_services") and "resource_id" in statement:
            self.fired = True
            raise RuntimeError("database went away between provider create and ledger update")


@pytest.fixture
def crash_once() -> Iterator[LedgerUpdateFails]:
    hook = LedgerUpdateFails()
    event.listen(Engine, "before_cursor_execute", hook)
    try:
        yield hook
    finally:
        event.remove(Engine, "before_cursor_execute", hook)


async def age_ledger(sessionmaker: async_sessionmaker[AsyncSession], seconds: float) -> None:
    async with sessionmaker.begin() as session:
        await session.execute(
            text("UPDATE instance_services SET updated_at = now() - make_interval(secs => :s)"),
            {"s": seconds},
        )


async def statuses(sessionmaker: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with sessionmaker() as session:
        rows = await session.execute(select(InstanceService.tool_id, InstanceService.status))
        return sorted((tool_id, status) for tool_id, status in rows)


@pytest.mark.parametrize("tool_id", ["openrouter", "agentmail", "telnyx"])
async def test_a_crash_between_provider_create_and_ledger_update_is_cleaned_by_the_sweep(
    tool_id: str,
    tools: dict[str, ToolProvider],
    vendors: Vendors,
    sessionmaker: async_sessionmaker[AsyncSession],
    crash_once: LedgerUpdateFails,
) -> None:
    with pytest.raises(RuntimeError, match="database went away"):
        await ledger.provision_tool(
            sessionmaker, tools=tools, box=BOX, instance_id=IID, tool_id=tool_id, reveal=False
        )
    assert crash_once.fired
    assert vendors.leftovers()[tool_id] == 1
    assert await statuses(sessionmaker) == [(tool_id, "creating")]

    young = await run_sweep(sessionmaker, tools=tools, grace_seconds=GRACE)
    assert young.removed() == 0
    assert vendors.leftovers()[tool_id] == 1

    await age_ledger(sessionmaker, HOUR)
    fake = getattr(vendors, tool_id)
    for resource_id in list(
        getattr(fake, {"openrouter": "keys", "agentmail": "inboxes"}.get(tool_id, "numbers"))
    ):
        fake.backdate(resource_id, HOUR)
    report = await run_sweep(sessionmaker, tools=tools, grace_seconds=GRACE)

    assert sorted((o.kind, o.tool_id, o.instance_id, o.action) for o in report.orphans) == [
        ("stuck_row", tool_id, IID, "removed"),
        ("unknown_at_provider", tool_id, IID, "removed"),
    ]
    assert vendors.leftovers() == {"openrouter": 0, "agentmail": 0, "telnyx": 0}
    assert await statuses(sessionmaker) == [(tool_id, "destroyed")]
    assert report.errors == []


async def test_unknown_resources_past_grace_are_removed_and_young_or_foreign_ones_kept(
    tools: dict[str, ToolProvider], vendors: Vendors, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    known = await ledger.provision_tool(
        sessionmaker, tools=tools, box=BOX, instance_id=IID, tool_id="openrouter", reveal=False
    )
    old = vendors.openrouter.add_key("warmpool-zzzzzzzzzzzz")
    vendors.openrouter.backdate(old, HOUR)
    young = vendors.openrouter.add_key("warmpool-yyyyyyyyyyyy")
    foreign = vendors.openrouter.add_key("someone-elses-key")
    vendors.openrouter.backdate(foreign, HOUR)
    vendors.openrouter.backdate(known.resource_id or "", HOUR)

    report = await run_sweep(sessionmaker, tools=tools, grace_seconds=GRACE)

    assert sorted(vendors.openrouter.keys) == sorted([known.resource_id, young, foreign])
    assert {(o.resource_id, o.action) for o in report.orphans} == {
        (old, "removed"),
        (young, "kept (younger than grace)"),
    }


async def test_resources_the_ledger_has_but_the_provider_lost_are_reported_only(
    tools: dict[str, ToolProvider], vendors: Vendors, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    grant = await ledger.provision_tool(
        sessionmaker, tools=tools, box=BOX, instance_id=IID, tool_id="agentmail", reveal=False
    )
    vendors.agentmail.inboxes.clear()

    report = await run_sweep(sessionmaker, tools=tools, grace_seconds=GRACE)

    assert [(o.kind, o.resource_id, o.action) for o in report.orphans] == [
        ("missing_at_provider", grant.resource_id, "reported")
    ]
    assert await statuses(sessionmaker) == [("agentmail", "active")]


async def test_a_sweep_already_running_elsewhere_makes_this_one_step_aside(
    tools: dict[str, ToolProvider], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as other_replica:
        assert await other_replica.scalar(select(func.pg_try_advisory_lock(SWEEP_KEY)))
        report = await run_sweep(sessionmaker, tools=tools, grace_seconds=GRACE)
        await other_replica.scalar(select(func.pg_advisory_unlock(SWEEP_KEY)))

    assert report.ran is False
    assert (await run_sweep(sessionmaker, tools=tools, grace_seconds=GRACE)).ran is True


async def test_instances_are_compared_with_the_pool_both_ways_when_it_answers(
    tools: dict[str, ToolProvider], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async def pool_ids() -> set[str] | None:
        return {"poolonly0001"}

    async def pool_down() -> set[str] | None:
        return None

    compared = await run_sweep(sessionmaker, tools={}, grace_seconds=GRACE, pool_instance_ids=pool_ids)
    skipped = await run_sweep(sessionmaker, tools={}, grace_seconds=GRACE, pool_instance_ids=pool_down)

    assert compared.pool_compared is True
    assert [(o.kind, o.instance_id, o.action) for o in compared.orphans] == [
        ("not_in_pool", IID, "reported"),
        ("not_in_services", "poolonly0001", "reported"),
    ]
    assert (skipped.pool_compared, skipped.orphans) == (False, [])


async def test_a_number_bought_but_never_found_in_time_is_released_by_a_later_sweep(
    tools: dict[str, ToolProvider], vendors: Vendors, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    vendors.telnyx.hidden_lookups = 50
    tools["telnyx"].settings.not_found_attempts = 2  # type: ignore[attr-defined]
    tools["telnyx"].settings.not_found_backoff_seconds = 0.01  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="does not list"):
        await ledger.provision_tool(
            sessionmaker, tools=tools, box=BOX, instance_id=IID, tool_id="telnyx", reveal=False
        )
    (number_id,) = vendors.telnyx.numbers
    vendors.telnyx.backdate(number_id, HOUR)
    await age_ledger(sessionmaker, HOUR)

    report = await run_sweep(sessionmaker, tools=tools, grace_seconds=GRACE)

    assert ("unknown_at_provider", number_id, "removed") in [
        (o.kind, o.resource_id, o.action) for o in report.orphans
    ]
    assert vendors.telnyx.numbers == {}


class _HostClockAhead(datetime):
    """The host's wall clock two hours ahead of the database's."""

    @classmethod
    def now(cls, tz: Any = None) -> _HostClockAhead:
        return super().now(tz or UTC) + timedelta(hours=2)


async def test_a_host_clock_ahead_of_the_database_does_not_age_young_rows_or_resources(
    tools: dict[str, ToolProvider],
    vendors: Vendors,
    sessionmaker: async_sessionmaker[AsyncSession],
    crash_once: LedgerUpdateFails,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(RuntimeError, match="database went away"):
        await ledger.provision_tool(
            sessionmaker, tools=tools, box=BOX, instance_id=IID, tool_id="openrouter", reveal=False
        )
    for module in ("services.sweep.service", "services.sweep.platform"):
        monkeypatch.setattr(f"{module}.datetime", _HostClockAhead, raising=False)

    report = await run_sweep(sessionmaker, tools=tools, grace_seconds=GRACE)

    assert report.removed() == 0
    assert vendors.leftovers()["openrouter"] == 1
    assert await statuses(sessionmaker) == [("openrouter", "creating")]


async def test_a_stuck_row_whose_instance_an_operation_holds_is_kept(
    tools: dict[str, ToolProvider],
    vendors: Vendors,
    sessionmaker: async_sessionmaker[AsyncSession],
    crash_once: LedgerUpdateFails,
) -> None:
    with pytest.raises(RuntimeError, match="database went away"):
        await ledger.provision_tool(
            sessionmaker, tools=tools, box=BOX, instance_id=IID, tool_id="openrouter", reveal=False
        )
    await age_ledger(sessionmaker, HOUR)

    async with hold_instance(sessionmaker, IID):  # e.g. a provision retrying it right now
        held = await run_sweep(sessionmaker, tools=tools, grace_seconds=GRACE)
    freed = await run_sweep(sessionmaker, tools=tools, grace_seconds=GRACE)

    stuck = [(o.kind, o.action) for o in held.orphans if o.kind == "stuck_row"]
    assert stuck == [("stuck_row", "kept (an operation on its instance is running)")]
    assert [(o.kind, o.action) for o in freed.orphans if o.kind == "stuck_row"] == [("stuck_row", "removed")]
    assert await statuses(sessionmaker) == [("openrouter", "destroyed")]


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_sweep_grace_of_zero_or_less_is_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # With no grace the sweep would remove a resource a provision in flight just made.
    monkeypatch.setenv("SERVICES_SWEEP_GRACE_SECONDS", value)
    with pytest.raises(ValidationError, match="SERVICES_SWEEP_GRACE_SECONDS must be greater than 0"):
        Settings()
