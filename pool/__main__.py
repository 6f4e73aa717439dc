"""`python -m pool`: serve the pool with uvicorn.

uvicorn picks uvloop and httptools when installed (`uvicorn[standard]`, loop="auto", http="auto"):
on the claim path they cost a fraction of asyncio's loop and h11. With POOL_WORKERS > 1 uvicorn
runs that many processes on one socket, each building its app from the environment.
"""

import gc

import uvicorn
from fastapi import FastAPI

from pool.config import Settings
from pool.main import create_app
from shared.logging import configure_logging


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
