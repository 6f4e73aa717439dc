"""Which template a claim is served from is read once per template, however many claims of it
arrive together: claims that miss the cache together share one read (`pool.claims.templates`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from pool.claims.db import ClaimsDb, DatabaseSlow
from pool.claims.schemas import ClaimCreate
from pool.claims.templates import TemplateChooser
from shared.db import libpq_url
from shared.errors import NotFound


class CountingDb(ClaimsDb):
    """Counts the connections the chooser takes: one per statement it reads."""

    reads = 0

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        self.reads += 1
        async with super().connection() as connection:
            yield connection


@pytest.fixture
async def db(pool_db_url: str) -> AsyncIterator[CountingDb]:
    counting = CountingDb(pool_db_url)
    try:
        yield counting
    finally:
        await counting.close()


async def test_a_burst_of_claims_naming_a_template_reads_it_once_and_again_once_it_expires(
    db: CountingDb,
) -> None:
    chooser = TemplateChooser(db, cache_seconds=0.2)
    body = ClaimCreate(templateId="default")
    chosen = await asyncio.gather(*(chooser.choose(body) for _ in range(30)))
    assert {template for template, _ in chosen} == {"default"}
    assert db.reads == 1
    await asyncio.sleep(0.3)  # the entry expired: the next burst reads it once more
    await asyncio.gather(*(chooser.choose(body) for _ in range(30)))
    assert db.reads == 2


async def test_claims_that_shared_a_read_of_an_unknown_template_are_each_refused(db: CountingDb) -> None:
    chooser = TemplateChooser(db)
    body = ClaimCreate(templateId="no-such-template")
    answers = await asyncio.gather(*(chooser.choose(body) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(answer, NotFound) for answer in answers)
    assert db.reads == 1


async def test_a_claim_that_gives_up_does_not_cancel_the_read_others_wait_for(db: CountingDb) -> None:
    chooser = TemplateChooser(db)
    body = ClaimCreate(templateId="default")
    first = asyncio.create_task(chooser.choose(body))
    others = [asyncio.create_task(chooser.choose(body)) for _ in range(3)]
    await asyncio.sleep(0)
    first.cancel()
    assert [template for template, _ in await asyncio.gather(*others)] == ["default"] * 3
    assert db.reads == 1


async def test_a_template_read_the_database_does_not_answer_is_refused_in_time(pool_db_url: str) -> None:
    """The read every claim of a template shares is bounded like the claim's writes: while another
    transaction holds the templates table, the claims that wait on it are refused (503), they do
    not hang."""
    slow = CountingDb(pool_db_url, statement_timeout=0.5)
    holder = await asyncpg.connect(libpq_url(pool_db_url))
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE templates IN ACCESS EXCLUSIVE MODE")
            chooser = TemplateChooser(slow)
            answers = await asyncio.wait_for(
                asyncio.gather(
                    *(chooser.choose(ClaimCreate(templateId="default")) for _ in range(3)),
                    return_exceptions=True,
                ),
                timeout=5,
            )
    finally:
        await holder.close()
        await slow.close()
    assert all(isinstance(answer, DatabaseSlow) for answer in answers), answers
    assert slow.reads == 1
