"""Cloning through the fake Railway: the pool (its loop running) and services with the Railway
provider over real HTTP, a real runtime process behind each deploy (tests.pool.e2e's product). The
clone answers with the source's memory in a conversation of its own, and the lineage shows."""

from __future__ import annotations

import pytest

from tests.pool.e2e.clone_support import Runtimes, assert_cloned, claimed_source, idle
from tests.pool.e2e.test_railway_end_to_end import Product, product
from tests.support import until

__all__ = ["product"]  # the fixture, used here with one Railway mode

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.mark.parametrize("product", ["shared"], indirect=True)
async def test_a_clone_on_railway_answers_with_the_source_state(product: Product, pool_db_url: str) -> None:
    pool, runtimes = product.pool, Runtimes(pool_db_url)
    await until(lambda: idle(pool, 2))
    source = await claimed_source(pool, runtimes)
    await until(lambda: idle(pool, 1))
    clone = await assert_cloned(pool, runtimes, source)

    # The clone took the idle instance (max_total 3: source, clone, one idle), no new deploy.
    live = [s for s in product.fake.store.services.values() if not s.deleted_at]
    assert len(live) == 3
    rows = await product.rows()
    assert (rows[source["instanceId"]][0], rows[clone["instanceId"]][0]) == ("claimed", "claimed")
