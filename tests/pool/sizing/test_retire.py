"""Recycling stale idle instances and draining above target, as decisions over rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pool.sizing.retire import drain, recycle
from pool.status import Status
from pool.tick.plan import Destroy, Row

NOW = datetime(2024, 1, 2, 12, tzinfo=UTC)


def row(name: str, status: Status, created_h_ago: float, changed_h_ago: float | None = None) -> Row:
    created = NOW - timedelta(hours=created_h_ago)
    changed = NOW - timedelta(hours=created_h_ago if changed_h_ago is None else changed_h_ago)
    return Row(name, status, created, changed)


def test_recycle_takes_the_longest_idle_first_a_few_per_tick() -> None:
    rows = [
        row("fresh", "idle", 2),
        row("stale", "idle", 30, 25),
        row("staler", "idle", 40, 30),
        row("claimed-long-ago", "claimed", 50),
        row("starting", "starting", 30),
    ]
    (only,) = recycle(rows, NOW, max_idle_age_seconds=24 * 3600)
    assert only == Destroy("staler", "idle", "dead", only.reason)
    assert "idle 30.0 h, past the max idle age 24 h" in only.reason
    both = recycle(rows, NOW, max_idle_age_seconds=24 * 3600, limit=5)
    assert [d.instance_id for d in both] == ["staler", "stale"]
    assert recycle(rows, NOW, max_idle_age_seconds=48 * 3600, limit=5) == []


def test_drain_waits_a_cooldown_then_drains_the_oldest_idle_down_to_target() -> None:
    rows = [
        row("old", "idle", 5),
        row("mid", "idle", 3),
        row("new", "idle", 1),
        row("coming", "starting", 0.1),
    ]
    # Supply 4 above a target of 2: the cooldown starts now, nothing drained.
    first = drain(rows, 2, NOW, above_since=None, cooldown_seconds=900)
    assert first.destroys == [] and first.above_since == NOW
    # Not long enough yet.
    early = drain(rows, 2, NOW + timedelta(minutes=10), above_since=NOW, cooldown_seconds=900)
    assert early.destroys == [] and early.above_since == NOW
    done = drain(rows, 2, NOW + timedelta(minutes=15), above_since=NOW, cooldown_seconds=900)
    assert [d.instance_id for d in done.destroys] == ["old", "mid"]
    assert all(d.read == "idle" for d in done.destroys)
    assert "scale-down: 4 ready or coming above the target 2 for 15 min" in done.destroys[0].reason
    assert done.above_since is None  # a new cooldown before any further drain


def test_drain_nothing_at_or_below_target_or_while_claims_wait() -> None:
    rows = [row("a", "idle", 5), row("b", "idle", 3), row("c", "claimed", 1)]
    assert drain(rows, 2, NOW, above_since=NOW - timedelta(hours=1)).above_since is None
    waiting = drain(rows, 0, NOW, above_since=NOW - timedelta(hours=1), queued=1)
    assert waiting.destroys == [] and waiting.above_since is None


def test_drain_only_takes_idle_rows() -> None:
    # Supply 3 above a target of 0, but only one is idle: the starting ones are left to come up.
    rows = [row("idle", "idle", 5), row("s1", "starting", 0.1), row("s2", "creating", 0.05)]
    done = drain(rows, 0, NOW, above_since=NOW - timedelta(hours=1))
    assert [d.instance_id for d in done.destroys] == ["idle"]
