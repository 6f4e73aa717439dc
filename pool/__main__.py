"""`python -m pool`: serve the pool with uvicorn.

uvicorn picks uvloop and httptools when installed (`uvicorn[standard]`, loop="auto", http="auto"):
on the claim path they cost a fraction of asyncio's loop and h11. With POOL_WORKERS > 1 uvicorn
runs that many processes on one socket, each building its app from the environment.

httpx imports its command-line tool (`httpx._main`: rich, pygments, click) whenever those are
installed, and they are (`poolctl` uses rich): ~5 MB of RSS in a server that never runs it. The
server tells httpx that module is absent, which httpx handles (its `main` then says so). The same
for two more the server never uses, ~3 MB of RSS between them: watchfiles, which uvicorn imports
for `--reload` (without it uvicorn falls back to its own polling reloader), and `pydantic.v1`, which
FastAPI imports only to refuse v1 models (without it, nothing is a v1 model).
"""

import gc
import sys

sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
sys.modules.setdefault("watchfiles", None)  # type: ignore[arg-type]
sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]

import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from pool.config import Settings  # noqa: E402
from pool.main import create_app  # noqa: E402
from shared.logging import configure_logging  # noqa: E402


def create_worker_app() -> FastAPI:
    """The app of one worker process (uvicorn imports this by name when POOL_WORKERS > 1)."""
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    several = settings.workers > 1
    app: FastAPI | str = "pool.__main__:create_worker_app" if several else create_app(settings)
    # What the imports and the app built lives as long as the process: out of the collector's way
    # (its full passes walked ~100 MB of it while claims ran: ~3% of the pool's CPU per claim).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        factory=several,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        # Access lines off: the app logs what matters about a claim, one line each.
        access_log=False,
    )


if __name__ == "__main__":
    main()
