"""The coalescer on its own: who runs alone, who waits and goes in a batch, and who gets which
answer or error (`pool.claims.coalesce`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from pool.claims.coalesce import Coalescer


class Refused(Exception):
    """What running alone recovers from (the database refused the whole batch)."""


class Dropped(Exception):
    """What it does not (the connection went: nobody knows what was done)."""


@dataclass
class Calls:
    """A stand-in statement: each call (or batch) waits for `release`, and records what it ran."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    alone: list[int] = field(default_factory=list)
    batches: list[list[int]] = field(default_factory=list)
    refuse_batches: bool = False
    drop_batches: bool = False
    refuse_alone: set[int] = field(default_factory=set)
    sizes: list[int] = field(default_factory=list)  # what the coalescer reports of each batch

    async def one(self, item: int) -> int:
        self.alone.append(item)
        await self.release.wait()
        if item in self.refuse_alone:
            raise Refused(str(item))
        return item * 10

    async def many(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await self.release.wait()
        if self.refuse_batches:
            raise Refused("batch")
        if self.drop_batches:
            raise Dropped("connection lost")
        return [item * 10 for item in items]


def coalescer(calls: Calls, in_flight: int = 1) -> Coalescer[int, int]:
    return Coalescer(
        calls.one, calls.many, alone_on=(Refused,), in_flight=in_flight, on_batch=calls.sizes.append
    )


async def started(count: int, run: Coalescer[int, int]) -> list[asyncio.Task[int]]:
    tasks = [asyncio.create_task(run(n)) for n in range(count)]
    await asyncio.sleep(0)  # every call has arrived before any statement answers
    return tasks


async def test_a_lone_call_runs_at_once_and_alone() -> None:
    calls = Calls()
    calls.release.set()
    assert await coalescer(calls)(7) == 70
    assert calls.alone == [7] and calls.batches == []


async def test_calls_that_arrive_while_others_are_in_flight_go_together_each_with_its_answer() -> None:
    calls = Calls()
    run = coalescer(calls, in_flight=2)
    tasks = await started(6, run)
    # Two run alone; the other four wait for one of them to end.
    assert calls.alone == [0, 1] and calls.batches == []
    calls.release.set()
    assert await asyncio.gather(*tasks) == [0, 10, 20, 30, 40, 50]
    assert calls.batches == [[2, 3, 4, 5]]
    assert calls.sizes == [4]


async def test_a_refused_batch_is_run_one_call_at_a_time_so_one_bad_call_fails_alone() -> None:
    calls = Calls(refuse_batches=True, refuse_alone={3})
    run = coalescer(calls)
    tasks = await started(5, run)
    calls.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[:3] == [0, 10, 20] and results[4] == 40
    assert isinstance(results[3], Refused)
    assert calls.batches == [[1, 2, 3, 4]]
    assert calls.alone == [0, 1, 2, 3, 4]


async def test_an_error_that_may_have_committed_reaches_every_call_of_the_batch_and_is_not_retried() -> None:
    calls = Calls(drop_batches=True)
    tasks = await started(4, coalescer(calls))
    calls.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == 0
    assert all(isinstance(r, Dropped) for r in results[1:])
    assert calls.alone == [0]  # nothing of the batch ran again


async def test_a_caller_that_stops_waiting_leaves_the_others_their_answers() -> None:
    calls = Calls()
    tasks = await started(4, coalescer(calls))
    tasks[2].cancel()
    calls.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == 0 and results[1] == 10 and results[3] == 30
    assert isinstance(results[2], asyncio.CancelledError)


async def test_after_a_burst_the_next_lone_call_runs_alone_again() -> None:
    calls = Calls()
    run = coalescer(calls)
    tasks = await started(3, run)
    calls.release.set()
    await asyncio.gather(*tasks)
    assert await run(9) == 90
    assert calls.alone == [0, 9] and calls.batches == [[1, 2]]


@pytest.mark.parametrize("size", [1, 2])
async def test_batches_never_exceed_their_size(size: int) -> None:
    calls = Calls()
    run = Coalescer(calls.one, calls.many, alone_on=(Refused,), max_batch=size)
    tasks = await started(5, run)
    calls.release.set()
    assert await asyncio.gather(*tasks) == [0, 10, 20, 30, 40]
    assert all(len(batch) <= size for batch in calls.batches)
    assert sorted([*calls.alone, *(i for b in calls.batches for i in b)]) == [0, 1, 2, 3, 4]
