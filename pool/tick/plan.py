"""The tick's logic as a pure function: `plan(observed, target, now) -> actions`. No I/O here.

The plan is built only from what this tick observed (rows read and the services batch taken
now), never from what an earlier tick did. When services could not be reached, the plan is
empty: a failed observation changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pool.status import IN_FLIGHT, STATUSES, Runtime, Status, decide
from pool.status_batch import Batch
from pool.templates.schemas import DEFAULT_TEMPLATE_ID
from pool.tick.observation import Unseen, observation_for
from pool.tick.targets import PoolTarget, Target, replenish_counts


@dataclass(frozen=True, slots=True)
class Row:
    """The columns of an `instances` row the plan reads (slotted: a tick holds one per instance)."""

    id: str
    status: Status
    created_at: datetime
    status_changed_at: datetime
    failed_probes: int = 0
    conversation_id: str | None = None
    deploy_status: str | None = None
    template_id: str = DEFAULT_TEMPLATE_ID
    template_version: int = 1


@dataclass(frozen=True)
class Observed:
    rows: list[Row]
    # None: services did not answer.
    batch: Batch | None
    # /convos/status answers of the instances the pool asked directly; None: no answer.
    runtimes: Mapping[str, Runtime | None] = field(default_factory=dict)
    # Healthy instances the pool chose not to ask this tick (steady idle/claimed, off rotation):
    # their missing runtime is no observation, not an unreachable runtime.
    not_asked: frozenset[str] = frozenset()
    # The ids this tick asked services about (`pool.tick.selection`; None: every row). A row
    # neither asked nor reported is unobserved: no change but what needs no observation (an
    # archived template, a rolled-back version). Asked and not reported: unknown to services.
    asked: frozenset[str] | None = None


@dataclass(frozen=True)
class Update:
    """Conditional write: status, probe counter and deploy status, WHERE status = `read`."""

    instance_id: str
    read: Status
    status: Status
    failed_probes: int
    deploy_status: str | None
    healthy: bool
    reason: str


@dataclass(frozen=True)
class Destroy:
    """Mark `mark` (conditional on `read`, so claims skip it from then on), tear down through
    services, delete the row."""

    instance_id: str
    read: Status
    mark: Status
    reason: str


@dataclass(frozen=True)
class DestroyOrphan:
    """Services knows the instance, the pool has no row: tear it down."""

    instance_id: str
    reason: str


@dataclass(frozen=True)
class Created:
    """Services made the instance (phase `deploying`): `creating` → `starting`, with its url."""

    instance_id: str
    url: str
    deploy_status: str | None


@dataclass(frozen=True)
class CreateFailed:
    """The create will not become an instance: services failed it (`reason`), is destroying it,
    or never heard of it. The row goes and the failure counts toward the create backoff;
    `tell_services`: services holds a record of it, which its destroy removes."""

    instance_id: str
    reason: str
    tell_services: bool


@dataclass(frozen=True)
class Resend:
    """A `creating` row services has not heard of: hand the create over again."""

    instance_id: str


@dataclass(frozen=True)
class Create:
    """Reserve and create `count` instances of one template version; the act step creates no
    more than this (`pool.tick.replenish.refill`)."""

    count: int
    template_id: str = DEFAULT_TEMPLATE_ID
    version: int = 1


Action = Update | Destroy | DestroyOrphan | Created | CreateFailed | Resend | Create


def plan(observed: Observed, target: Target, now: datetime) -> list[Action]:
    batch = observed.batch
    if batch is None:
        return []
    actions: list[Action] = []
    after: Counter[tuple[str, str]] = Counter()
    unseen = Unseen(frozenset(batch.unprobed), observed.not_asked, observed.asked)
    for row in observed.rows:
        action = _plan_row(row, batch, observed.runtimes, unseen, target, now)
        if action is not None:
            actions.append(action)
        if isinstance(action, Destroy | CreateFailed):
            continue
        if isinstance(action, Created):
            after[(row.template_id, "starting")] += 1
            continue
        after[(row.template_id, action.status if isinstance(action, Update) else row.status)] += 1
    # Only the ids the batch reports matter to the orphan rule (a set of every row would not).
    known = {row.id for row in observed.rows if row.id in batch.instances}
    actions += _orphans(batch, known, target, now)
    for pool in target.pools:
        retired = _retired(pool, observed.rows, actions)
        if pool.floor is not None:
            retired += _replace_old(pool, observed.rows, [*actions, *retired])
        actions += retired
        after[(pool.template_id, "idle")] -= len(retired)
    wanted = replenish_counts(after, target)
    for pool in target.pools:
        for version, count in pool.versions_for(wanted.get(pool.template_id, 0)):
            actions.append(Create(count, pool.template_id, version))
    return actions


def _retired(pool: PoolTarget, rows: list[Row], actions: list[Action]) -> list[Action]:
    """The idle instances the sizing step retires (recycled past their age, drained above the
    target), unless this tick acts on them otherwise."""
    acted = {a.instance_id for a in actions if isinstance(a, Update | Destroy)}
    idle = {r.id for r in rows if r.template_id == pool.template_id and r.status == "idle"}
    return [
        Destroy(instance_id, "idle", "dead", reason)
        for instance_id, reason in pool.retire
        if instance_id in idle and instance_id not in acted
    ]


def _replace_old(pool: PoolTarget, rows: list[Row], actions: list[Action]) -> list[Action]:
    """`recreate`: destroy the template's older idle instances, oldest first, while at least
    `floor` of its idle instances remain after this tick's other actions. A row this tick acts
    on otherwise is left for the next tick."""
    acted = {a.instance_id: a for a in actions if isinstance(a, Update | Destroy)}

    def stays_idle(row: Row) -> bool:
        action = acted.get(row.id)
        return action is None or (isinstance(action, Update) and action.status == "idle")

    idle = [r for r in rows if r.template_id == pool.template_id and r.status == "idle" and stays_idle(r)]
    old = sorted((r for r in idle if r.template_version < pool.version and r.id not in acted), key=_age)
    room = max(0, len(idle) - (pool.floor or 0))
    reason = f"replaced by version {pool.version} (recreate)"
    return [Destroy(r.id, "idle", "dead", reason) for r in old[:room]]


def _age(row: Row) -> datetime:
    return row.created_at


def settled(row: Row) -> bool:
    """False for a row a request in flight owns (`pool.status.IN_FLIGHT`: a claim provisioning it,
    a create making it): the tick reads no meaning into such a row and writes nothing to it. The
    one test of it in the tick: the plan, the runtimes it asks and the rows it stamps all use it."""
    return row.status not in IN_FLIGHT


def seen_healthy(rows: Iterable[Row], batch: Batch) -> list[Row]:
    """The settled rows services probed healthy this tick: the ones whose runtime may be asked
    (`pool.tick.runtimes`) and whose last-seen is stamped when the plan leaves them alone."""
    return [
        row
        for row in rows
        if settled(row)
        and (seen := batch.instances.get(row.id)) is not None
        and seen.health is not None
        and seen.health.ok
    ]


def _plan_row(
    row: Row,
    batch: Batch,
    runtimes: Mapping[str, Runtime | None],
    unseen: Unseen,
    target: Target,
    now: datetime,
) -> Update | Destroy | Created | CreateFailed | Resend | None:
    if row.status == "creating":
        return plan_create(row, batch, target, now)
    if not settled(row):
        return None
    if row.status == "idle":
        pool = target.pool(row.template_id)
        if pool is None:
            # Its template was archived: nobody may claim it any more.
            return Destroy(row.id, row.status, "dead", f"template {row.template_id} is archived")
        if row.template_version > pool.version and row.template_version != pool.canary_version:
            return Destroy(row.id, row.status, "dead", f"version {row.template_version} was rolled back")
    if unseen.asked is not None and row.id not in unseen.asked and row.id not in batch.instances:
        return None  # not observed this tick
    obs = observation_for(row, batch, runtimes, now, unseen)
    decision = decide(row.status, obs, target.rules)
    if decision.action == "destroy":
        return Destroy(row.id, row.status, decision.status, decision.reason)
    if decision.action == "gone":
        return Destroy(row.id, row.status, "dead", decision.reason)
    seen = batch.instances.get(row.id)
    deploy = seen.deploy_status if seen is not None and not obs.failed else row.deploy_status
    if (decision.status, decision.failed_probes, deploy) == (
        row.status,
        row.failed_probes,
        row.deploy_status,
    ):
        return None
    return Update(
        row.id, row.status, decision.status, decision.failed_probes, deploy, obs.healthy, decision.reason
    )


def plan_create(
    row: Row, batch: Batch, target: Target, now: datetime
) -> Created | CreateFailed | Resend | None:
    """A `creating` row follows the phase services reports for it (DESIGN.md §3); it is never
    timed out while services works on it, however long the platform makes it wait."""
    seen = batch.instances.get(row.id)
    if seen is None:
        age = (now - row.created_at).total_seconds()
        if age >= target.create_lost_seconds:
            return CreateFailed(row.id, "services never received this create", tell_services=False)
        if age >= target.create_resend_seconds:
            return Resend(row.id)
        return None  # being handed over (the row is reserved before services is asked)
    if seen.phase == "failed":
        return CreateFailed(row.id, seen.error or "services failed the create", tell_services=True)
    if seen.phase == "destroying":
        return CreateFailed(row.id, "services is destroying it", tell_services=True)
    # `deploying`, or null from a services that answers only once a create is made.
    if seen.phase in ("deploying", None) and seen.url:
        return Created(row.id, seen.url, seen.deploy_status)
    return None  # queued, creating, a phase a newer services added, or made without a url yet


def _orphans(batch: Batch, known: set[str], target: Target, now: datetime) -> list[Action]:
    orphans: list[Action] = []
    for instance_id, seen in sorted(batch.instances.items()):
        if instance_id in known:
            continue
        if (now - seen.created_at).total_seconds() >= target.orphan_grace_seconds:
            orphans.append(DestroyOrphan(instance_id, "services knows it, the pool does not"))
    return orphans


def count_statuses(rows: list[Row]) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for row in rows:
        counts[row.status] += 1
    return counts
