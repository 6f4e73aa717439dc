"""tick_state platforms: the latest view of services' platforms, recorded by the tick; instances.platform

Services places instances on several platforms (DESIGN.md §9); the tick reads `GET /platforms`
and keeps the answer here, so the status API, the dashboard and `poolctl status` show it from
the pool's database without calling services per request. Each instance's platform, as the status
batch reports it, lets the queue's ETA use that platform's refill time. No data moves.

Revision ID: 9e3b5d7f1a24
Revises: 7d3b9a1c5e20
Create Date: 2026-11-30 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "9e3b5d7f1a24"
down_revision: str | None = "7d3b9a1c5e20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tick_state", sa.Column("platforms", postgresql.JSONB(), nullable=True))
    op.add_column("tick_state", sa.Column("platforms_observed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("instances", sa.Column("platform", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("instances", "platform")
    op.drop_column("tick_state", "platforms_observed_at")
    op.drop_column("tick_state", "platforms")
