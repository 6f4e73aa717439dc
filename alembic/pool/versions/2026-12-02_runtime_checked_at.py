"""instances.runtime_checked_at: the idle runtime rotation's stamp, kept in the row rather than in
the leader's memory (pool.tick.runtimes)

Revision ID: 8d2f5b7a3c41
Revises: 4b7e2c9d1f38
Create Date: 2026-12-02 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "8d2f5b7a3c41"
down_revision: str | None = "4b7e2c9d1f38"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("instances", sa.Column("runtime_checked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("instances", "runtime_checked_at")
