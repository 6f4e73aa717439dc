"""Which template a claim is served from is read once per template, however many claims of it
arrive together: claims that miss the cache together share one read (`pool.claims.templates`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from pool.claims.db import ClaimsDb
from pool.claims.schemas import ClaimCreate
from pool.claims.templates import TemplateChooser
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
