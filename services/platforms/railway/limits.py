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
                await asyncio.sleep(wait)
            self._sent.append(self._clock())


@dataclass
class _Token:
    value: str
    next_create: dict[CreateKind, float] = field(default_factory=lambda: {"project": 0.0, "volume": 0.0})


class TokenPool:
    """Round-robin for ordinary calls; creations reserve the token whose cooldown ends first."""

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
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._tokens)

    def any(self) -> str:
        token = self._tokens[self._next % len(self._tokens)]
        self._next += 1
        return token.value

    async def for_create(self, kind: CreateKind) -> str:
        """A token allowed to create `kind` now; waits (pacing) when every token is cooling down."""
        async with self._lock:
            now = self._clock()
            token = min(self._tokens, key=lambda t: t.next_create[kind])
            slot = max(now, token.next_create[kind])
            token.next_create[kind] = slot + self._cooldowns[kind]
        # Sleep outside the lock: the slot is already reserved, so others can take the next ones.
        if slot > now:
            await asyncio.sleep(slot - now)
        return token.value

    def penalize(self, value: str, kind: CreateKind) -> None:
        """Railway said "too quickly" anyway: push that token's next creation a full cooldown out."""
        for token in self._tokens:
            if token.value == value:
                token.next_create[kind] = max(token.next_create[kind], self._clock() + self._cooldowns[kind])
