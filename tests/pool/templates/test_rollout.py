"""Rollouts as tables (pool.templates.rollout, and the plan's rules for them): no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pool.status import Rules, Runtime, Status
from pool.status_batch import Batch, Health
from pool.status_batch import Seen as Observation
from pool.templates.rollout import Rollout, Seen, advance, pool_target, start
from pool.tick.plan import Create, Destroy, Observed, Row, plan
from pool.tick.targets import PoolTarget, Target

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CLEAN = Runtime(None, clean=True)


def _row(i: int, status: Status, version: int, age: float = 60) -> Row:
    at = NOW - timedelta(seconds=age)
    return Row(f"i{i:011d}", status, at, at, 0, None, "running", "t", version)


def _observed(rows: list[Row]) -> Observed:
    seen = {
        r.id: Observation(
            instance_id=r.id,
            url="http://127.0.0.1:1",
            deploy_status="running",
            health=Health(ok=True, ready=True),
            created_at=NOW,
        )
        for r in rows
    }
    return Observed(rows, Batch(observed_at=NOW, instances=seen), {r.id: CLEAN for r in rows})


def _target(pool: PoolTarget) -> Target:
    return Target((pool,), max_total=20, rules=Rules(900, 3))


def test_on_replenish_is_done_at_once_and_changes_nothing() -> None:
    rollout = start({"strategy": "on-replenish"}, version=2, previous=1, now=NOW)
    assert rollout.phase == "done"
    assert pool_target("t", 2, min_idle=3, queued=0, rollout=rollout) == PoolTarget("t", 2, min_idle=3)


def test_recreate_replaces_old_idle_ones_oldest_first_never_below_its_floor() -> None:
    rollout = start({"strategy": "recreate", "floor": 2}, version=2, previous=1, now=NOW)
    pool = pool_target("t", 2, min_idle=3, queued=0, rollout=rollout)
    assert (pool.floor, pool.surge) == (2, 1)
    rows = [_row(1, "idle", 1, age=300), _row(2, "idle", 1, age=200), _row(3, "idle", 1, age=100)]
    actions = plan(_observed(rows), _target(pool), NOW)
    # 3 idle, floor 2: one old one goes now, and the surge creates two of version 2 (3 + 1 - 2).
    assert actions == [
        Destroy(rows[0].id, "idle", "dead", "replaced by version 2 (recreate)"),
        Create(2, "t", 2),
    ]
    # With one new idle one and two old, one more old one goes.
    rows = [
        _row(2, "idle", 1, age=200),
        _row(3, "idle", 1, age=100),
        _row(4, "idle", 2),
        _row(5, "starting", 2),
    ]
    actions = plan(_observed(rows), _target(pool), NOW)
    assert [a for a in actions if isinstance(a, Destroy)] == [
        Destroy(rows[0].id, "idle", "dead", "replaced by version 2 (recreate)")
    ]
    # At the floor, nothing old is destroyed: the surge makes room first.
    rows = [_row(3, "idle", 1), _row(4, "idle", 2)]
    assert not [a for a in plan(_observed(rows), _target(pool), NOW) if isinstance(a, Destroy)]
    # Done once no old idle one is left; claimed old ones are never touched.
    left = [Seen("a", 1, "claimed"), Seen("b", 2, "idle")]
    assert advance(rollout, left, NOW, stuck_seconds=60).phase == "done"
    assert advance(rollout, [Seen("a", 1, "idle")], NOW, stuck_seconds=60).phase == "replacing"


def test_recreate_is_not_done_while_an_old_instance_may_still_become_idle() -> None:
    """An instance of the old version made before the change (creating, starting), or one a claim
    holds that may come back when its provision fails (claiming), turns idle later: were the
    rollout done by then, that old idle instance would serve on, never replaced."""
    rollout = start({"strategy": "recreate", "floor": 1}, version=2, previous=1, now=NOW)
    for status in ("creating", "starting", "claiming"):
        seen = [Seen("old", 1, status), Seen("new", 2, "idle")]
        assert advance(rollout, seen, NOW, stuck_seconds=60).phase == "replacing", status
    # Bound to an agent, or on its way out: nothing of it will serve a claim again.
    for status in ("claimed", "pending_acceptance", "crashed", "dead", "tainted"):
        seen = [Seen("old", 1, status), Seen("new", 2, "idle")]
        assert advance(rollout, seen, NOW, stuck_seconds=60).phase == "done", status
    gone = [Seen("old", 1, "gone", failure="create failed"), Seen("new", 2, "idle")]
    assert advance(rollout, gone, NOW, stuck_seconds=60).phase == "done"


def test_canary_creates_its_count_on_top_and_the_rest_keep_the_previous_version() -> None:
    rollout = start({"strategy": "canary", "count": 2, "windowSeconds": 60}, version=3, previous=2, now=NOW)
    pool = pool_target("t", 3, min_idle=2, queued=0, rollout=rollout, canaries=0)
    assert (pool.version, pool.canary_version, pool.canary_missing) == (2, 3, 2)
    rows = [_row(1, "idle", 2), _row(2, "idle", 2)]
    assert plan(_observed(rows), _target(pool), NOW) == [Create(2, "t", 3)]
    # With its canaries made, creates keep the previous version.
    pool = pool_target("t", 3, min_idle=2, queued=0, rollout=rollout, canaries=2)
    rows = [_row(1, "idle", 2), _row(3, "idle", 3), _row(4, "idle", 3)]
    assert plan(_observed(rows), _target(pool), NOW) == []


def test_a_canary_is_created_even_when_the_previous_version_fills_the_target_and_more() -> None:
    """Instances made for claims that then went (cancelled, timed out) keep the supply above the
    target for a while: the canary must not wait for it to drop, or it never exists and the
    rollout rolls back after its window for canaries that were never made."""
    rollout = start({"strategy": "canary", "count": 1, "windowSeconds": 60}, version=3, previous=2, now=NOW)
    pool = pool_target("t", 3, min_idle=2, queued=0, rollout=rollout, canaries=0)
    rows = [_row(i, "idle", 2) for i in range(1, 5)]
    assert plan(_observed(rows), _target(pool), NOW) == [Create(1, "t", 3)]
    # Once it exists (any status), no more.
    made = pool_target("t", 3, min_idle=2, queued=0, rollout=rollout, canaries=1)
    actions = plan(_observed([*rows, _row(5, "creating", 3)]), _target(made), NOW)
    assert not [a for a in actions if isinstance(a, Create)]
    # Within max_total all the same.
    full = Target((pool,), max_total=4, rules=Rules(900, 3))
    assert plan(_observed(rows), full, NOW) == []


def test_a_failing_canary_rolls_back_with_its_reason_and_its_idle_instances_go() -> None:
    rollout = start({"strategy": "canary", "count": 1, "windowSeconds": 60}, version=3, previous=2, now=NOW)
    seen = [Seen("old", 2, "idle"), Seen("can", 3, "gone", failure="deploy crashed")]
    moved = advance(rollout, seen, NOW + timedelta(seconds=5), stuck_seconds=60)
    assert moved.phase == "rolled_back"
    assert moved.reason == "canary can of version 3 failed: deploy crashed"
    # Rolled back: the template is at version 2 again, and a version-3 idle instance is destroyed.
    pool = pool_target("t", 2, min_idle=1, queued=0, rollout=moved)
    rows = [_row(1, "idle", 2), _row(2, "idle", 3)]
    assert plan(_observed(rows), _target(pool), NOW) == [
        Destroy(rows[1].id, "idle", "dead", "version 3 was rolled back")
    ]


def test_a_healthy_canary_rolls_on_after_its_window_and_a_stuck_one_rolls_back() -> None:
    rollout = start({"strategy": "canary", "count": 1, "windowSeconds": 60}, version=3, previous=2, now=NOW)
    early = advance(rollout, [Seen("can", 3, "idle")], NOW + timedelta(seconds=30), stuck_seconds=60)
    assert (early.phase, early.healthy) == ("canary", ("can",))
    # Healthy once is remembered: claimed later, it still counts.
    later = advance(early, [Seen("can", 3, "claimed")], NOW + timedelta(seconds=61), stuck_seconds=60)
    assert later.phase == "done"
    assert pool_target("t", 3, min_idle=1, queued=0, rollout=later) == PoolTarget("t", 3, min_idle=1)
    stuck = advance(rollout, [Seen("can", 3, "starting")], NOW + timedelta(seconds=121), stuck_seconds=60)
    assert stuck.phase == "rolled_back"
    assert stuck.reason is not None and "0 of 1 canaries" in stuck.reason


def test_the_state_survives_its_json() -> None:
    rollout = start({"strategy": "canary", "count": 2, "windowSeconds": 30}, version=5, previous=4, now=NOW)
    assert Rollout.from_json(rollout.to_json()) == rollout
