"""Client-side pacing: a rate limiter (aiolimiter's leaky buckets) and a pool of tokens with
creation cooldowns.

Railway allows ~10,000 requests/hour and 10-50/s per account, and about one project (and one
volume) per 30 s per token. Pacing before sending is cheaper than collecting rejections: every
rejected call still counts against the hourly budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from aiolimiter import AsyncLimiter

if TYPE_CHECKING:
    from services.platforms.railway.settings import RailwaySettings

CreateKind = Literal["project", "volume"]
# How often a creation waiting for a busy token looks again.
_POLL_SECONDS = 0.02
# Share of the hourly budget that may go out at once (a tick's pages, a refill's creates).
_HOURLY_BURST = 0.1


class RateLimiter:
    """Requests spaced at most `per_second` a second, and never more than `per_hour` in any
    `hour_seconds` (3600; tests shrink it).

    A leaky bucket lets its capacity through at once and then drips at its rate, so any window
    may see capacity + rate × window. Hence the hour's bucket holds a tenth of the budget and
    drips the other nine tenths over the hour: a burst still goes at once, no rolling hour passes
    `per_hour`, and a client over budget slows to the budget's pace instead of stopping until
    the window has passed. The second's bucket holds one request: sends are spaced 1/per_second.
    """

    def __init__(self, per_second: float, per_hour: int, *, hour_seconds: float = 3600.0) -> None:
        burst = max(1.0, per_hour * _HOURLY_BURST)
        drip_per_second = max(per_hour - burst, 1.0) / hour_seconds
        self._hour = AsyncLimiter(burst, burst / drip_per_second)
        self._second = AsyncLimiter(1, 1 / per_second)

    async def acquire(self) -> None:
        await self._hour.acquire()
        await self._second.acquire()


@dataclass
class _Token:
    value: str
    next_create: dict[CreateKind, float] = field(default_factory=lambda: {"project": 0.0, "volume": 0.0})
    # Kinds this token is creating right now; its cooldown starts when that call returns.
    busy: set[CreateKind] = field(default_factory=set)


class TokenPool:
    """Round-robin for ordinary calls; a creation takes the token whose cooldown ended first.

    A token creates one thing of a kind at a time, and its cooldown runs from the moment the
    previous creation returned. Counting from when we sent would let network jitter bring two
    creations closer together at Railway than the cooldown, and Railway would refuse one.
    """

    def __init__(
        self,
        tokens: list[str],
        cooldowns: dict[CreateKind, float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not tokens:
            raise ValueError("the token pool needs at least one token")
        self._tokens = [_Token(value) for value in tokens]
        self._cooldowns = cooldowns
        self._clock = clock
        self._next = 0

    def __len__(self) -> int:
        return len(self._tokens)

    def any(self) -> str:
        token = self._tokens[self._next % len(self._tokens)]
        self._next += 1
        return token.value

    async def for_create(self, kind: CreateKind) -> str:
        """A token allowed to create `kind` now; waits (pacing) while every token is cooling down.
        The caller must `release` it when the creation call has returned."""
        while True:
            now = self._clock()
            ready = [token for token in self._tokens if kind not in token.busy]
            wait = _POLL_SECONDS
            if ready:
                token = min(ready, key=lambda t: t.next_create[kind])
                if token.next_create[kind] <= now:
                    # No await between the check and this mark, so no other task can take it.
                    token.busy.add(kind)
                    return token.value
                wait = min(wait, token.next_create[kind] - now)
            await asyncio.sleep(wait)

    def release(self, value: str, kind: CreateKind) -> None:
        """The creation returned (made something, or was told "too quickly"): start the cooldown."""
        for token in self._tokens:
            if token.value == value:
                token.busy.discard(kind)
                token.next_create[kind] = max(token.next_create[kind], self._clock() + self._cooldowns[kind])


@dataclass
class Budget:
    """What the account's limits allow, as this process paces it: the request rate and the tokens
    (with their creation cooldowns)."""

    limiter: RateLimiter
    tokens: TokenPool


def shared_budget(shared: dict[Any, Any], settings: RailwaySettings) -> Budget:
    """One budget per API and token set within an app: Railway counts requests per account and
    cooldowns per token, so two platforms on the same tokens (a shared project and project per
    instance) spend one budget. The first platform's rates set it; a later one asking for lower
    rates on the same tokens is refused rather than silently given the higher ones."""
    key = ("railway", settings.api_url, tuple(sorted(settings.tokens)))
    wanted = (settings.requests_per_second, settings.requests_per_hour)
    found = shared.get(key)
    if found is not None:
        budget, rates = found
        if rates != wanted:
            raise ValueError(
                "two railway platforms on the same tokens share one rate budget, so they must state the "
                f"same requests_per_second and requests_per_hour (got {rates} and {wanted})"
            )
        return cast(Budget, budget)
    budget = Budget(
        RateLimiter(settings.requests_per_second, settings.requests_per_hour),
        TokenPool(
            settings.tokens,
            {
                "project": settings.project_create_cooldown_seconds,
                "volume": settings.volume_create_cooldown_seconds,
            },
        ),
    )
    shared[key] = (budget, wanted)
    return budget
