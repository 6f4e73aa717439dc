"""The pool's tables (filled in by the pool's own migration)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from shared.db import make_metadata


class Base(DeclarativeBase):
    metadata = make_metadata()
