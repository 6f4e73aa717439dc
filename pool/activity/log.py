"""Lifecycle entries of the instance event log, written in the caller's own transaction.

A status write and its entry commit together (or not at all): the log never names a change that
did not happen. One INSERT per call, whatever the number of instances. Kinds, and who writes them:

- `status.changed` {from, to, reason}: the tick (pool/tick/instance_writes.py), actor `pool`;
- `instance.destroying` {from, mark, reason}: the tick's destroys (dead, replaced, recycled, drained);
- `create.requested` {templateId, version}, `instance.created` (services made it: `starting`),
  `create.failed` {error}: the
  replenish path (pool/tick/replenish.py), actor `pool` or `operator`;
- `claim.claimed` {claimId, status}: the claim path, written off its answer path
  (pool/activity/recorder.py), actor the claim's caller; `claim.failed` {status, reason}: a
  failed provision or an abandoned claim reset (pool/claims/recovery.py); `claim.released`: its
  agent let the joinUrl go;
- `instance.killed`, `instance.dismissed`, `instance.drained` {reason}: operators
  (pool/instances/service.py); `clone.source` {target}, `clone.target` {source} (clone.py);
- `rollout.rolled_back` {version, reason}: the canaries of a version rolled back
  (pool/templates/rollouts.py).

`summary` names what was done, never a message body or a secret (errors are cut to 300 characters).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pool.models import InstanceEvent

POOL = "pool"
OPERATOR = "operator"
TEXT_LIMIT = 300


def entry(instance_id: str, kind: str, actor: str, summary: dict[str, Any]) -> dict[str, Any]:
    """One row's values, long texts cut (an error may carry a platform's whole answer)."""
    cut = {k: v[:TEXT_LIMIT] if isinstance(v, str) else v for k, v in summary.items() if v is not None}
    return {"instance_id": instance_id, "kind": kind, "actor": actor, "summary": cut}


async def add(session: AsyncSession, instance_id: str, kind: str, *, actor: str, **summary: Any) -> None:
    await session.execute(insert(InstanceEvent).values(entry(instance_id, kind, actor, summary)))


async def add_many(
    session: AsyncSession, instance_ids: Iterable[str], kind: str, *, actor: str, **summary: Any
) -> None:
    rows = [entry(i, kind, actor, summary) for i in instance_ids]
    if rows:
        await session.execute(insert(InstanceEvent), rows)  # executemany: see recorder.flush


async def status_changed(session: AsyncSession, instance_id: str, was: str, now: str, reason: str) -> None:
    """The tick moved an instance from one status to another (actor `pool`)."""
    await add(
        session, instance_id, "status.changed", actor=POOL, **{"from": was, "to": now, "reason": reason}
    )


async def destroying(session: AsyncSession, instance_id: str, was: str, mark: str, reason: str) -> None:
    """The tick marked an instance for teardown (dead, replaced by a rollout, drained by sizing)."""
    await add(
        session,
        instance_id,
        "instance.destroying",
        actor=POOL,
        **{"from": was, "mark": mark, "reason": reason},
    )


async def creates_requested(
    session: AsyncSession, made: Iterable[tuple[str, str, int]], *, actor: str
) -> None:
    """Rows reserved as `creating`, each `(instance_id, template_id, version)`: one INSERT for all."""
    rows = [entry(i, "create.requested", actor, {"templateId": t, "version": v}) for i, t, v in made]
    if rows:
        await session.execute(insert(InstanceEvent), rows)  # executemany: see recorder.flush


async def rolled_back(
    session: AsyncSession, template_id: str, rows: Iterable[Any], version: int, reason: str | None
) -> None:
    """On the log of each instance of the version rolled back (canaries): why its version went.
    `rows` are the tick's `pool.tick.plan.Row`s, read before it acted (a failed canary included)."""
    ids = [r.id for r in rows if r.template_id == template_id and r.template_version == version]
    await add_many(session, ids, "rollout.rolled_back", actor=POOL, version=version, reason=reason)
