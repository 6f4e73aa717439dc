"""samples: a minute's pool per template and a minute's claims, for the dashboard's pictures (issue 14)

Revision ID: 4b7e2c9d1f38
Revises: 1c7e4a9b2d60
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "4b7e2c9d1f38"
down_revision: str | None = "1c7e4a9b2d60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "template_samples",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("template_id", sa.Text(), nullable=False),
        sa.Column("idle", sa.Integer(), nullable=False),
        sa.Column("starting", sa.Integer(), nullable=False),
        sa.Column("claimed", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("target", sa.Integer(), nullable=False),
        sa.Column("target_reason", sa.Text(), nullable=True),
        sa.Column("refill_p50_seconds", sa.Float(), nullable=True),
        sa.Column("refill_max_seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("minute", "template_id", name=op.f("pk_template_samples")),
    )
    op.create_table(
        "claim_samples",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("misses", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("other", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("latency_buckets", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.PrimaryKeyConstraint("minute", name=op.f("pk_claim_samples")),
    )


def downgrade() -> None:
    op.drop_table("claim_samples")
    op.drop_table("template_samples")
