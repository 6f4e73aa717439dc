"""The claim's SQL on the ORM session. Each function runs inside a transaction its caller owns.

What picks and takes an idle instance is in `db.py` (asyncpg, one statement each); here is what
reads a duplicate's first claim, ends claims, and settles a `claiming` or `pending_acceptance`
instance. Every write to an instance is conditional on the status the claim put there, so a
kill or a tick that raced the claim wins and the claim notices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class ExistingClaim:
    id: str
    idempotency_key: str | None
    request_hash: str
    join_url: str | None
    instance_id: str | None
    status: str
    response: dict[str, Any] | None
    instance_status: str | None


async def find_existing(
    session: AsyncSession, *, key: str | None, join_url: str | None
) -> ExistingClaim | None:
    """The claim this one duplicates: same Idempotency-Key first, else the active claim of the joinUrl."""
    if key is not None:
        found = await _select_claim(session, "c.idempotency_key = :key", {"key": key})
        if found is not None:
            return found
    if join_url is not None:
        return await _select_claim(
            session, "c.join_url = :join_url AND c.status IN ('pending', 'succeeded')", {"join_url": join_url}
        )
    return None


async def get_claim(session: AsyncSession, claim_id: str) -> ExistingClaim | None:
    return await _select_claim(session, "c.id = :id", {"id": claim_id})


async def _select_claim(session: AsyncSession, where: str, params: dict[str, Any]) -> ExistingClaim | None:
    row = (
        await session.execute(
            text(
                f"""
                SELECT c.id, c.idempotency_key, c.request_hash, c.join_url, c.instance_id, c.status,
                       c.response, i.status AS instance_status
                  FROM claims c LEFT JOIN instances i ON i.id = c.instance_id
                 WHERE {where}
                """
            ),
            params,
        )
    ).first()
    return ExistingClaim(**row._mapping) if row is not None else None


async def release_claim(session: AsyncSession, claim_id: str) -> None:
    await session.execute(
        text("UPDATE claims SET status = 'released', updated_at = now() WHERE id = :id"), {"id": claim_id}
    )


async def release_claims_of(session: AsyncSession, instance_id: str) -> None:
    """The instance is gone or lost its agent: its joinUrl may be claimed again."""
    await session.execute(
        text(
            "UPDATE claims SET status = 'released', updated_at = now() "
            "WHERE instance_id = :iid AND status IN ('pending', 'succeeded')"
        ),
        {"iid": instance_id},
    )


async def set_status_from_claiming(
    session: AsyncSession, *, instance_id: str, status: str, error: str
) -> bool:
    """Give back (idle) or condemn (dead) an instance whose provision failed."""
    return await set_status_from(
        session, instance_id=instance_id, expected="claiming", status=status, error=error
    )


async def set_status_from(
    session: AsyncSession, *, instance_id: str, expected: str, status: str, error: str | None
) -> bool:
    result = await session.execute(
        text(
            """
            UPDATE instances
               SET status = :status, last_error = :error, status_changed_at = now(), updated_at = now()
             WHERE id = :id AND status = :expected
            """
        ),
        {"id": instance_id, "status": status, "expected": expected, "error": error[:500] if error else None},
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def release_stale_claims(session: AsyncSession, *, older_than_seconds: float) -> list[str]:
    """Claims whose claimant died mid-provision: release them and condemn their `claiming` instance.

    The tick never touches `claiming`, so without this such an instance would be stuck forever.
    An instance in an unknown half-provisioned state is not handed out again: `dead`, for the tick
    to destroy and replace.
    """
    rows = await session.execute(
        text(
            """
            WITH stale AS (
                UPDATE claims SET status = 'released', updated_at = now()
                 WHERE status = 'pending' AND created_at < now() - make_interval(secs => :age)
                RETURNING instance_id
            )
            UPDATE instances
               SET status = 'dead', last_error = 'claim abandoned mid-provision',
                   status_changed_at = now(), updated_at = now()
             WHERE status = 'claiming' AND id IN (SELECT instance_id FROM stale)
            RETURNING id
            """
        ),
        {"age": older_than_seconds},
    )
    return [row[0] for row in rows.all()]
