"""shared.retry: one policy per remote, run by tenacity."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest

from shared.retry import RetryPolicy


class Flaky(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("flaky")
        self.retry_after = retry_after


class Broken(Exception):
    pass


def failing(
    errors: list[BaseException], result: str = "ok"
) -> tuple[list[float], Callable[[], Awaitable[str]]]:
    """An attempt that raises `errors` in turn, then returns `result`; records when it ran."""
    starts: list[float] = []

    async def attempt() -> str:
        starts.append(time.monotonic())
        if errors:
            raise errors.pop(0)
        return result

    return starts, attempt


def flaky_only(error: BaseException) -> bool:
    return isinstance(error, Flaky)


async def test_retries_what_the_policy_accepts_until_it_succeeds() -> None:
    starts, attempt = failing([Flaky(), Flaky()])
    policy = RetryPolicy("test", attempts=3, backoff_seconds=0.01)
    assert await policy.call(attempt, retry_on=flaky_only) == "ok"
    assert len(starts) == 3


async def test_the_last_error_is_raised_as_it_was_once_attempts_run_out() -> None:
    starts, attempt = failing([Flaky(), Flaky(), Flaky()])
    policy = RetryPolicy("test", attempts=2, backoff_seconds=0.01)
    with pytest.raises(Flaky):
        await policy.call(attempt, retry_on=flaky_only)
    assert len(starts) == 2


async def test_an_error_the_policy_refuses_is_raised_at_once() -> None:
    starts, attempt = failing([Broken()])
    with pytest.raises(Broken):
        await RetryPolicy("test", attempts=5).call(attempt, retry_on=flaky_only)
    assert len(starts) == 1


async def test_retry_after_is_honoured_and_capped() -> None:
    starts, attempt = failing([Flaky(retry_after=0.3), Flaky(retry_after=60)])
    policy = RetryPolicy("test", attempts=3, backoff_seconds=5.0, max_retry_after_seconds=0.2)
    await policy.call(attempt, retry_on=flaky_only)
    first, second = starts[1] - starts[0], starts[2] - starts[1]
    # The server's wait replaces the 5 s backoff; both are held to the 0.2 s cap.
    assert 0.18 <= first < 1.0 and 0.18 <= second < 1.0


async def test_a_retry_after_of_zero_means_again_at_once() -> None:
    starts, attempt = failing([Flaky(retry_after=0)])
    await RetryPolicy("test", attempts=2, backoff_seconds=5.0).call(attempt, retry_on=flaky_only)
    assert starts[1] - starts[0] < 0.5


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    policy = RetryPolicy("test", backoff_seconds=1.0, max_backoff_seconds=3.0)
    for _ in range(50):
        assert 0.5 <= policy.wait_seconds(1, None) < 1.5
        assert 1.0 <= policy.wait_seconds(2, None) < 3.0
        assert 1.5 <= policy.wait_seconds(5, None) < 4.5


async def test_no_try_starts_that_would_end_past_the_deadline() -> None:
    starts, attempt = failing([Flaky(retry_after=0.2)] * 10)
    policy = RetryPolicy("test", attempts=10, deadline_seconds=0.5)
    with pytest.raises(Flaky):
        await policy.call(attempt, retry_on=flaky_only)
    assert starts[-1] - starts[0] < 0.5
    assert 2 <= len(starts) <= 3


async def test_an_attempt_may_be_a_lambda_returning_a_coroutine() -> None:
    async def answer() -> int:
        return 42

    assert await RetryPolicy("test").call(lambda: answer(), retry_on=flaky_only) == 42
