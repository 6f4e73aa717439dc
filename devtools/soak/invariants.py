"""DESIGN §14's invariants, read from the pool's and services' databases, the answers the soak got,
and the fakes' inventories. Each check returns violations as `(kind, detail)`; the soak collects
them by kind, with the seed that replays the run."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg

from devtools.soak.system import System

# The statuses whose instance holds a joinUrl (pool/status.py HOLDS_JOIN) and is alive at all.
HOLDS_JOIN = ("claiming", "claimed", "pending_acceptance", "crashed")
DOCUMENTED_5XX = {502, 503}


@dataclass
class Answer:
    """One claim request the soak made and what came back."""

    kind: str
    status: int | None  # None: no answer (connection refused while the pool was down, or a timeout)
    instance_id: str | None = None
    key: str | None = None
    join_url: str | None = None
    error: str = ""
    # Whether the body was a JSON object (None: not looked at); a 502/503 must carry one.
    json_body: bool | None = None
    at: float = field(default_factory=time.monotonic)
    # The template the claim named (`default`: none).
    template: str = "default"


@dataclass
class Sighting:
    """One look at a claim resource: its POST, a GET, an event of its stream or its DELETE."""

    at: float
    via: str
    status: str
    instance_id: str | None = None
    error: str = ""


@dataclass
class ClaimTrace:
    """A claim made with `POST /api/pool/claims` and everything the soak saw of it, in order."""

    id: str
    answered_at: float  # monotonic, when its POST answered: its deadline is timeout_seconds later
    timeout_seconds: int
    priority: int = 0
    key: str | None = None
    retry_of: str | None = None  # a retry of this claim's Idempotency-Key answered with a new claim
    sightings: list[Sighting] = field(default_factory=list)
    cancelled: bool = False  # its DELETE answered 200 with status cancelled
    ended: bool | None = None  # None: not followed to the end (the run stopped first)
    template: str = "default"  # the template it named (`default`: none)

    @property
    def last(self) -> str | None:
        return self.sightings[-1].status if self.sightings else None

    @property
    def instance_id(self) -> str | None:
        return next((s.instance_id for s in self.sightings if s.status == "succeeded"), None)


@dataclass
class Ledger:
    """What the soak has seen recorded, to see that it never changes."""

    outcomes: dict[str, tuple[str, str | None]] = field(default_factory=dict)


def check_answers(answers: list[Answer]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    by_instance: dict[str, set[str]] = defaultdict(set)
    by_key: dict[str, set[str]] = defaultdict(set)
    for answer in answers:
        if answer.status is not None and answer.status >= 500 and answer.status not in DOCUMENTED_5XX:
            kind = "hostile_5xx" if answer.kind == "hostile" else "5xx"
            found.append((kind, f"{answer.kind} answered {answer.status}: {answer.error[:200]}"))
        if answer.status in DOCUMENTED_5XX and answer.json_body is False:
            found.append(("5xx_not_json", f"{answer.kind} answered {answer.status}: {answer.error[:200]}"))
        if answer.error.startswith("timeout"):
            found.append(("unanswered", f"{answer.kind}: {answer.error[:200]}"))
        if answer.kind == "hostile" and answer.status is not None and answer.status < 400:
            found.append(("hostile_accepted", f"hostile input answered {answer.status}"))
        if answer.status == 200 and answer.instance_id:
            # One claim is its key or its joinUrl (a retry of either is the same claim).
            by_instance[answer.instance_id].add(answer.key or answer.join_url or id(answer).__str__())
            if answer.key:
                by_key[answer.key].add(answer.instance_id)
    for instance_id, claims in by_instance.items():
        if len(claims) > 1:
            found.append(("instance_two_claims", f"{instance_id} answered to {len(claims)} claims"))
    for key, instances in by_key.items():
        if len(instances) > 1:
            found.append(("retry_other_answer", f"key {key} answered with {sorted(instances)}"))
    return found


async def check_pool(
    system: System, ledger: Ledger, *, claiming_bound: float, claim_end_bound: float | None = None
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    conn = await asyncpg.connect(system.pool_db)
    try:
        rows = await conn.fetch(
            "SELECT join_url, array_agg(id) AS ids FROM instances "
            "WHERE status = ANY($1::text[]) AND join_url IS NOT NULL GROUP BY join_url HAVING count(*) > 1",
            list(HOLDS_JOIN),
        )
        found += [("join_url_two_instances", f"{r['join_url'][:60]} -> {r['ids']}") for r in rows]
        rows = await conn.fetch(
            "SELECT instance_id, count(*) AS n FROM claims WHERE status = 'succeeded' "
            "AND instance_id IS NOT NULL GROUP BY instance_id HAVING count(*) > 1"
        )
        found += [("instance_two_claims", f"{r['instance_id']} in {r['n']} succeeded claims") for r in rows]
        rows = await conn.fetch(
            "SELECT id, status, extract(epoch FROM now() - status_changed_at) AS age FROM instances "
            "WHERE status IN ('claiming', 'creating') "
            "AND now() - status_changed_at > make_interval(secs => $1)",
            claiming_bound,
        )
        found += [("stuck", f"{r['id']} {r['status']} for {r['age']:.0f}s") for r in rows]
        for row in await conn.fetch(
            "SELECT id, status, instance_id FROM claims WHERE status NOT IN ('queued', 'pending')"
        ):
            outcome = (row["status"], row["instance_id"])
            seen = ledger.outcomes.setdefault(row["id"], outcome)
            if seen != outcome:
                found.append(("claim_outcome_changed", f"{row['id']}: {seen} -> {outcome}"))
        if claim_end_bound is not None:
            found += await queue_rows(conn, end_bound=claim_end_bound)
    finally:
        await conn.close()
    return found


FINAL = ("succeeded", "failed", "cancelled")
# A claim that committed its INSERT a moment after the dispatch that skipped it began was not yet
# visible to it: "queued at the same time" counts from this long after its queued_at.
QUEUE_VISIBILITY_SECONDS = 1.0


def check_claims(
    traces: list[ClaimTrace], answers: list[Answer], releases: dict[str, list[float]], *, end_bound: float
) -> list[tuple[str, str]]:
    """What the soak saw of each claim resource: it ends by its deadline plus `end_bound`; once
    ended it reads the same (a succeeded one with the same instance); a failure reads as a sentence;
    a cancelled one never gets an instance; a retried key answers its claim unless that claim had
    ended without an instance; no instance held by two claims unless released between."""
    found: list[tuple[str, str]] = []
    by_id = {trace.id: trace for trace in traces}
    for trace in traces:
        seen = [(s.via, s.status, s.instance_id) for s in trace.sightings][:12]
        final = next((s for s in trace.sightings if s.status in FINAL), None)
        deadline = trace.answered_at + trace.timeout_seconds
        if trace.ended is False:
            found.append(
                ("claim_unended", f"{trace.id} not ended {end_bound:.0f}s past its deadline: {seen}")
            )
        elif final is not None and final.at > deadline + end_bound:
            found.append(("claim_unended", f"{trace.id} ended {final.at - deadline:.0f}s past its deadline"))
        if final is not None and any(
            (s.status, s.instance_id) != (final.status, final.instance_id)
            for s in trace.sightings[trace.sightings.index(final) :]
        ):
            found.append(("claim_went_back", f"{trace.id}: {seen}"))
        for sighting in trace.sightings:
            if sighting.status == "succeeded" and not sighting.instance_id:
                found.append(
                    ("claim_unreadable", f"{trace.id} succeeded without its answer ({sighting.via})")
                )
            if sighting.status in ("failed", "cancelled") and len(sighting.error.strip()) < 3:
                found.append(("claim_unreadable", f"{trace.id} {sighting.status} without a readable error"))
        if trace.cancelled:
            at = next(s.at for s in trace.sightings if s.via == "delete" and s.status == "cancelled")
            if any(
                s.status == "succeeded" or (s.at >= at and s.status != "cancelled") for s in trace.sightings
            ):
                found.append(("cancelled_got_instance", f"{trace.id}: {seen}"))
        original = by_id.get(trace.retry_of or "")
        if original is not None and original.last not in ("failed", "cancelled"):
            found.append(("claim_retry_other", f"key of {original.id} ({original.last}) answered {trace.id}"))
    found += _shared_instances(traces, answers, releases)
    return found


def _shared_instances(
    traces: list[ClaimTrace], answers: list[Answer], releases: dict[str, list[float]]
) -> list[tuple[str, str]]:
    """Two claims (at least one a claim resource) on one instance with no release of it between."""
    holders: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for trace in traces:
        won = next((s for s in trace.sightings if s.status == "succeeded" and s.instance_id), None)
        if won is not None and won.instance_id:
            holders[won.instance_id].append((won.at, f"claim {trace.id}"))
    for answer in answers:
        if answer.status == 200 and answer.instance_id and answer.kind in ("claim", "retry", "same_join_url"):
            holders[answer.instance_id].append((answer.at, f"{answer.kind} {answer.key or answer.join_url}"))
    found = []
    for instance_id, held in holders.items():
        held.sort()
        for (t1, first), (t2, second) in zip(held, held[1:], strict=False):
            if first == second or not (first.startswith("claim ") or second.startswith("claim ")):
                continue
            if not any(t1 <= r <= t2 for r in releases.get(instance_id, [])):
                found.append(("claim_instance_shared", f"{instance_id} held by {first} and {second}"))
    return found


QUEUE_ORDER = """
SELECT b.id AS served, a.id AS skipped, a.priority AS skipped_priority, b.priority,
       extract(epoch FROM b.assigned_at - a.queued_at)::float8 AS waited
  FROM claims b JOIN claims a ON a.template = b.template AND a.id <> b.id
   AND (a.priority > b.priority OR (a.priority = b.priority AND a.queue_seq < b.queue_seq))
 WHERE b.assigned_at IS NOT NULL AND b.queued_at IS NOT NULL AND a.queued_at IS NOT NULL
   AND a.attempts = 0
   AND a.queued_at < b.assigned_at - make_interval(secs => $1)
   -- When the earlier one left the queue: assigned, or else (cancelled, or timed out: the dispatch
   -- that passes a claim's deadline times it out before it assigns) its last write or its deadline.
   AND coalesce(a.assigned_at,
                CASE WHEN a.status = 'cancelled' THEN a.updated_at END,
                CASE WHEN a.status = 'failed' THEN least(a.updated_at, a.deadline_at) END,
                'infinity') > b.assigned_at
 LIMIT 20
"""


async def check_claim_rows(
    pool_db: str, traces: list[ClaimTrace], *, end_bound: float
) -> list[tuple[str, str]]:
    """At the end, from the pool's claims table: every claim whose DELETE answered `cancelled` is
    cancelled with no instance; nothing queued or pending past its deadline plus `end_bound`; and
    no claim was assigned while one that should go first (higher priority, or the same and queued
    earlier) still waited in the queue (one put back after a failed provision, attempts > 0, has
    lost its first place in time and is not counted as skipped)."""
    found: list[tuple[str, str]] = []
    cancelled = [trace.id for trace in traces if trace.cancelled]
    conn = await asyncpg.connect(pool_db)
    try:
        rows = {
            r["id"]: r
            for r in await conn.fetch(
                "SELECT id, status, instance_id FROM claims WHERE id = ANY($1::text[])", cancelled
            )
        }
        for claim_id in cancelled:
            row = rows.get(claim_id)
            if row is None or row["status"] != "cancelled" or row["instance_id"] is not None:
                detail = "row gone" if row is None else f"{row['status']} with instance {row['instance_id']}"
                found.append(("cancelled_got_instance", f"{claim_id} cancelled, then {detail}"))
        found += await queue_rows(conn, end_bound=end_bound)
        for r in await conn.fetch(QUEUE_ORDER, QUEUE_VISIBILITY_SECONDS):
            found.append((
                "queue_order",
                f"{r['served']} (priority {r['priority']}) assigned while {r['skipped']} (priority "
                f"{r['skipped_priority']}, queued {r['waited']:.1f}s before) still waited",
            ))  # fmt: skip
    finally:
        await conn.close()
    return found


async def queue_rows(conn: asyncpg.Connection, *, end_bound: float) -> list[tuple[str, str]]:
    """Claims of the queue not ended past their deadline plus the bound (a queued one, at most a
    dispatch round and a restart past it)."""
    rows = await conn.fetch(
        "SELECT id, status, extract(epoch FROM now() - deadline_at)::float8 AS late FROM claims "
        "WHERE queued_at IS NOT NULL AND ((status = 'queued' AND deadline_at < now() - interval '30 s') "
        "OR (status = 'pending' AND deadline_at < now() - make_interval(secs => $1)))",
        end_bound,
    )
    return [
        ("claim_unended", f"{r['id']} still {r['status']} {r['late']:.0f}s past its deadline") for r in rows
    ]


# -- templates and rollouts (DESIGN §11) -------------------------------------------------------

FINAL_PHASES = ("done", "rolled_back")
# How long after an archive a claim may still be handed an instance of it: the claims' template
# cache (pool/claims/templates.py CACHE_SECONDS, 2 s) and the tick that then destroys its idle
# instances, with room for a slow statement under the chaos.
ARCHIVE_BOUND_SECONDS = 10.0


@dataclass
class TemplateRun:
    """What the soak did with templates (devtools/soak/templates.py) and saw of their rollouts."""

    second: str | None = None  # the template that gets the rollouts
    archived: str | None = None  # the template archived half-way
    archived_at: float | None = None  # monotonic, when its archive answered
    published: list[tuple[str, int]] = field(default_factory=list)  # (strategy, version), in order
    # Each published version's rollout as the status API last showed it while the soak followed it.
    outcomes: dict[int, dict[str, object]] = field(default_factory=dict)

    @property
    def exercised(self) -> bool:
        return self.second is not None and {s for s, _ in self.published} >= {"canary", "recreate"}


# Succeeded claims whose instance was made for another template: the create's own record (the
# instance's row is gone once its agent ended; its `create.requested` event outlives it).
CLAIMED_OTHER_TEMPLATE = """
SELECT c.id, c.template, c.instance_id, e.summary->>'templateId' AS made_for
  FROM claims c JOIN instance_events e ON e.instance_id = c.instance_id AND e.kind = 'create.requested'
 WHERE c.status = 'succeeded' AND e.summary->>'templateId' IS DISTINCT FROM c.template
UNION ALL
SELECT c.id, c.template, c.instance_id, i.template_id
  FROM claims c JOIN instances i ON i.id = c.instance_id
 WHERE c.status = 'succeeded' AND i.template_id IS DISTINCT FROM c.template
 LIMIT 20
"""
# Claims handed an instance of an archived template well after its archive.
ARCHIVED_SERVED = """
SELECT c.id, c.template,
       extract(epoch FROM coalesce(c.assigned_at, c.created_at) - t.archived_at)::float8 AS after
  FROM claims c JOIN templates t ON t.id = c.template
 WHERE t.archived_at IS NOT NULL AND c.status = 'succeeded'
   AND coalesce(c.assigned_at, c.created_at) > t.archived_at + make_interval(secs => $1)
 LIMIT 20
"""


async def check_templates(
    pool_db: str, run: TemplateRun, traces: list[ClaimTrace], answers: list[Answer]
) -> list[tuple[str, str]]:
    """At the end, after the quiesce: every succeeded claim got an instance of the template it
    named; no claim got one of an archived template past the archive's bound, and nothing of it is
    left idle or coming; every rollout published ended rolled on (the template on its version) or
    rolled back with a reason (the template on the previous one); no idle instance is left of a
    version a finished `recreate` replaced or of a version rolled back; and templates and both
    rollouts were exercised."""
    found: list[tuple[str, str]] = []
    conn = await asyncpg.connect(pool_db)
    try:
        for r in await conn.fetch(CLAIMED_OTHER_TEMPLATE):
            found.append((
                "template_mismatch",
                f"claim {r['id']} of {r['template']} succeeded with {r['instance_id']}, "
                f"made for {r['made_for']}",
            ))  # fmt: skip
        made_for = {
            r["instance_id"]: r["template"]
            for r in await conn.fetch(
                "SELECT instance_id, summary->>'templateId' AS template FROM instance_events "
                "WHERE kind = 'create.requested'"
            )
        }
        named = {trace.id: trace.template for trace in traces}
        for r in await conn.fetch("SELECT id, template FROM claims WHERE id = ANY($1::text[])", list(named)):
            if r["template"] != named[r["id"]]:
                found.append(
                    (
                        "template_mismatch",
                        f"claim {r['id']} named {named[r['id']]}, recorded as {r['template']}",
                    )
                )
        for answer in answers:
            made = made_for.get(answer.instance_id or "")
            if answer.status == 200 and answer.instance_id and made is not None and made != answer.template:
                found.append((
                    "template_mismatch",
                    f"{answer.kind} naming {answer.template} answered {answer.instance_id}, made for {made}",
                ))  # fmt: skip
        for r in await conn.fetch(ARCHIVED_SERVED, ARCHIVE_BOUND_SECONDS):
            found.append(
                (
                    "archived_template_served",
                    f"claim {r['id']} got an instance of {r['template']} {r['after']:.1f}s after its archive",
                )
            )
        if run.archived is not None and run.archived_at is not None:
            left = await conn.fetch(
                "SELECT id, status FROM instances "
                "WHERE template_id = $1 AND status IN ('idle', 'starting', 'creating')",
                run.archived,
            )
            found += [
                ("archived_template_served", f"{r['id']} of the archived template still {r['status']}")
                for r in left
            ]
        if run.second is not None:
            found += await _rollouts(conn, run)
    finally:
        await conn.close()
    served = any(t.template == run.second and t.instance_id for t in traces) or any(
        a.template == run.second and a.status == 200 and a.instance_id for a in answers
    )
    if not (run.exercised and served):
        found.append((
            "templates_idle",
            f"templates or rollouts not exercised: second {run.second}, published {run.published}, "
            f"a claim of it served: {served}",
        ))  # fmt: skip
    return found


async def _rollouts(conn: asyncpg.Connection, run: TemplateRun) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    row = await conn.fetchrow(
        "SELECT current_version, rollout_state FROM templates WHERE id = $1", run.second
    )
    if row is None:
        return [("rollout_unfinished", f"template {run.second} gone")]
    state = (
        json.loads(row["rollout_state"]) if isinstance(row["rollout_state"], str) else row["rollout_state"]
    )
    rolled_back = {v for v, seen in run.outcomes.items() if seen.get("phase") == "rolled_back"}
    for strategy, version in run.published[:-1]:
        seen = run.outcomes.get(version) or {}
        if seen.get("phase") not in FINAL_PHASES:
            found.append(
                (
                    "rollout_unfinished",
                    f"{strategy} of version {version} had not ended when the next was published: {seen}",
                )
            )
    if run.published:
        strategy, version = run.published[-1]
        if not state or int(state.get("version", 0)) != version:
            found.append(
                (
                    "rollout_unfinished",
                    f"the last rollout published ({strategy} {version}) is not the template's: {state}",
                )
            )
            return found
        phase, reason = state.get("phase"), state.get("reason")
        if phase not in FINAL_PHASES:
            found.append(
                (
                    "rollout_unfinished",
                    f"{strategy} of version {version} still {phase} after the quiesce: {state}",
                )
            )
        if phase == "rolled_back":
            rolled_back.add(version)
            if not reason or len(str(reason).strip()) < 3:
                found.append(
                    ("rollout_unfinished", f"{strategy} of version {version} rolled back with no reason")
                )
            if row["current_version"] != int(state["previous"]):
                found.append(
                    ("rollout_unfinished", f"rolled back, yet the template is on {row['current_version']}")
                )
        if phase == "done":
            if row["current_version"] != version:
                found.append(
                    ("rollout_unfinished", f"rolled on, yet the template is on {row['current_version']}")
                )
            if strategy == "recreate":
                old = await conn.fetch(
                    "SELECT id, template_version FROM instances WHERE template_id = $1 AND status = 'idle' "
                    "AND template_version < $2",
                    run.second,
                    version,
                )
                found += [
                    (
                        "rollout_old_idle",
                        f"{r['id']} of version {r['template_version']} idle after the recreate "
                        f"of {version} finished",
                    )
                    for r in old
                ]
    if rolled_back:
        left = await conn.fetch(
            "SELECT id, template_version FROM instances WHERE template_id = $1 AND status = 'idle' "
            "AND template_version = ANY($2::int[])",
            run.second,
            sorted(rolled_back),
        )
        found += [
            ("rollout_old_idle", f"{r['id']} of rolled-back version {r['template_version']} idle")
            for r in left
        ]
    return found
