"""async create

The create of an instance becomes asynchronous (DESIGN.md §3): the request records the intent
(state `queued`) and services' own workers make it. What a worker needs that the request carried
is kept on the row until the create is done: the tools asked for (`create_tools`, null: the
default tools) and, encrypted with SERVICES_ENCRYPTION_KEY, the instance's gateway token and the
request's env (`create_secret`, cleared when the create ends). A worker holds a row by a lease
(`lease_until`, the database's clock, renewed while it works); a `creating` row whose lease ran
out belongs to a worker that died and is taken again. `create_attempts` bounds those retakes.

No data moves: existing rows are finished creates (or left by a crash, which destroy finishes).

Revision ID: c4a9e2f17b36
Revises: 8b1f4c6d2e57
Create Date: 2026-11-24 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c4a9e2f17b36"
down_revision: str | None = "8b1f4c6d2e57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("instance_infra", sa.Column("create_tools", postgresql.JSONB(), nullable=True))
    op.add_column("instance_infra", sa.Column("create_secret", sa.Text(), nullable=True))
    op.add_column("instance_infra", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "instance_infra",
        sa.Column("create_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    # The workers' queue: queued rows oldest first, and creating rows by lease.
    op.create_index(
        "ix_instance_infra_create_queue",
        "instance_infra",
        ["created_at"],
        postgresql_where=sa.text("state IN ('queued', 'creating')"),
    )


def downgrade() -> None:
    op.drop_index("ix_instance_infra_create_queue", table_name="instance_infra")
    # A queued create has nothing made yet; an older services knows no such state.
    op.execute("DELETE FROM instance_infra WHERE state = 'queued'")
    op.drop_column("instance_infra", "create_attempts")
    op.drop_column("instance_infra", "lease_until")
    op.drop_column("instance_infra", "create_secret")
    op.drop_column("instance_infra", "create_tools")
