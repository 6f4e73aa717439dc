"""placement across platforms

Services runs several platforms (DESIGN.md §9, `SERVICES_PLATFORMS`) and every instance records
the one placement put it on: `instance_infra.platform`. Existing rows were all made on the one
platform of `SERVICES_PLATFORM`, which the settings without `SERVICES_PLATFORMS` name after its
provider, so they are backfilled from `provider`. A create not placed yet has neither: `provider`
becomes nullable. `platform_health` keeps each platform's failed creates and backoff, shared by
every replica.

Downgrade: rows keep their provider. A create not placed yet made nothing on any platform, so its
provider may be empty ('', which an older services reads as "nothing recorded"): its tools stay
in the ledger, and its worker (or a destroy) finishes it on the one platform an older services runs.

Revision ID: 5a1c7e9d3f02
Revises: c4a9e2f17b36
Create Date: 2026-11-30 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5a1c7e9d3f02"
down_revision: str | None = "c4a9e2f17b36"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("instance_infra", sa.Column("platform", sa.Text(), nullable=True))
    op.execute("UPDATE instance_infra SET platform = provider")
    op.alter_column("instance_infra", "provider", existing_type=sa.Text(), nullable=True)
    op.create_index(
        "ix_instance_infra_platform",
        "instance_infra",
        ["platform"],
        postgresql_where=sa.text("platform IS NOT NULL"),
    )
    op.create_table(
        "platform_health",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("backoff_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_platform_health")),
    )


def downgrade() -> None:
    op.drop_table("platform_health")
    op.drop_index("ix_instance_infra_platform", table_name="instance_infra")
    op.execute("UPDATE instance_infra SET provider = '' WHERE provider IS NULL")
    op.alter_column("instance_infra", "provider", existing_type=sa.Text(), nullable=False)
    op.drop_column("instance_infra", "platform")
