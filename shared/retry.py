"""Retries for every remote we call: one `RetryPolicy` per remote, run by tenacity.

A policy is the whole rule for one remote, so the rule is written once and read in one place:
- `retry_on`: which failures may be tried again (the caller's predicate: only the remote's client
  knows which of its errors are safe to repeat, e.g. never a creation whose answer was lost);
- `attempts`: how many tries in all (None: as many as the deadline allows);
- the wait between tries: the remote's own `Retry-After` when its error carries one (capped at
  `max_retry_after_seconds`), else exponential backoff from `backoff_seconds` with jitter (so many
  clients failing together do not come back together), capped at `max_backoff_seconds`;
- `deadline_seconds`: no new try starts (and no wait begins) that would end past this budget.

An error carries a server's wait as a `retry_after` attribute (seconds); 0 means "again at once"
(e.g. a platform throttle answered per token: the next try goes out on another token).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    stop_never,
)

T = TypeVar("T")


def retry_after_seconds(response: httpx.Response) -> float | None:
    """A `Retry-After` header in seconds; None when absent or not a number of seconds."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def retry_after_of(error: BaseException | None) -> float | None:
    hint = getattr(error, "retry_after", None)
    return float(hint) if isinstance(hint, int | float) else None


@dataclass(frozen=True)
class RetryPolicy:
    """How one remote is retried."""

    name: str
    attempts: int | None = 3
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    max_retry_after_seconds: float = 30.0
    deadline_seconds: float | None = None

    def wait_seconds(self, attempt: int, error: BaseException | None) -> float:
        """The pause after failed try number `attempt` (1-based)."""
        hint = retry_after_of(error)
        if hint is not None:
            return min(hint, self.max_retry_after_seconds)
        ceiling = min(self.backoff_seconds * 2 ** min(attempt - 1, 60), self.max_backoff_seconds)
        # Jitter in [0.5, 1.5) of the exponential step: spread out, never far from the schedule.
        return float(ceiling * (0.5 + random.random()))

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        return self.wait_seconds(state.attempt_number, error)

    async def call(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        retry_on: Callable[[BaseException], bool],
        attempts: int | None = None,
    ) -> T:
        """Run `attempt` until it returns, raises something `retry_on` refuses, or the policy's
        attempts or deadline run out; the last error is re-raised as it was."""
        cap = attempts if attempts is not None else self.attempts
        stop = stop_after_attempt(cap) if cap is not None else stop_never
        deadline = stop_before_delay(self.deadline_seconds) if self.deadline_seconds else stop_never
        retrying = AsyncRetrying(
            stop=stop | deadline,
            wait=self._wait,
            retry=retry_if_exception(retry_on),
            reraise=True,
        )

        async def once() -> T:
            # tenacity awaits only coroutine functions; `attempt` may be a lambda returning a coroutine.
            return await attempt()

        return await retrying(once)
