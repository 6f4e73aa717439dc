"""The pool's statuses as a pure function (DESIGN.md §5).

`decide(current, observation, rules)` says what the reconcile loop should do with one instance.
Invariants the tests hold it to:
- `claiming` belongs to the claim in flight and `creating` to the create in flight: never touched.
- A failed observation (platform error, services down) changes nothing, not even the counters.
- Death needs several consecutive failed observations, or a failed/crashed deploy, or the platform
  reporting the deploy removed. An instance left out of the platform's listing (`missing`) is one
  failed observation, never a death on its own.
- A claimed instance is never destroyed by the loop; it becomes `crashed` and stays so until
  an operator dismisses it or it is seen again serving *our* conversation.
- Only a healthy, clean instance with no conversation becomes `idle`; `crashed` never does.
- What was not observed this tick (health not probed before services' deadline, runtime not
  asked) is no observation: it keeps the status and the counter, like a failed observation, but
  a deploy status seen this tick still counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Status = Literal[
    "creating",
    "starting",
    "idle",
    "claiming",
    "claimed",
    "pending_acceptance",
    "tainted",
    "crashed",
    "dead",
    "sleeping",
]
STATUSES: tuple[Status, ...] = get_args(Status)
# The status sets, each defined here only; the rest of the pool imports them.
# An agent lives here (someone's conversation): the loop may mark them crashed, never destroy
# them; the operator API lists them as the agents.
BOUND: frozenset[Status] = frozenset({"claimed", "pending_acceptance", "crashed"})
# Owned by a request in flight; the loop neither reads meaning into them nor writes them, and
# operators get no action on them.
IN_FLIGHT: frozenset[Status] = frozenset({"claiming", "creating"})
# The claim's agent may still be in its conversation: being provisioned, or bound. A repeat of a
# claim's joinUrl gets that claim's answer while its instance is in one of these; once it is
# dead or gone, the join may happen again (pool.claims.service). `crashed` is in: `decide` returns
# a crashed instance to `claimed` when it is seen serving its conversation again, so freeing its
# joinUrl would let a second agent join the same conversation. Derived from BOUND so no status
# that can come back to `claimed` is ever left out; an operator frees it by dismissing the agent.
HOLDS_JOIN: frozenset[Status] = BOUND | {"claiming"}

# keep: write nothing but the probe counter; set: conditional status write;
# destroy: mark, tear down through services, delete the row; gone: the platform already
# removed it, so tear down what is left and delete the row.
Action = Literal["keep", "set", "destroy", "gone"]


@dataclass(frozen=True)
class Runtime:
    """What the instance says about itself on `GET /convos/status`."""

    conversation_id: str | None
    clean: bool
    pending: bool = False


@dataclass(frozen=True)
class Observation:
    """One tick's view of one instance.

    `failed` means we could not observe (services down, platform error): nothing may change.
    `known` is False when services has no record of the instance any more.
    `healthy` is the /pool/health probe; `health_known` is False when services did not probe it
    this tick. `runtime` is None when /convos/status was not reached; `runtime_asked` is False
    when the pool did not ask this tick (a steady idle or claimed instance off its rotation).
    `age_seconds` is the time spent in the current status.
    """

    deploy_status: str | None
    healthy: bool
    runtime: Runtime | None = None
    age_seconds: float = 0.0
    failed_probes: int = 0
    ours: str | None = None
    failed: bool = False
    known: bool = True
    health_known: bool = True
    runtime_asked: bool = True


@dataclass(frozen=True)
class Rules:
    stuck_timeout_seconds: float = 900.0
    death_threshold: int = 3


@dataclass(frozen=True)
class Decision:
    action: Action
    status: Status
    failed_probes: int
    reason: str


def keep(current: Status, failed_probes: int, reason: str) -> Decision:
    return Decision("keep", current, failed_probes, reason)


def _to(current: Status, status: Status, failed_probes: int, reason: str) -> Decision:
    return Decision("set" if status != current else "keep", status, failed_probes, reason)


def _destroy(status: Status, failed_probes: int, reason: str) -> Decision:
    return Decision("destroy", status, failed_probes, reason)


def decide(current: Status, obs: Observation, rules: Rules) -> Decision:
    if current in IN_FLIGHT:
        return keep(current, obs.failed_probes, "in flight")
    if obs.failed:
        return keep(current, obs.failed_probes, "observation failed")
    if not obs.known:
        return _gone(current, obs, "unknown to services")
    # A DeployState (shared.schemas); any other word falls through to "still deploying".
    deploy = obs.deploy_status
    if deploy == "removed":
        return _gone(current, obs, f"deploy {deploy}")
    if deploy in ("failed", "crashed"):
        return _failed_deploy(current, obs, f"deploy {deploy}")
    if current not in BOUND and _dirty(obs.runtime):
        return _destroy("tainted", 0, "conversation we did not give it or not clean")
    if current == "dead":
        return _destroy("dead", obs.failed_probes, "dead")
    if current == "tainted":
        return _destroy("tainted", obs.failed_probes, "tainted")
    if deploy == "missing":
        if not obs.health_known:
            # Neither the listing nor a probe saw it: nothing observed, nothing counted.
            return keep(current, obs.failed_probes, "absent from the platform's listing; health not probed")
        if not obs.healthy:
            return _unreachable(current, obs, rules, "absent from the platform's listing")
        deploy = "running"  # it answered its probe: the listing is what failed
    if deploy is None:
        # No deploy status (e.g. no deployment recorded): trust the probe, else still booting.
        deploy = "running" if obs.healthy or current != "starting" else "deploying"
    if deploy == "sleeping":
        return _sleeping(current)
    if deploy == "running" and not obs.health_known:
        return keep(current, obs.failed_probes, "health not probed this tick")
    if deploy == "running" and obs.healthy and obs.runtime is None and not obs.runtime_asked:
        return keep(current, obs.failed_probes, "healthy; runtime not asked this tick")
    if deploy == "running" and obs.healthy and obs.runtime is not None:
        return _healthy(current, obs.runtime, obs.ours)
    if deploy == "running" and obs.healthy:
        # Alive but /convos/status did not answer: one more failed observation.
        return _unreachable(current, obs, rules, "runtime status unreachable")
    if deploy == "running":
        return _unreachable(current, obs, rules, "health probe failed")
    # Deploy in progress, or a status we do not know: the instance is (re)starting.
    return _deploying(current, obs, rules, f"deploy {deploy}")


def _gone(current: Status, obs: Observation, reason: str) -> Decision:
    if current in BOUND:
        return _to(current, "crashed", obs.failed_probes, reason)
    return Decision("gone", current, obs.failed_probes, reason)


def _failed_deploy(current: Status, obs: Observation, reason: str) -> Decision:
    if current in BOUND:
        return _to(current, "crashed", obs.failed_probes, reason)
    return _destroy("tainted" if current == "tainted" else "dead", obs.failed_probes, reason)


def _sleeping(current: Status) -> Decision:
    # Sleeping is not death; a bound instance stays bound while it sleeps.
    if current in BOUND:
        return keep(current, 0, "sleeping")
    return _to(current, "sleeping", 0, "deploy sleeping")


def _healthy(current: Status, runtime: Runtime, ours: str | None) -> Decision:
    if current in BOUND:
        conversation = runtime.conversation_id
        if conversation is not None and conversation == ours:
            wanted: Status = "pending_acceptance" if runtime.pending else "claimed"
            if current == "crashed" or current == wanted:
                return _to(current, wanted, 0, "serving our conversation")
        # Any other answer: leave a bound instance to the claim flow or an operator.
        return keep(current, 0, "healthy")
    return _to(current, "idle", 0, "healthy and clean")


def _dirty(runtime: Runtime | None) -> bool:
    return runtime is not None and (runtime.conversation_id is not None or not runtime.clean)


def _unreachable(current: Status, obs: Observation, rules: Rules, reason: str) -> Decision:
    failed = obs.failed_probes + 1
    if failed < rules.death_threshold:
        return keep(current, failed, reason)
    if current in BOUND:
        return _to(current, "crashed", failed, reason)
    if current == "starting" and obs.age_seconds < rules.stuck_timeout_seconds:
        return keep(current, failed, f"{reason}; still booting")
    return _destroy("dead", failed, reason)


def _deploying(current: Status, obs: Observation, rules: Rules, reason: str) -> Decision:
    if current in BOUND:
        # A redeploy of a claimed agent must not revert it to starting.
        return keep(current, obs.failed_probes, reason)
    if current == "starting" and obs.age_seconds >= rules.stuck_timeout_seconds:
        return _destroy("dead", obs.failed_probes, f"{reason}; stuck past timeout")
    return _to(current, "starting", 0, reason)
