"""DESIGN §14's invariants, read from the pool's and services' databases, the answers the soak got,
and the fakes' inventories. Each check returns violations as `(kind, detail)`; the soak collects
them by kind, with the seed that replays the run."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

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


async def check_pool(system: System, ledger: Ledger, *, claiming_bound: float) -> list[tuple[str, str]]:
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
    finally:
        await conn.close()
    return found


async def live_instances(system: System) -> set[str]:
    conn = await asyncpg.connect(system.pool_db)
    try:
        return {r["id"] for r in await conn.fetch("SELECT id FROM instances")}
    finally:
        await conn.close()


async def ledger_rows(system: System) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(system.services_db)
    try:
        rows = await conn.fetch(
            "SELECT instance_id, tool_id, resource_id, status FROM instance_services WHERE status = 'active'"
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()


def _owner(name: str, instances: set[str]) -> str | None:
    return next((i for i in instances if i in name), None)


async def check_leaks(system: System) -> list[tuple[str, str]]:
    """After the quiesce and a sweep: nothing billed that no pool instance owns, and every live ledger
    row's resource exists."""
    found: list[tuple[str, str]] = []
    instances = await live_instances(system)
    leftovers = system.railway.store.leftovers()
    for kind in ("projects", "services"):
        for name in leftovers[kind]:
            if name == "fleet":  # shared mode's own project
                continue
            if _owner(name, instances) is None:
                found.append(("railway_leak", f"{kind[:-1]} {name} owned by no instance"))
    inventory = system.vendors.vendors.inventory()
    for vendor, names in inventory.items():
        for name in names:
            if _owner(name, instances) is None:
                found.append(("vendor_leak", f"{vendor}: {name} owned by no instance"))
    existing = {
        "openrouter": set(system.vendors.vendors.openrouter.keys),
        "agentmail": set(system.vendors.vendors.agentmail.inboxes),
        "telnyx": {n["phone_number"] for n in system.vendors.vendors.telnyx.numbers.values()}
        | set(system.vendors.vendors.telnyx.numbers),
    }
    for row in await ledger_rows(system):
        tool, resource = row["tool_id"], row["resource_id"]
        if tool in existing and resource and resource not in existing[tool]:
            found.append(("ledger_missing_resource", f"{tool} {resource} of {row['instance_id']}"))
    return found
