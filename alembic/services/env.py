"""Migrations of the services database. Imports only services's metadata."""

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import context
from services.models import Base
from shared.db import async_url

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        from services.config import Settings

        url = Settings().database_url
    if not url:
        raise SystemExit("no database URL: set SERVICES_DATABASE_URL or pass -x url=...")
    return async_url(url)


def run_migrations(connection) -> None:  # type: ignore[no-untyped-def]
    # Replicas starting together each run `upgrade head`: one migrates, the others wait and find
    # nothing left to do.
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('alembic-services'))"))
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
    # The lock began the transaction, so Alembic left committing to us; this also frees the lock.
    connection.commit()


async def run_online() -> None:
    engine = create_async_engine(database_url())
    async with engine.connect() as connection:
        await connection.run_sync(run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_online())
