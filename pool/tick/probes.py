"""Direct calls from the pool to instances: `/pool/health` (no auth) and `/convos/status`
(the instance's own gateway token). No platform call, so they are cheap enough to repeat."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import httpx

from pool.status import Runtime
from pool.tick.context import TickContext
from shared.errors import UpstreamError

T = TypeVar("T")
R = TypeVar("R")


async def healthy(ctx: TickContext, url: str) -> bool:
    try:
        response = await ctx.http.get(
            url.rstrip("/") + "/pool/health", timeout=ctx.settings.probe_timeout_seconds
        )
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    try:
        return response.json().get("ready") is True
    except ValueError:
        return False


async def runtime_status(ctx: TickContext, url: str, token_enc: str | None) -> Runtime | None:
    if token_enc is None:
        return None
    try:
        token = ctx.box.decrypt(token_enc)
        answer = await asyncio.wait_for(
            ctx.instances.status(url, token), timeout=ctx.settings.probe_timeout_seconds
        )
    except (UpstreamError, ValueError, TimeoutError):
        return None
    return Runtime(conversation_id=answer.conversation_id, clean=answer.clean, pending=answer.pending)


async def bounded(items: Iterable[T], limit: int, call: Callable[[T], Awaitable[R]]) -> list[R]:
    gate = asyncio.Semaphore(limit)

    async def one(item: T) -> R:
        async with gate:
            return await call(item)

    return list(await asyncio.gather(*(one(item) for item in items)))
