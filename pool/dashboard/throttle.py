"""The dashboard login's throttle: it slows guessing and never locks out an operator who knows the secret.

State lives in the pool database (`login_throttle`), so every pool process and replica shares it
(a per-process count let a guesser spread attempts over processes). It keys on *lanes*, never on the
client address: behind the platform's proxy every user shares a few addresses, so one guesser used
to block every login (issue 11, finding 7).

- A browser that logged in before carries a signed device cookie and has a lane of its own
  (`device:<id>`): nobody else can fail in it, so its operator waits only for their own mistakes.
- Every other browser shares the account's lane (`account`: the dashboard has one account).

In a lane, after n failures in a row, attempts take turns `min(step * 2**(n-1), max_delay)` apart
(at least `step`, so parallel attempts queue too). An attempt waits for its turn (a bounded sleep,
server side) and is then checked, so a right secret gets in after the turns queued before it. A
success clears its lane's failures; failures older than FAILURE_MEMORY are forgotten. An attempt
whose turn is more than QUEUE_DEPTH turns away is refused unchecked (429, with when to retry): that
caps how fast a flood of parallel guesses is checked, in each lane, across every process. So in its
own lane a right secret waits at most QUEUE_DEPTH × max_delay, and only its own failures make it wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

ACCOUNT_LANE = "account"
FAILURE_MEMORY = timedelta(minutes=15)
DEVICE_MEMORY = timedelta(days=30)
QUEUE_DEPTH = 3
# The smallest spacing is max_delay / 2**DOUBLINGS; five failures in a row reach max_delay.
DOUBLINGS = 4

# The no-op update locks the lane's row (made on first use) and returns it as it is.
_LANE = text(
    """
    INSERT INTO login_throttle AS t (key) VALUES (:key)
    ON CONFLICT (key) DO UPDATE SET key = t.key
    RETURNING CASE WHEN t.updated_at < now() - make_interval(secs => :memory) THEN 0
                   ELSE t.failures END AS failures,
              extract(epoch FROM greatest(t.next_attempt_at, now()) - now())::float AS wait
    """
)
_TAKE_TURN = text(
    """
    UPDATE login_throttle
    SET failures = :failures, next_attempt_at = now() + make_interval(secs => :next), updated_at = now()
    WHERE key = :key
    """
)
_FAILED = text(
    """
    UPDATE login_throttle
    SET failures = failures + 1, updated_at = now(),
        next_attempt_at = greatest(
            next_attempt_at,
            now() + make_interval(secs => least(:step * power(2, least(failures, 30)), :max_delay))
        )
    WHERE key = :key
    """
)
_SUCCEEDED = text("UPDATE login_throttle SET failures = 0, updated_at = now() WHERE key = :key")
_FORGET_DEVICES = text(
    "DELETE FROM login_throttle WHERE key <> :account AND updated_at < now() - make_interval(secs => :memory)"
)


@dataclass(frozen=True)
class LoginOutcome:
    ok: bool
    # Set when the attempt was refused unchecked: seconds until its lane has room again.
    retry_after: int | None = None


def spacing(failures: int, max_delay: float) -> float:
    step = max_delay / 2**DOUBLINGS
    return float(min(step * 2 ** max(failures - 1, 0), max_delay))


async def attempt_login(
    sessionmaker: async_sessionmaker[AsyncSession], *, lane: str, max_delay: float, check: Callable[[], bool]
) -> LoginOutcome:
    """Wait for this attempt's turn in `lane`, then `check` the secret and record the outcome."""
    async with sessionmaker() as session, session.begin():
        row = (await session.execute(_LANE, {"key": lane, "memory": FAILURE_MEMORY.total_seconds()})).one()
        failures, wait = int(row.failures), float(row.wait)
        turn = spacing(failures, max_delay)
        if wait > QUEUE_DEPTH * turn:
            return LoginOutcome(ok=False, retry_after=max(1, round(wait - QUEUE_DEPTH * turn)))
        next_turn = wait + turn
        await session.execute(_TAKE_TURN, {"key": lane, "failures": failures, "next": next_turn})
    # No connection is held while waiting; the wait is at most QUEUE_DEPTH turns of max_delay.
    if wait > 0:
        await asyncio.sleep(wait)
    ok = check()
    async with sessionmaker() as session, session.begin():
        if ok:
            await session.execute(_SUCCEEDED, {"key": lane})
            await session.execute(
                _FORGET_DEVICES, {"account": ACCOUNT_LANE, "memory": DEVICE_MEMORY.total_seconds()}
            )
        else:
            step = max_delay / 2**DOUBLINGS
            await session.execute(_FAILED, {"key": lane, "step": step, "max_delay": max_delay})
    return LoginOutcome(ok=ok)
