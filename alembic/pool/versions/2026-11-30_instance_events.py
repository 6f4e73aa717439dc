"""instance events: the per-instance event log (proxied calls of issue 16; grows with issue 14)

Revision ID: 6e1f0c2b7a16
Revises: 9e3b5d7f1a24
Create Date: 2026-11-30 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "6e1f0c2b7a16"
down_revision: str | None = "9e3b5d7f1a24"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instance_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("instance_id", sa.String(length=12), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column(
            "summary", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance_events")),
    )
    op.create_index("ix_instance_events_instance_at", "instance_events", ["instance_id", "at"])
    op.create_index("ix_instance_events_at", "instance_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_instance_events_at", table_name="instance_events")
    op.drop_index("ix_instance_events_instance_at", table_name="instance_events")
    op.drop_table("instance_events")
