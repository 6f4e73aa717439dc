"""Test helpers: databases cloned from migrated templates, and apps served over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from fastapi import FastAPI

from devtools.serve import serve_asgi
from shared.db import libpq_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


class DatabaseFactory:
    """Clones a fresh database per test from a template migrated once per session.

    A clone is a file copy inside PostgreSQL, much faster than running migrations each time,
    and it gives each test a database any number of connections and processes can share.
    """

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.prefix = f"t{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []

    async def _execute(self, sql: str) -> None:
        conn = await asyncpg.connect(libpq_url(self.admin_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create(self, name: str, *, template: str | None = None) -> str:
        database = f"{self.prefix}_{name}"
        # FILE_COPY copies the template's files instead of WAL-logging every page: ~10x faster here.
        suffix = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        await self._execute(f'CREATE DATABASE "{database}"{suffix}')
        self.created.append(database)
        return with_database(self.admin_url, database)

    async def clone(self, template_url: str, name: str) -> str:
        template = urlsplit(template_url).path.lstrip("/")
        return await self.create(f"{name}_{uuid.uuid4().hex[:8]}", template=template)

    async def drop(self, url: str) -> None:
        # Best effort: a clone left behind costs disk in a throwaway cluster, never a wrong result.
        database = urlsplit(url).path.lstrip("/")
        for _ in range(3):
            try:
                await self._execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                return
            except (asyncpg.PostgresError, OSError, asyncpg.exceptions.ConnectionDoesNotExistError):
                await asyncio.sleep(0.2)

    async def drop_all(self) -> None:
        for database in reversed(self.created):
            with contextlib.suppress(Exception):
                await self._execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def serve(app: FastAPI, port: int | None = None) -> contextlib.AbstractAsyncContextManager[str]:
    """Serve an ASGI app with uvicorn on a real loopback port, in this event loop."""
    return serve_asgi(app, port=port, lifespan="on", access_log=True)


async def until(check: Callable[[], Awaitable[Any]], *, timeout: float = 60.0) -> Any:
    """`check()`'s first truthy answer, polled every 0.2 s; fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"condition not met in {timeout}s"
        await asyncio.sleep(0.2)
