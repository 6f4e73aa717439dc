"""Concurrent calls of one kind run as one: the claim's group commit (issue 15).

A call that finds fewer than `in_flight` of its kind in flight runs alone, at once, so a lone
claim waits for nothing. Calls that arrive while `in_flight` are in flight wait for one of them to
end, then run together as one batch (`pool.claims.batches`: one statement over arrays), and the
next arrivals wait in turn.
Under a burst the batches grow by themselves to what arrives during one round trip, so 50 claims
cost a handful of statements instead of 50: fewer round trips, fewer commits, less of the pool's
and PostgreSQL's CPU per claim (bench/findings.md has the figures).

Each call still gets its own answer. A batch that fails with an error for which running alone is
safe (`alone_on`: the database refused the statement, so nothing of it was done) is retried one
call at a time, so one bad call cannot fail the calls it happened to travel with; any other error
(a dropped connection: whether it committed is unknown) reaches every call of the batch, as it
would have reached each alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(
        self,
        one: Callable[[T], Awaitable[R]],
        many: Callable[[list[T]], Awaitable[list[R]]],
        *,
        alone_on: tuple[type[BaseException], ...],
        in_flight: int = 1,
        max_batch: int = 100,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._one = one
        self._many = many
        self._alone_on = alone_on
        self._max_batch = max_batch
        self._on_batch = on_batch  # told each batch's size (the pool's metrics, the tests)
        self._max_in_flight = in_flight
        self._in_flight = 0
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, item: T) -> R:
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            try:
                return await self._one(item)
            finally:
                self._next()
        waiting: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, waiting))
        return await waiting

    def _next(self) -> None:
        """The call in flight ended: those that waited for it go now, together."""
        if not self._waiting:
            self._in_flight -= 1
            return
        batch = self._waiting[: self._max_batch]
        del self._waiting[: self._max_batch]
        task = asyncio.create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            if len(batch) == 1:
                await _settle(batch[0][1], self._one(batch[0][0]))
                return
            if self._on_batch is not None:
                self._on_batch(len(batch))
            try:
                results = await self._many([item for item, _ in batch])
            except self._alone_on:
                for item, waiting in batch:
                    await _settle(waiting, self._one(item))
                return
            except BaseException as exc:
                for _, waiting in batch:
                    _fail(waiting, exc)
                if not isinstance(exc, Exception):
                    raise
                return
            for (_, waiting), result in zip(batch, results, strict=True):
                if not waiting.done():
                    waiting.set_result(result)
        finally:
            self._next()


async def _settle(waiting: asyncio.Future[R], call: Awaitable[R]) -> None:
    """One call's answer, or its error, to the caller waiting for it (unless it stopped waiting)."""
    try:
        result = await call
    except BaseException as exc:
        _fail(waiting, exc)
        if not isinstance(exc, Exception):
            raise  # this task is being cancelled: the caller's wait is cancelled with it
        return
    if not waiting.done():
        waiting.set_result(result)


def _fail(waiting: asyncio.Future[R], exc: BaseException) -> None:
    if waiting.done():
        return
    if isinstance(exc, Exception):
        waiting.set_exception(exc)
    else:
        waiting.cancel()
