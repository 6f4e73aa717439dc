"""`GET {url}/pool/health`, the instance contract's one unauthenticated call (DESIGN.md §4).

Both apps ask it: services for a whole fleet under one deadline (`services.status.probes`), the
pool for instances it is promoting (`pool.instance_client`). One function so both read an answer
the same way: healthy means 200 with `{"ready": true}`.

The caller brings the aiohttp session (its connection pool, and no `trust_env`: with it aiohttp
reads ~/.netrc and the proxy environment in a thread for every request, two thirds of services'
CPU at 10,000 probes).
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from shared.schemas import HealthProbe

# Contract answers are a few hundred bytes; read no more than this of a misbehaving instance.
MAX_BODY = 64 * 1024


class AnswerTooLarge(ValueError):
    pass


async def read_capped(response: aiohttp.ClientResponse, limit: int = MAX_BODY) -> bytes:
    """The whole body, or `AnswerTooLarge` past `limit` bytes. One `content.read(n)` is not enough:
    it returns what has arrived so far, so an answer sent in pieces would be cut short."""
    body = bytearray()
    while len(body) <= limit:
        chunk = await response.content.read(limit + 1 - len(body))
        if not chunk:
            return bytes(body)
        body += chunk
    raise AnswerTooLarge(f"answer larger than {limit} bytes")


async def probe_health(session: aiohttp.ClientSession, url: str, timeout: float) -> HealthProbe:
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    try:
        # The outer cap covers everything, including waiting for a pooled connection.
        async with (
            asyncio.timeout(timeout),
            session.get(f"{url.rstrip('/')}/pool/health", allow_redirects=False) as response,
        ):
            status, body = response.status, await read_capped(response)
    except TimeoutError:
        return HealthProbe(ok=False, error=f"timed out after {round(timeout, 3)}s", elapsed_ms=elapsed())
    except (aiohttp.ClientError, ValueError, OSError) as exc:
        # ValueError: aiohttp's InvalidURL for a malformed url in the ledger, or AnswerTooLarge.
        return HealthProbe(ok=False, error=type(exc).__name__, elapsed_ms=elapsed())
    ready: bool | None = None
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("ready"), bool):
            ready = parsed["ready"]
    except ValueError:
        pass
    return HealthProbe(
        ok=status == 200 and ready is True, status_code=status, ready=ready, elapsed_ms=elapsed()
    )
