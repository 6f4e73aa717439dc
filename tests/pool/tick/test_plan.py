"""`plan(observed, target, now)` as tables: no database, no HTTP."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pool.status import Rules, Runtime, Status
from pool.status_batch import Batch, Health, Seen
from pool.tick.plan import (
    Create,
    Created,
    CreateFailed,
    Destroy,
    DestroyOrphan,
    Observed,
    Resend,
    Row,
    Update,
    plan,
)
from pool.tick.targets import PoolTarget, Target, replenish_counts

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DEFAULT = (PoolTarget(min_idle=3),)
TARGET = Target(DEFAULT, max_total=10, rules=Rules(900, 3), orphan_grace_seconds=600)
CLEAN = Runtime(None, clean=True)


def row(i: int, status: Status, *, age: float = 60, failed: int = 0, conversation: str | None = None) -> Row:
    at = NOW - timedelta(seconds=age)
    return Row(f"i{i:011d}", status, at, at, failed, conversation, deploy_status="running")


def template_row(
    i: int, status: Status, template: str, version: int, *, conversation: str | None = None
) -> Row:
    at = NOW - timedelta(seconds=60)
    return Row(iid(i), status, at, at, 0, conversation, "running", template, version)


def seen(i: int, deploy: str | None = "running", *, healthy: bool = True, age: float = 60) -> Seen:
    return Seen(
        instance_id=f"i{i:011d}",
        url=f"http://127.0.0.1:{9000 + i}",
        deploy_status=deploy,
        health=Health(ok=healthy, ready=healthy or None),
        created_at=NOW - timedelta(seconds=age),
    )


def batch(*observations: Seen, platform_ok: bool = True) -> Batch:
    return Batch(observed_at=NOW, instances={o.instance_id: o for o in observations}, platform_ok=platform_ok)


def iid(i: int) -> str:
    return f"i{i:011d}"


def test_services_down_plans_nothing_not_even_creates() -> None:
    assert plan(Observed([row(1, "starting")], None), TARGET, NOW) == []


def test_platform_error_changes_no_status_but_still_refills_from_the_rows() -> None:
    rows = [row(1, "idle"), row(2, "claimed", conversation="c")]
    observed = Observed(rows, batch(seen(1, "crashed"), platform_ok=False))
    assert plan(observed, TARGET, NOW) == [Create(2)]


def test_one_platform_failing_holds_only_its_own_instances() -> None:
    # Several platforms: the batch failed as a whole, but each instance says whether its own
    # platform answered. The failing platform's crashed report is no observation; the other's is.
    failing = replace(seen(1, "crashed"), platform="a", platform_ok=False)
    answering = replace(seen(2, "crashed"), platform="b", platform_ok=True)
    rows = [row(1, "idle"), row(2, "idle"), row(3, "idle")]
    actions = plan(Observed(rows, batch(failing, answering, seen(3), platform_ok=False)), TARGET, NOW)
    assert [type(a).__name__ for a in actions if a != Create(1)] == ["Destroy"]
    assert [a.instance_id for a in actions if isinstance(a, Destroy)] == [iid(2)]


def test_warm_pool_at_target_plans_nothing() -> None:
    rows = [row(i, "idle") for i in range(3)]
    observed = Observed(rows, batch(*(seen(i) for i in range(3))), {iid(i): CLEAN for i in range(3)})
    assert plan(observed, TARGET, NOW) == []


def test_ready_starting_instance_is_promoted_and_counts_as_supply() -> None:
    rows = [row(1, "starting"), row(2, "idle"), row(3, "idle")]
    observed = Observed(rows, batch(seen(1), seen(2), seen(3)), {iid(i): CLEAN for i in (1, 2, 3)})
    assert plan(observed, TARGET, NOW) == [
        Update(iid(1), "starting", "idle", 0, "running", True, "healthy and clean")
    ]


def test_dead_idle_instance_is_destroyed_and_replaced() -> None:
    rows = [row(1, "idle", failed=2), row(2, "idle"), row(3, "idle")]
    observed = Observed(rows, batch(seen(1, healthy=False), seen(2), seen(3)), {iid(2): CLEAN, iid(3): CLEAN})
    assert plan(observed, TARGET, NOW) == [
        Destroy(iid(1), "idle", "dead", "health probe failed"),
        Create(1),
    ]


def test_one_failed_probe_only_counts() -> None:
    rows = [row(1, "idle"), row(2, "idle"), row(3, "idle")]
    observed = Observed(rows, batch(seen(1, healthy=False), seen(2), seen(3)), {iid(2): CLEAN, iid(3): CLEAN})
    assert plan(observed, TARGET, NOW) == [
        Update(iid(1), "idle", "idle", 1, "running", False, "health probe failed")
    ]


def test_crashed_deploy_of_a_claimed_instance_marks_it_crashed_and_is_not_replaced_by_it() -> None:
    rows = [row(1, "claimed", conversation="c"), *(row(i, "idle") for i in (2, 3, 4))]
    observations = batch(seen(1, "crashed", healthy=False), *(seen(i) for i in (2, 3, 4)))
    observed = Observed(rows, observations, {iid(i): CLEAN for i in (2, 3, 4)})
    assert plan(observed, TARGET, NOW) == [
        Update(iid(1), "claimed", "crashed", 0, "crashed", False, "deploy crashed")
    ]


def test_rows_services_no_longer_knows_are_resolved() -> None:
    rows = [row(1, "idle"), row(2, "claimed", conversation="c"), row(3, "starting")]
    observed = Observed(rows, batch(seen(3, "deploying", healthy=False)))
    assert plan(observed, TARGET, NOW) == [
        Destroy(iid(1), "idle", "dead", "unknown to services"),
        Update(iid(2), "claimed", "crashed", 0, "running", False, "unknown to services"),
        Update(iid(3), "starting", "starting", 0, "deploying", False, "deploy deploying"),
        Create(2),
    ]


def test_claiming_and_fresh_creating_rows_are_left_alone_and_count_as_supply() -> None:
    rows = [row(1, "claiming"), row(2, "creating", age=5), row(3, "creating", age=5)]
    observed = Observed(rows, batch(seen(1, "crashed")))
    assert plan(observed, TARGET, NOW) == [Create(1)]


def creating(i: int, phase: str | None, *, url: bool = True, error: str | None = None) -> Seen:
    return Seen(
        instance_id=iid(i),
        url=f"http://127.0.0.1:{9000 + i}" if url else None,
        deploy_status="deploying" if phase == "deploying" else None,
        health=None,
        created_at=NOW,
        phase=phase,
        error=error,
    )


def test_a_create_services_still_works_on_is_never_timed_out_however_old() -> None:
    """Issue 11 finding 3: the pool must not drop a create that waits for the platform's pace."""
    rows = [row(1, "creating", age=100_000), row(2, "creating", age=100_000)]
    rows += [row(3, "idle")]
    observed = Observed(rows, batch(creating(1, "queued"), creating(2, "creating"), seen(3)), {iid(3): CLEAN})
    assert plan(observed, TARGET, NOW) == []


def test_a_made_create_is_promoted_to_starting_with_its_url() -> None:
    rows = [row(1, "creating"), row(2, "creating"), row(3, "idle")]
    observed = Observed(
        rows, batch(creating(1, "deploying"), creating(2, "deploying", url=False), seen(3)), {iid(3): CLEAN}
    )
    assert plan(observed, TARGET, NOW) == [Created(iid(1), "http://127.0.0.1:9001", "deploying")]


def test_a_failed_create_is_removed_counted_and_replaced() -> None:
    rows = [row(1, "creating"), row(2, "creating"), row(3, "idle")]
    observed = Observed(
        rows,
        batch(creating(1, "failed", error="quota"), creating(2, "destroying"), seen(3)),
        {iid(3): CLEAN},
    )
    assert plan(observed, TARGET, NOW) == [
        CreateFailed(iid(1), "quota", tell_services=True),
        CreateFailed(iid(2), "services is destroying it", tell_services=True),
        Create(2),
    ]


def test_a_create_services_never_received_is_sent_again_then_dropped_after_the_bound() -> None:
    target = Target(
        (PoolTarget(min_idle=1),), max_total=10, create_resend_seconds=60, create_lost_seconds=600
    )
    rows = [row(1, "creating", age=10), row(2, "creating", age=61), row(3, "creating", age=601)]
    assert plan(Observed(rows, batch()), target, NOW) == [
        Resend(iid(2)),
        CreateFailed(iid(3), "services never received this create", tell_services=False),
    ]


def test_orphans_are_destroyed_only_after_the_grace_period() -> None:
    rows = [row(i, "idle") for i in range(3)]
    observations = batch(*(seen(i) for i in range(3)), seen(7, age=599), seen(8, age=601))
    observed = Observed(rows, observations, {iid(i): CLEAN for i in range(3)})
    assert plan(observed, TARGET, NOW) == [DestroyOrphan(iid(8), "services knows it, the pool does not")]


def test_tainted_instance_is_destroyed_and_replaced() -> None:
    rows = [row(1, "starting"), row(2, "idle"), row(3, "idle")]
    runtimes = {iid(1): Runtime("c-x", clean=False), iid(2): CLEAN, iid(3): CLEAN}
    observed = Observed(rows, batch(seen(1), seen(2), seen(3)), runtimes)
    assert plan(observed, TARGET, NOW) == [
        Destroy(iid(1), "starting", "tainted", "conversation we did not give it or not clean"),
        Create(1),
    ]


def _default(counts: dict[str, int]) -> Counter[tuple[str, str]]:
    return Counter({("default", status): n for status, n in counts.items()})


@pytest.mark.parametrize(
    ("counts", "target", "expected"),
    [
        ({}, TARGET, 3),
        ({"idle": 1, "starting": 1}, TARGET, 1),
        ({"creating": 3}, TARGET, 0),
        ({"idle": 5}, TARGET, 0),
        ({"claimed": 9}, TARGET, 1),  # max_total caps the deficit
        ({"claimed": 10}, TARGET, 0),
        ({"crashed": 4, "claimed": 4, "idle": 1}, TARGET, 1),
        ({}, Target(DEFAULT, max_total=10, may_create=False), 0),  # backing off
        # Queued claims are demand on top of min_idle, in-flight creates already meet some of it.
        ({"idle": 3}, Target((PoolTarget(min_idle=3, queued=4),), max_total=10), 4),
        ({"idle": 3, "creating": 2}, Target((PoolTarget(min_idle=3, queued=4),), max_total=10), 2),
        # within max_total
        ({"claimed": 5, "idle": 3}, Target((PoolTarget(min_idle=3, queued=4),), max_total=10), 2),
    ],
)
def test_replenish_count(counts: dict[str, int], target: Target, expected: int) -> None:
    assert replenish_counts(_default(counts), target).get("default", 0) == expected


def test_each_template_is_filled_to_its_own_target() -> None:
    pools = (PoolTarget("default", 1, min_idle=2), PoolTarget("mail", 3, min_idle=1, queued=2))
    counts = Counter({("default", "idle"): 1, ("mail", "idle"): 1, ("mail", "claimed"): 4})
    assert replenish_counts(counts, Target(pools, max_total=20)) == {"default": 1, "mail": 2}
    rows = [row(1, "idle"), template_row(2, "idle", "mail", 2)]
    observed = Observed(rows, batch(seen(1), seen(2)), {iid(1): CLEAN, iid(2): CLEAN})
    # Old-version idle instances still count toward their template's supply (on-replenish).
    assert plan(observed, Target(pools, max_total=20), NOW) == [Create(1, "default", 1), Create(2, "mail", 3)]


def test_short_room_goes_round_the_templates_short_of_their_targets() -> None:
    pools = (PoolTarget("a", 1, min_idle=6), PoolTarget("b", 1, min_idle=2), PoolTarget("c", 1, min_idle=0))
    counts = Counter({("a", "claimed"): 5})
    # Room for 5: `a` is 6 short, `b` 2 short; one each in turn, so `b`'s floor is met.
    assert replenish_counts(counts, Target(pools, max_total=10)) == {"a": 3, "b": 2}
    assert replenish_counts(counts, Target(pools, max_total=6)) == {"a": 1}


def test_an_archived_templates_idle_instances_are_drained_not_refilled() -> None:
    rows = [template_row(1, "idle", "old", 1), template_row(2, "claimed", "old", 1, conversation="c")]
    observed = Observed(rows, batch(seen(1), seen(2)), {iid(1): CLEAN, iid(2): Runtime("c", clean=False)})
    actions = plan(observed, Target((), max_total=10), NOW)
    assert actions == [Destroy(iid(1), "idle", "dead", "template old is archived")]


def test_unprobed_instances_are_no_observation_but_their_deploy_status_still_counts() -> None:
    rows = [row(1, "idle", failed=1), row(2, "idle"), row(3, "idle"), row(4, "idle")]
    observations = [
        seen(1, healthy=False),
        seen(2, healthy=False),
        seen(3, "crashed", healthy=False),
        seen(4),
    ]
    for o in observations[:3]:
        o.health = None
    unprobed = Batch(
        observed_at=NOW,
        instances={o.instance_id: o for o in observations},
        unprobed=[iid(1), iid(2), iid(3)],
    )
    actions = plan(Observed(rows, unprobed, {iid(4): CLEAN}), TARGET, NOW)
    # 1 and 2 keep their counters (no Update); 3's CRASHED deploy is acted on without a probe.
    assert actions == [Destroy(iid(3), "idle", "dead", "deploy crashed")]


def test_a_healthy_instance_not_asked_for_its_runtime_is_left_alone() -> None:
    rows = [row(1, "idle"), row(2, "idle"), row(3, "claimed", conversation="c-1")]
    observed = Observed(rows, batch(seen(1), seen(2), seen(3)), {iid(1): CLEAN}, frozenset({iid(2), iid(3)}))
    assert plan(observed, TARGET, NOW) == [Create(1)]
    # Asked and unanswered is still one failed observation.
    asked = Observed(
        rows, batch(seen(1), seen(2), seen(3)), {iid(1): CLEAN, iid(2): None}, frozenset({iid(3)})
    )
    assert plan(asked, TARGET, NOW) == [
        Update(iid(2), "idle", "idle", 1, "running", True, "runtime status unreachable"),
        Create(1),
    ]


def test_the_sizing_steps_retirements_are_destroyed_and_refilled() -> None:
    rows = [row(1, "idle"), row(2, "idle"), row(3, "claimed", conversation="c")]
    pool = PoolTarget(min_idle=2, retire=((iid(1), "recycled: idle 25.0 h"), (iid(3), "drained")))
    runtimes = {iid(1): CLEAN, iid(2): CLEAN, iid(3): Runtime("c", clean=False)}
    observed = Observed(rows, batch(seen(1), seen(2), seen(3)), runtimes)
    # Only idle rows are retired (a claimed one never is), and the plan refills what went.
    assert plan(observed, Target((pool,), max_total=10), NOW) == [
        Destroy(iid(1), "idle", "dead", "recycled: idle 25.0 h"),
        Create(1),
    ]
