"""The login throttle (issue 11, finding 7): shared by every pool process through the database,
keyed on lanes rather than the client address, and never a lock-out of the right secret.

Two pool apps on one database stand for two processes (or replicas) behind one proxy: every client
here comes from 127.0.0.1, as every user does behind Railway's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from pool.dashboard.session import COOKIE, DEVICE_COOKIE
from pool.dashboard.throttle import QUEUE_DEPTH
from pool.main import create_app
from tests.pool.dashboard.conftest import ADMIN_PASSWORD, dashboard_settings, log_in
from tests.support import serve

MAX_DELAY = 0.8


@pytest.fixture
async def two_pools(pool_db_url: str) -> AsyncIterator[tuple[str, str]]:
    settings = dashboard_settings(pool_db_url, login_delay_max_seconds=MAX_DELAY)
    async with serve(create_app(settings)) as first, serve(create_app(settings)) as second:
        yield first, second


async def timed_login(url: str, secret: str, device: str | None = None) -> tuple[httpx.Response, float]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        if device:
            client.cookies.set(DEVICE_COOKIE, device, path="/dashboard/login")
        started = time.monotonic()
        response = await log_in(client, secret)
        return response, time.monotonic() - started


async def test_guesses_on_one_process_slow_the_next_login_on_another_which_still_gets_in(
    two_pools: tuple[str, str],
) -> None:
    first, second = two_pools
    for _ in range(6):
        response, _ = await timed_login(first, "a guess")
        assert response.status_code == 401

    response, elapsed = await timed_login(second, ADMIN_PASSWORD)

    # Before: the other process knew nothing of the guesses (and this one, after five, refused
    # the right secret with 429 for a minute, whoever sent it).
    assert response.status_code == 303, response.text
    assert MAX_DELAY * 0.5 <= elapsed <= MAX_DELAY + 1.5


async def test_an_operator_who_logged_in_before_gets_in_at_once_during_a_flood_of_guesses(
    two_pools: tuple[str, str],
) -> None:
    first, second = two_pools
    async with httpx.AsyncClient(base_url=second, timeout=30) as browser:
        assert (await log_in(browser, ADMIN_PASSWORD)).status_code == 303
        device = browser.cookies[DEVICE_COOKIE]
    statuses: list[int] = []
    flood_ends = time.monotonic() + 3.0

    async def guesser() -> None:
        while time.monotonic() < flood_ends:
            response, _ = await timed_login(first, "a guess")
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.headers["Retry-After"].isdigit()
                assert "Too many login attempts" in response.text
            await asyncio.sleep(0.01)

    async with AsyncExitStack():
        flood = [asyncio.create_task(guesser()) for _ in range(10)]
        await asyncio.sleep(1.0)
        operator, elapsed = await timed_login(second, ADMIN_PASSWORD, device=device)
        stranger, _ = await timed_login(second, ADMIN_PASSWORD)
        await asyncio.gather(*flood)

    assert operator.status_code == 303 and COOKIE in operator.cookies
    assert elapsed < MAX_DELAY
    # A browser never seen before queues behind the guesses: let in after its turn, or told when
    # to retry; never checked out of turn.
    assert stranger.status_code in (303, 429)
    assert set(statuses) <= {401, 429} and 429 in statuses
    # The guesses checked: a first burst of a few turns, then about one per MAX_DELAY.
    assert statuses.count(401) <= 2 * (QUEUE_DEPTH + 1) + 3.0 / (MAX_DELAY / 2) + 2
