"""A claim the queue assigned survives what goes wrong after: a failed provision puts it back in
its place once (then it fails), and the replica provisioning it dying puts it back in the queue
(the tick's upkeep) while its deadline has not passed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from tests.fakes.fleet import FakeFleet
from tests.pool.claims.queue_support import claim_rows, enqueue, pool_http, until
from tests.pool.claims.test_upkeep import claim_row, upkeep
from tests.pool.factories import add_fleet_instances

SOON = datetime.now(UTC) + timedelta(hours=1)


async def test_a_failed_provision_falls_back_to_another_idle_instance(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with pool_http(make_settings()) as http:
        ticket = await enqueue(http)
        [bad] = await add_fleet_instances(sessionmaker, fleet, 1, fail_provision=True)
        [good] = await add_fleet_instances(sessionmaker, fleet, 1)
        served = await until(http, ticket["id"], "succeeded")
    assert served["claim"]["instanceId"] == good
    assert fleet.agents[bad].provisions == 1 and fleet.agents[bad].resets == 1


async def test_a_claim_whose_provisions_keep_failing_goes_back_once_then_fails(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with pool_http(make_settings()) as http:
        ticket = await enqueue(http)
        [bad] = await add_fleet_instances(sessionmaker, fleet, 1, fail_provision=True)
        failed = await until(http, ticket["id"], "failed")
    # Dispatched, failed, reset clean and back in its place; dispatched again, failed again.
    assert fleet.agents[bad].provisions == 2
    assert failed["error"]["kind"] == "UpstreamError"
    assert failed["error"]["detail"].startswith("provisioning failed on 1 instance(s)")
    assert (await claim_rows(sessionmaker))[ticket["id"]].attempts == 1


async def test_the_upkeep_puts_a_stale_claim_from_the_queue_back_while_its_deadline_holds(
    make_settings: Callable[..., Settings], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    recently = datetime.now(UTC) - timedelta(seconds=5)
    # Past the stale bound, within the retention.
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    kept = {"created_at": hour_ago, "queued_at": hour_ago}
    async with sessionmaker() as session, session.begin():
        session.add_all(
            [
                # Its provisioning replica died: back to its place.
                claim_row("back", status="pending", **kept, assigned_at=hour_ago, deadline_at=SOON),
                # Past its deadline: it fails like any abandoned claim.
                claim_row("late", status="pending", **kept, assigned_at=hour_ago, deadline_at=recently),
                # Queued long ago but assigned just now: live, left alone.
                claim_row("live", status="pending", **kept, assigned_at=recently, deadline_at=SOON),
            ]
        )

    done = await upkeep(sessionmaker, make_settings())

    rows = await claim_rows(sessionmaker)
    assert (done.requeued, done.ended) == (1, 1)
    assert {key[:4]: (row.status, row.assigned_at is None) for key, row in rows.items()} == {
        "back": ("queued", True),
        "late": ("failed", False),
        "live": ("pending", False),
    }
