"""Every (status, observation) pair DESIGN.md §5 names, as one table, plus property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pool.status import BOUND, STATUSES, Decision, Observation, Rules, Runtime, Status, decide
from shared.schemas import DEPLOY_STATES

RULES = Rules(stuck_timeout_seconds=900, death_threshold=3)
OURS = "c-ours"
CLEAN = Runtime(conversation_id=None, clean=True)

EVENTS: dict[str, Observation] = {
    "observation_failed": Observation("running", healthy=False, failed=True, failed_probes=2),
    "unknown_to_services": Observation(None, healthy=False, known=False),
    "deploying": Observation("deploying", healthy=False, age_seconds=60),
    "deploying_past_stuck": Observation("deploying", healthy=False, age_seconds=1000),
    "ready_clean": Observation("running", healthy=True, runtime=CLEAN),
    "serving_ours": Observation("running", healthy=True, runtime=Runtime(OURS, clean=False)),
    "pending_ours": Observation("running", healthy=True, runtime=Runtime(OURS, clean=False, pending=True)),
    "foreign_conversation": Observation("running", healthy=True, runtime=Runtime("c-other", clean=False)),
    "not_clean": Observation("running", healthy=True, runtime=Runtime(None, clean=False)),
    "runtime_unreachable": Observation("running", healthy=True, runtime=None),
    "runtime_not_asked": Observation("running", healthy=True, runtime_asked=False, failed_probes=2),
    "health_unprobed": Observation("running", healthy=False, health_known=False, failed_probes=2),
    "health_unprobed_deploying": Observation("deploying", healthy=False, health_known=False),
    "health_unprobed_crashed": Observation("crashed", healthy=False, health_known=False),
    "probe_failed_once": Observation("running", healthy=False, age_seconds=60),
    "probe_failed_3x_young": Observation("running", healthy=False, failed_probes=2, age_seconds=60),
    "probe_failed_3x_old": Observation("running", healthy=False, failed_probes=2, age_seconds=1000),
    "deploy_failed": Observation("failed", healthy=False),
    "deploy_crashed": Observation("crashed", healthy=False),
    "deploy_removed": Observation("removed", healthy=False),
    "deploy_missing_once": Observation("missing", healthy=False, age_seconds=60),
    "deploy_missing_3x": Observation("missing", healthy=False, failed_probes=2, age_seconds=60),
    "deploy_missing_healthy": Observation("missing", healthy=True, runtime=CLEAN, failed_probes=2),
    "deploy_pending": Observation("pending", healthy=False, age_seconds=60),
    "deploy_unknown": Observation("unknown", healthy=False, age_seconds=60),
    "deploy_sleeping": Observation("sleeping", healthy=False),
}

COLUMNS = ("creating", "starting", "idle", "claiming", "claimed", "pending_acceptance",
           "tainted", "crashed", "dead", "sleeping")  # fmt: skip
# . keep · →status (set) · x:status (destroy, marking it so first) · gone (delete what is left)
SHORT = {"start": "starting", "crash": "crashed", "claim": "claimed", "pend": "pending_acceptance",
         "sleep": "sleeping", "taint": "tainted"}  # fmt: skip
TABLE = """
#                     creating starting idle  claiming claimed pend.acc tainted crashed dead   sleeping
observation_failed    .  .       .       .  .       .       .       .       .       .
unknown_to_services   .  gone    gone    .  →crash  →crash  gone    .       gone    gone
deploying             .  .       →start  .  .       .       x:taint .       x:dead  →start
deploying_past_stuck  .  x:dead  →start  .  .       .       x:taint .       x:dead  →start
ready_clean           .  →idle   .       .  .       .       x:taint .       x:dead  →idle
serving_ours          .  x:taint x:taint .  .       .       x:taint →claim  x:taint x:taint
pending_ours          .  x:taint x:taint .  .       .       x:taint →pend   x:taint x:taint
foreign_conversation  .  x:taint x:taint .  .       .       x:taint .       x:taint x:taint
not_clean             .  x:taint x:taint .  .       .       x:taint .       x:taint x:taint
runtime_unreachable   .  .       .       .  .       .       x:taint .       x:dead  .
runtime_not_asked     .  .       .       .  .       .       x:taint .       x:dead  .
health_unprobed       .  .       .       .  .       .       x:taint .       x:dead  .
health_unprobed_deploying .  .   →start  .  .       .       x:taint .       x:dead  →start
health_unprobed_crashed .  x:dead x:dead .  →crash  →crash  x:taint .       x:dead  x:dead
probe_failed_once     .  .       .       .  .       .       x:taint .       x:dead  .
probe_failed_3x_young .  .       x:dead  .  →crash  →crash  x:taint .       x:dead  x:dead
probe_failed_3x_old   .  x:dead  x:dead  .  →crash  →crash  x:taint .       x:dead  x:dead
deploy_failed         .  x:dead  x:dead  .  →crash  →crash  x:taint .       x:dead  x:dead
deploy_crashed        .  x:dead  x:dead  .  →crash  →crash  x:taint .       x:dead  x:dead
deploy_removed        .  gone    gone    .  →crash  →crash  gone    .       gone    gone
deploy_missing_once   .  .       .       .  .       .       x:taint .       x:dead  .
deploy_missing_3x     .  .       x:dead  .  →crash  →crash  x:taint .       x:dead  x:dead
deploy_missing_healthy .  →idle  .       .  .       .       x:taint .       x:dead  →idle
deploy_pending        .  .       →start  .  .       .       x:taint .       x:dead  →start
deploy_unknown        .  .       →start  .  .       .       x:taint .       x:dead  →start
deploy_sleeping       .  →sleep  →sleep  .  .       .       x:taint .       x:dead  .
"""


def _cases() -> list[tuple[str, Status, str]]:
    cases = []
    for line in _rows():
        event, *cells = line.split()
        assert len(cells) == len(COLUMNS), event
        cases += [(event, status, _expand(cell)) for status, cell in zip(COLUMNS, cells, strict=True)]
    return cases


def _rows() -> list[str]:
    return [line for line in TABLE.strip().splitlines() if not line.startswith("#")]


def _expand(cell: str) -> str:
    for prefix in ("→", "x:"):
        if cell.startswith(prefix):
            name = cell[len(prefix) :]
            return prefix + SHORT.get(name, name)
    return cell


def _render(current: Status, decision: Decision) -> str:
    if decision.action == "keep":
        assert decision.status == current
        return "."
    if decision.action == "set":
        return f"→{decision.status}"
    if decision.action == "destroy":
        return f"x:{decision.status}"
    return "gone"


def test_table_covers_every_status_and_event() -> None:
    assert set(COLUMNS) == set(STATUSES)
    assert [line.split()[0] for line in _rows()] == list(EVENTS)


@pytest.mark.parametrize(("event", "current", "expected"), _cases())
def test_transition(event: str, current: Status, expected: str) -> None:
    ours = OURS if current in BOUND else None
    obs = EVENTS[event]
    decision = decide(current, Observation(**{**obs.__dict__, "ours": ours}), RULES)
    assert _render(current, decision) == expected


def test_one_failed_probe_is_counted_not_fatal() -> None:
    assert decide("idle", EVENTS["probe_failed_once"], RULES) == Decision(
        "keep", "idle", 1, "health probe failed"
    )


def test_one_listing_without_the_instance_is_counted_not_fatal() -> None:
    # Finding 9: a platform listing that leaves an instance out once must not destroy it.
    first = decide("idle", Observation("missing", healthy=False), RULES)
    third = decide("idle", Observation("missing", healthy=False, failed_probes=2), RULES)
    assert first == Decision("keep", "idle", 1, "absent from the platform's listing")
    assert (third.action, third.status, third.failed_probes) == ("destroy", "dead", 3)


def test_healthy_observation_resets_the_counter() -> None:
    obs = Observation("running", healthy=True, runtime=CLEAN, failed_probes=2)
    assert decide("idle", obs, RULES).failed_probes == 0


def test_failed_observation_leaves_the_counter_alone() -> None:
    assert decide("idle", EVENTS["observation_failed"], RULES).failed_probes == 2


def test_starting_past_stuck_timeout_still_needs_several_failed_probes() -> None:
    obs = Observation("running", healthy=False, failed_probes=0, age_seconds=5000)
    assert decide("starting", obs, RULES).action == "keep"


def test_missing_deploy_status_trusts_a_healthy_probe() -> None:
    obs = Observation(None, healthy=True, runtime=CLEAN)
    assert decide("starting", obs, RULES).status == "idle"
    assert decide("starting", Observation(None, healthy=False), RULES).status == "starting"


# ---- properties ---------------------------------------------------------------------------

# Every neutral deploy state, none, and a word a newer services might add.
DEPLOYS = st.sampled_from([None, *DEPLOY_STATES, "something_new"])
RUNTIMES = st.none() | st.builds(
    Runtime,
    conversation_id=st.sampled_from([None, OURS, "c-other"]),
    clean=st.booleans(),
    pending=st.booleans(),
)
OBSERVATIONS = st.builds(
    Observation,
    deploy_status=DEPLOYS,
    healthy=st.booleans(),
    runtime=RUNTIMES,
    age_seconds=st.floats(min_value=0, max_value=10_000),
    failed_probes=st.integers(min_value=0, max_value=10),
    ours=st.sampled_from([None, OURS]),
    failed=st.booleans(),
    known=st.booleans(),
    health_known=st.booleans(),
    runtime_asked=st.booleans(),
)
CURRENT = st.sampled_from(STATUSES)


@given(CURRENT, OBSERVATIONS)
def test_idle_only_when_healthy_clean_and_without_conversation(current: Status, obs: Observation) -> None:
    decision = decide(current, obs, RULES)
    if decision.status == "idle" and current != "idle":
        assert obs.healthy and obs.runtime is not None
        assert obs.runtime.clean and obs.runtime.conversation_id is None


@given(CURRENT, OBSERVATIONS)
def test_an_instance_showing_a_conversation_is_never_left_starting_or_idle(
    current: Status, obs: Observation
) -> None:
    decision = decide(current, obs, RULES)
    seen = not obs.failed and current not in ("claiming", "creating")
    if seen and obs.runtime is not None and obs.runtime.conversation_id is not None:
        assert decision.status not in ("idle", "starting", "claiming") or decision.action in (
            "destroy",
            "gone",
        )


@given(CURRENT, OBSERVATIONS)
def test_what_was_not_observed_never_counts_as_a_failed_probe(current: Status, obs: Observation) -> None:
    decision = decide(current, obs, RULES)
    not_asked = obs.healthy and obs.runtime is None and not obs.runtime_asked
    if not obs.health_known or not_asked:
        assert decision.failed_probes <= obs.failed_probes


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("health_unprobed", "health not probed this tick"),
        ("runtime_not_asked", "healthy; runtime not asked this tick"),
    ],
)
@pytest.mark.parametrize("current", ["idle", "starting", "claimed"])
def test_what_was_not_observed_keeps_status_and_counter(event: str, reason: str, current: Status) -> None:
    assert decide(current, EVENTS[event], RULES) == Decision("keep", current, 2, reason)


@given(st.sampled_from(sorted(BOUND)), OBSERVATIONS)
def test_a_claimed_instance_is_never_destroyed(current: Status, obs: Observation) -> None:
    assert decide(current, obs, RULES).action not in ("destroy", "gone")


@given(st.sampled_from(["claiming", "creating"]), OBSERVATIONS)
def test_in_flight_statuses_are_never_overwritten(current: Status, obs: Observation) -> None:
    decision = decide(current, obs, RULES)
    assert decision.action == "keep" and decision.status == current


@given(OBSERVATIONS)
def test_crashed_is_never_promoted_to_idle(obs: Observation) -> None:
    assert decide("crashed", obs, RULES).status not in ("idle", "starting")


@given(CURRENT, OBSERVATIONS)
def test_a_failed_observation_changes_nothing(current: Status, obs: Observation) -> None:
    failed = Observation(**{**obs.__dict__, "failed": True})
    assert decide(current, failed, RULES) == Decision("keep", current, obs.failed_probes, _reason(current))


def _reason(current: Status) -> str:
    return "in flight" if current in ("claiming", "creating") else "observation failed"


@given(CURRENT, OBSERVATIONS)
def test_death_needs_several_failed_probes_or_a_failed_deploy(current: Status, obs: Observation) -> None:
    decision = decide(current, obs, RULES)
    if decision.status in ("dead", "crashed") and decision.status != current:
        failed_deploy = obs.deploy_status in ("failed", "crashed", "removed")
        stuck_deploy = current == "starting" and obs.age_seconds >= RULES.stuck_timeout_seconds
        assert (
            failed_deploy or not obs.known or stuck_deploy or decision.failed_probes >= RULES.death_threshold
        )
