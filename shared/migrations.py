"""Run an app's Alembic tree programmatically (tests, `make up`, the prestart step)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.config import Config

from alembic import command

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(app: str, url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"), ini_section=app)
    config.attributes["url"] = url
    return config


def upgrade(app: str, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(app, url), revision)


async def upgrade_async(app: str, url: str, revision: str = "head") -> None:
    # env.py drives its own event loop, so run it off the caller's loop.
    await asyncio.to_thread(upgrade, app, url, revision)
