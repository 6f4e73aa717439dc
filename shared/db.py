"""Database plumbing both apps share: engines, sessions, and the naming convention."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


# The one place database URLs change form: settings may carry either form (operators and hosts
# write `postgresql://` or `postgres://`, SQLAlchemy wants its driver named).
_POSTGRES_SCHEMES = ("postgresql+asyncpg://", "postgresql://", "postgres://")


def _with_scheme(url: str, scheme: str) -> str:
    for prefix in _POSTGRES_SCHEMES:
        if url.startswith(prefix):
            return scheme + url[len(prefix) :]
    return url


def async_url(url: str) -> str:
    """The URL for SQLAlchemy's engine, on the asyncpg driver."""
    return _with_scheme(url, "postgresql+asyncpg://")


def libpq_url(url: str) -> str:
    """The URL for asyncpg itself (`asyncpg.connect`, `asyncpg.create_pool`), which takes libpq's form."""
    return _with_scheme(url, "postgresql://")


def make_engine(url: str, *, pool_size: int = 10, **kwargs: Any) -> AsyncEngine:
    # pool_pre_ping lets the apps survive a dropped database connection without a restart.
    return create_async_engine(
        async_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **kwargs
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: commit on success, roll back on error. Services never commit."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session)]
