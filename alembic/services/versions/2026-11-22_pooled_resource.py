"""pooled resource

Revision ID: 5c2d8a91e7f3
Revises: b0f7c1ce4151
Create Date: 2026-11-22 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c2d8a91e7f3"
down_revision: str | None = "b0f7c1ce4151"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pooled_resource",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), server_default="", nullable=False),
        sa.Column("resource_ref", sa.Text(), nullable=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("instance_id", sa.String(length=12), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pooled_resource")),
    )
    op.create_index(
        "uq_pooled_resource_kind_instance",
        "pooled_resource",
        ["kind", "instance_id"],
        unique=True,
        postgresql_where=sa.text("instance_id IS NOT NULL"),
    )
    op.create_index(
        "uq_pooled_resource_kind_ref",
        "pooled_resource",
        ["kind", "resource_ref"],
        unique=True,
        postgresql_where=sa.text("resource_ref IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_pooled_resource_kind_ref", table_name="pooled_resource")
    op.drop_index("uq_pooled_resource_kind_instance", table_name="pooled_resource")
    op.drop_table("pooled_resource")
