"""Direct calls from the pool to instances, through the one `InstanceClient`: `/pool/health` (no
auth) and `/convos/status` (the instance's own gateway token), each within the tick's probe
timeout. No platform call, so they are cheap enough to repeat. A failure of either is an answer
(not healthy, no runtime), never an exception."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from pool.status import Runtime
from pool.tick.context import TickContext
from shared.errors import UpstreamError

T = TypeVar("T")
R = TypeVar("R")


async def healthy(ctx: TickContext, url: str) -> bool:
    probe = await ctx.instances.health(url, timeout=ctx.settings.probe_timeout_seconds)
    return probe.ok


async def runtime_status(ctx: TickContext, url: str, token_enc: str | None) -> Runtime | None:
    if token_enc is None:
        return None
    try:
        token = ctx.box.decrypt(token_enc)
        answer = await ctx.instances.status(url, token, timeout=ctx.settings.probe_timeout_seconds)
    except (UpstreamError, ValueError):  # ValueError: a token that does not decrypt
        return None
    return Runtime(conversation_id=answer.conversation_id, clean=answer.clean, pending=answer.pending)


async def bounded(items: Iterable[T], limit: int, call: Callable[[T], Awaitable[R]]) -> list[R]:
    gate = asyncio.Semaphore(limit)

    async def one(item: T) -> R:
        async with gate:
            return await call(item)

    return list(await asyncio.gather(*(one(item) for item in items)))
