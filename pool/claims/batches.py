"""The claim's two writes for a batch of concurrent claims, each one statement over arrays
(`statements.RESERVE_MANY`, `MARK_CLAIMED_MANY`). `coalesce.Coalescer` decides when a batch runs;
`db.ClaimsDb` runs a lone claim's writes as the single-row statements, which plan cheaper."""

from __future__ import annotations

import asyncpg

from pool.claims.records import Claimed, NewClaim
from pool.claims.statements import MARK_CLAIMED_MANY, RESERVE_MANY


async def reserve(pool: asyncpg.Pool, claims: list[NewClaim], *, timeout: float) -> list[asyncpg.Record]:
    """RESERVE's row for each claim, in order."""
    rows = await pool.fetch(
        RESERVE_MANY,
        [claim.claim_id for claim in claims],
        [claim.caller for claim in claims],
        [claim.key for claim in claims],
        [claim.digest for claim in claims],
        [claim.join_url for claim in claims],
        [claim.source for claim in claims],
        [claim.template for claim in claims],
        [claim.owner_id for claim in claims],
        timeout=timeout,
    )
    by_claim = {row["claim_id"]: row for row in rows}
    return [by_claim[claim.claim_id] for claim in claims]


async def mark_claimed(pool: asyncpg.Pool, records: list[Claimed], *, timeout: float) -> list[bool]:
    """Whether each claim's outcome was recorded, in order."""
    columns = [list(column) for column in zip(*(record.arguments() for record in records), strict=True)]
    recorded = {row["id"] for row in await pool.fetch(MARK_CLAIMED_MANY, *columns, timeout=timeout)}
    return [record.claim_id in recorded for record in records]
