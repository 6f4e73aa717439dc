"""Throttles, rate limits and HTTP-200 errors: paced, retried, or surfaced as the right error type."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.platforms.base import InstanceSpec, PlatformRef
from services.platforms.railway.errors import RailwayThrottled, RailwayUnauthorized, error_from_graphql
from services.platforms.railway.limits import RateLimiter, TokenPool
from services.platforms.railway.ref import RailwayRef
from shared.errors import PermanentError, TransientError
from tests.services.platforms.railway.harness import Harness, recorder

TOKENS = "rw-test-token-1,rw-test-token-2,rw-test-token-3,rw-test-token-4"


async def test_20_concurrent_creates_with_4_tokens_under_a_project_throttle_all_succeed(
    railway: Harness,
) -> None:
    # 1 project per 30 s per token, scaled down to 0.3 s.
    railway.fake.settings.project_create_interval = 0.3
    platform = railway.platform("per-instance", api_tokens=TOKENS, project_create_cooldown_seconds=0.3)
    _, on_progress = recorder()
    started = time.monotonic()
    specs = [InstanceSpec(f"{i:012d}", "a", {"GATEWAY_TOKEN": "g"}, "img:1") for i in range(20)]
    refs = await asyncio.gather(*(platform.create(spec, on_progress) for spec in specs))
    elapsed = time.monotonic() - started
    assert len({RailwayRef.of(ref).project_id for ref in refs}) == 20
    assert sorted(railway.fake.store.leftovers()["services"]) == [f"agent-{i:012d}" for i in range(20)]
    # 5 projects per token need at least 4 cooldowns; pacing spread them over all four tokens,
    # and spaced them so that Railway had no reason to refuse a single one.
    assert elapsed >= 4 * 0.3
    assert railway.fake.rejected["project_too_quickly"] == 0
    assert {p.created_by for p in railway.fake.store.projects.values()} == set(TOKENS.split(","))
    print(f"20 creates in {elapsed:.2f}s, rejected by the fake: {dict(railway.fake.rejected)}")


async def test_too_quickly_answers_are_retried_on_another_token(railway: Harness) -> None:
    railway.fake.settings.project_create_interval = 60
    # Two tokens just created projects (elsewhere): Railway refuses them, the client cannot know.
    for token in ("rw-test-token-1", "rw-test-token-2"):
        assert railway.fake.throttle_allows("project", token)
    platform = railway.platform("per-instance", api_tokens=TOKENS)
    _, on_progress = recorder()
    ref = await platform.create(InstanceSpec("000000000001", "a", {}, "i"), on_progress)
    assert railway.fake.store.projects[RailwayRef.of(ref).project_id or ""].created_by == "rw-test-token-3"
    assert railway.fake.rejected["project_too_quickly"] == 2


async def test_throttle_outlasting_every_attempt_surfaces_as_transient(railway: Harness) -> None:
    railway.fake.settings.project_create_interval = 60
    platform = railway.platform("per-instance", max_attempts=2)
    _, on_progress = recorder()
    await platform.create(InstanceSpec("000000000001", "a", {}, "i"), on_progress)
    with pytest.raises(RailwayThrottled):
        await platform.create(InstanceSpec("000000000002", "a", {}, "i"), on_progress)


async def seeded(railway: Harness) -> tuple[dict[str, PlatformRef], object]:
    platform = railway.platform("shared", max_attempts=3)
    _, on_progress = recorder()
    ref = await platform.create(InstanceSpec("000000000001", "a", {}, "i"), on_progress)
    return {"000000000001": ref}, platform


async def test_a_429_storm_makes_status_many_raise_transient(railway: Harness) -> None:
    refs, platform = await seeded(railway)
    railway.fake.fail_next(10, status=429)
    with pytest.raises(TransientError):
        await platform.status_many(refs)  # type: ignore[attr-defined]
    assert railway.fake.rejected["429"] == 3


async def test_a_short_429_burst_is_absorbed_after_retry_after(railway: Harness) -> None:
    refs, platform = await seeded(railway)
    railway.fake.fail_next(2, status=429)
    snapshot = await platform.status_many(refs)  # type: ignore[attr-defined]
    assert snapshot.states["000000000001"].deploy_status is not None
    assert snapshot.api_calls == 3


async def test_a_burst_of_http_200_errors_makes_status_many_raise_transient(railway: Harness) -> None:
    refs, platform = await seeded(railway)
    railway.fake.fail_next(10)
    with pytest.raises(TransientError, match="Problem processing request"):
        await platform.status_many(refs)  # type: ignore[attr-defined]


async def test_bad_token_is_permanent_and_not_retried(railway: Harness) -> None:
    refs, _ = await seeded(railway)
    platform = railway.platform("shared", api_token="wrong-token-xyz")
    with pytest.raises(RailwayUnauthorized):
        await platform.status_many(refs)
    assert railway.fake.rejected["Not Authorized"] == 1


async def test_project_tokens_go_in_the_project_access_token_header(railway: Harness) -> None:
    refs, _ = await seeded(railway)
    railway.fake.settings.project_tokens = {"proj-token-123": railway.shared_project_id}
    platform = railway.platform("shared", api_token="proj-token-123", token_kind="project")
    snapshot = await platform.status_many(refs)
    assert snapshot.api_calls == 1
    wrong = railway.platform("shared", api_token="proj-token-999", token_kind="project")
    with pytest.raises(PermanentError, match="Project token not found"):
        await wrong.status_many(refs)


def test_messages_map_to_error_types() -> None:
    def kind(message: str) -> str:
        return type(error_from_graphql("Op", [{"message": message}])).__name__

    assert kind("You are creating projects too quickly") == "RailwayThrottled"
    assert kind("creating volumes too quickly") == "RailwayThrottled"
    assert kind("Not Authorized") == "RailwayUnauthorized"
    assert kind("Project token not found") == "RailwayUnauthorized"
    assert kind("ServiceInstance not found") == "RailwayNotFound"
    assert kind("Problem processing request") == "RailwayRetryable"
    assert kind("Failed to create service domain") == "RailwayRetryable"
    assert kind("Service agent-1 already exists in this project") == "RailwayRejected"


async def test_rate_limiter_holds_requests_to_the_per_second_limit() -> None:
    limiter = RateLimiter(per_second=5, per_hour=1000)
    started = time.monotonic()
    for _ in range(10):
        await limiter.acquire()
    assert time.monotonic() - started >= 0.95


async def test_rate_limiter_holds_requests_to_the_per_hour_limit() -> None:
    # The hour shrunk to 0.5 s; four greedy senders for two of those hours.
    hour = 0.5
    limiter = RateLimiter(per_second=10_000, per_hour=20, hour_seconds=hour)
    sent: list[float] = []
    end = time.monotonic() + 2 * hour

    async def sender() -> None:
        while time.monotonic() < end:
            await limiter.acquire()
            sent.append(time.monotonic())

    await asyncio.gather(*(sender() for _ in range(4)))
    in_time = sorted(t for t in sent if t < end)
    # No rolling hour sees more than the budget...
    assert max(sum(1 for t in in_time if start <= t < start + hour) for start in in_time) <= 20
    # ...and an exhausted budget slows sends to its pace instead of stopping them for an hour.
    assert len(in_time) >= 30


async def test_token_pool_paces_creations_per_token() -> None:
    pool = TokenPool(["a", "b"], {"project": 0.2, "volume": 0.0})
    started = time.monotonic()
    tokens = []
    for _ in range(4):
        token = await pool.for_create("project")
        pool.release(token, "project")
        tokens.append(token)
    assert sorted(tokens) == ["a", "a", "b", "b"]
    assert 0.18 <= time.monotonic() - started < 0.5
