"""Serve an ASGI app on a real loopback port inside the running event loop: the fakes in the soak and
the benchmarks, the apps in tests that need real HTTP between them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from devtools.railway_fake.deploys import free_port


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, *, port: int | None = None, **options: Any) -> AsyncIterator[str]:
    """Yield the app's base URL once uvicorn accepts connections; `options` go to `uvicorn.Config`."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, **{"log_level": "warning", "access_log": False, **options}
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server exited before starting")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
