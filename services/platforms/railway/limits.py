"""Client-side pacing: a sliding-window rate limiter and a pool of tokens with creation cooldowns.

Railway allows ~10,000 requests/hour and 10-50/s per account, and about one project (and one
volume) per 30 s per token. Pacing before sending is cheaper than collecting rejections: every
rejected call still counts against the hourly budget.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

CreateKind = Literal["project", "volume"]
# How often a creation waiting for a busy token looks again.
_POLL_SECONDS = 0.02


class RateLimiter:
    """At most `per_second` requests in any 1 s window and `per_hour` in any 3600 s window."""

    def __init__(self, per_second: float, per_hour: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._windows = [(1.0, max(1, int(per_second))), (3600.0, per_hour)]
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._clock = clock

    def _wait_needed(self, now: float) -> float:
        while self._sent and now - self._sent[0] >= 3600.0:
            self._sent.popleft()
        wait = 0.0
        for window, limit in self._windows:
            if len(self._sent) < limit:
                continue
            # The limit-th most recent send must leave the window before another may go.
            oldest_in_window = self._sent[-limit]
            wait = max(wait, oldest_in_window + window - now)
        return wait

    async def acquire(self) -> None:
        async with self._lock:
            while (wait := self._wait_needed(self._clock())) > 0:
                # Short naps: a long wait is re-checked, so a clock jump (tests, suspend) is noticed.
                await asyncio.sleep(min(wait, 0.5))
            self._sent.append(self._clock())


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
