"""The soak's checks of claims as resources catch what they name: fed what a broken pool would show
(the traces as the workload records them, and claims rows in a real pool database), each reports its
violation, and the lawful cases next to it (a release between two holders, a requeued claim, an
expired one) stay quiet. Fast: no system is started."""

from __future__ import annotations

import asyncpg

from devtools.soak.invariants import Answer, ClaimTrace, Sighting, check_claim_rows, check_claims


def trace(claim_id: str, *sightings: tuple[float, str, str | None], cancelled: bool = False) -> ClaimTrace:
    seen = [
        Sighting(at=at, via="delete" if cancelled and status == "cancelled" else "get", status=status,
                 instance_id=instance, error="The claim failed." if status in ("failed", "cancelled") else "")
        for at, status, instance in sightings
    ]  # fmt: skip
    return ClaimTrace(
        id=claim_id, answered_at=0.0, timeout_seconds=5, sightings=seen, cancelled=cancelled, ended=True
    )


def kinds(found: list[tuple[str, str]]) -> list[str]:
    return sorted(kind for kind, _ in found)


def test_a_claim_that_goes_back_or_a_cancelled_one_that_gets_an_instance_is_reported() -> None:
    went_back = trace("a", (1, "queued", None), (2, "succeeded", "i1"), (3, "queued", None))
    cancelled_then_served = trace(
        "b", (1, "queued", None), (2, "cancelled", None), (3, "succeeded", "i2"), cancelled=True
    )
    requeued_then_served = trace(
        "c", (1, "queued", None), (2, "pending", None), (3, "queued", None), (4, "succeeded", "i3")
    )
    found = check_claims([went_back, cancelled_then_served, requeued_then_served], [], {}, end_bound=10)
    assert "claim_went_back" in kinds(found) and "cancelled_got_instance" in kinds(found)
    assert not [detail for _, detail in found if detail.startswith("c")]


def test_a_claim_not_ended_by_its_bound_or_failing_unreadably_is_reported() -> None:
    unended = trace("a", (1, "queued", None))
    unended.ended = False
    late = trace("b", (1, "queued", None), (30, "failed", None))
    mute = trace("c", (1, "failed", None))
    mute.sightings[0].error = ""
    assert kinds(check_claims([unended, late, mute], [], {}, end_bound=10)) == [
        "claim_unended",
        "claim_unended",
        "claim_unreadable",
    ]


def test_two_claims_on_one_instance_are_reported_unless_it_was_released_between() -> None:
    first, second = trace("a", (1, "succeeded", "i1")), trace("b", (5, "succeeded", "i1"))
    old_style = Answer("claim", 200, instance_id="i1", join_url="https://c.org/x", at=8)
    assert (
        kinds(check_claims([first, second], [old_style], {}, end_bound=10)) == ["claim_instance_shared"] * 2
    )
    assert check_claims([first, second], [old_style], {"i1": [3.0, 6.0]}, end_bound=10) == []


async def test_queue_order_and_cancelled_rows_are_read_from_the_pool_database(pool_db_url: str) -> None:
    conn = await asyncpg.connect(pool_db_url)
    try:
        insert = (
            "INSERT INTO claims (id, caller, request_hash, status, instance_id, priority, attempts, "
            "queued_at, deadline_at, assigned_at) VALUES ($1, 'c', 'h', $2, $3, $4, $5, "
            "now() - make_interval(secs => $6), now() + interval '1 h', now() - make_interval(secs => $7))"
        )
        # skipped waited from 20 s ago and is still queued; served (queued after it) was assigned 10 s ago.
        await conn.execute(insert, "skipped", "queued", None, 0, 0, 20.0, None)
        await conn.execute(insert, "served", "succeeded", None, 0, 0, 19.0, 10.0)
        # requeued lost its first place (attempts 1); urgent has a higher priority than what it passed.
        await conn.execute(insert, "requeued", "queued", None, 1, 1, 30.0, None)
        await conn.execute(insert, "urgent", "succeeded", None, 1, 0, 25.0, 12.0)
        await conn.execute(insert, "cancelled", "cancelled", None, 0, 0, 40.0, None)
        await conn.execute("UPDATE claims SET updated_at = now() - interval '35 s' WHERE id = 'cancelled'")
    finally:
        await conn.close()
    cancelled = trace("cancelled", (1, "cancelled", None), cancelled=True)
    served_cancelled = trace("served", (1, "cancelled", None), cancelled=True)
    found = await check_claim_rows(pool_db_url, [cancelled, served_cancelled], end_bound=60)
    assert kinds(found) == ["cancelled_got_instance", "queue_order"]
    assert "served" in found[1][1] and "skipped" in found[1][1]
