"""`python -m bench.floor`: the floor of a claim on this machine, to measure the pool against.

Issue 15 defines a claim's floor as one round trip to PostgreSQL and one call to the instance;
whatever the pool adds on top is its overhead. This server does exactly that and nothing else: a raw
ASGI app on the pool's server stack (uvicorn, uvloop, httptools), one statement that takes the oldest
idle row and marks it claimed, one aiohttp call to the instance's `/pool/provision`, and the
instance id back. No claim row, no validation, no auth, no logging, no metrics: not a pool, a ruler.

With FLOOR_STATEMENTS=2 it is the floor of the pool's own design instead: DESIGN.md §14 has a claim
record `claiming` before the provision (so a crash cannot hand the instance out twice) and `claimed`
before the answer (so a crash cannot lose a claim its caller holds): two round trips, the second
after the instance answered. Between the two floors lies the price of that durability; between the
second and the pool, the price of the pool's code.

`bench/claims.py` runs the same cases against both floors and the pool alternately, on the same
rows, fleet and load generator, so the floors' own overhead is what the machine costs (process
wake-ups, loopback, PostgreSQL) whatever the code.

Settings from the environment: FLOOR_DATABASE_URL, FLOOR_PORT, FLOOR_STATEMENTS (1 or 2).
"""

from __future__ import annotations

import json
import os
from typing import Any

import aiohttp
import asyncpg
import uvicorn

from bench.fleet import DEFAULT_SEED, token_for

TAKE_OLDEST_IDLE = """
UPDATE instances SET status = 'claimed', claimed_at = now()
 WHERE id = (SELECT id FROM instances WHERE status = 'idle'
              ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, url
"""
TAKE_OLDEST_IDLE_CLAIMING = """
UPDATE instances SET status = 'claiming'
 WHERE id = (SELECT id FROM instances WHERE status = 'idle'
              ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, url
"""
MARK_CLAIMED = "UPDATE instances SET status = 'claimed', claimed_at = now() WHERE id = $1"
Scope = dict[str, Any]


class Floor:
    def __init__(self, database_url: str, statements: int) -> None:
        if statements not in (1, 2):
            raise ValueError("FLOOR_STATEMENTS must be 1 or 2")
        self.database_url = database_url
        self.statements = statements
        self.db: asyncpg.Pool | None = None
        self.http: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["path"] == "/api/pool/claim" and scope["method"] == "POST":
            await self._claim(receive, send)
        else:
            await _answer(send, 200 if scope["path"] == "/healthz" else 404, {"ok": True})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.db = await asyncpg.create_pool(self.database_url, min_size=10, max_size=10)
                self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.http is not None:
                    await self.http.close()
                if self.db is not None:
                    await self.db.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _claim(self, receive: Any, send: Any) -> None:
        assert self.db is not None and self.http is not None
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        two = self.statements == 2
        row = await self.db.fetchrow(TAKE_OLDEST_IDLE_CLAIMING if two else TAKE_OLDEST_IDLE)
        if row is None:
            await _answer(send, 503, {"error": "NoIdleInstance"})
            return
        headers = {"Authorization": f"Bearer {token_for(DEFAULT_SEED, row['id'])}"}
        headers["Content-Type"] = "application/json"
        async with self.http.post(f"{row['url']}/pool/provision", data=body, headers=headers) as response:
            await response.read()
        if two:
            await self.db.execute(MARK_CLAIMED, row["id"])
        await _answer(send, 200, {"instanceId": row["id"]})


async def _answer(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def main() -> None:
    app = Floor(os.environ["FLOOR_DATABASE_URL"], int(os.environ.get("FLOOR_STATEMENTS", "1")))
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ["FLOOR_PORT"]), log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
