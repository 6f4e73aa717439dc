"""index services token hash

An instance calling services is looked up by the sha256 of its INSTANCE_SERVICES_TOKEN on every
tool call; without an index that is a scan of instance_infra. Unique, because two instances
sharing a token hash would mean one could act as the other.

Revision ID: a62e4f26a198
Revises: 5c2d8a91e7f3
Create Date: 2026-11-22 08:01:49.319314
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a62e4f26a198"
down_revision: str | None = "5c2d8a91e7f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "uq_instance_infra_services_token_hash",
        "instance_infra",
        ["services_token_hash"],
        unique=True,
        postgresql_where=sa.text("services_token_hash IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_instance_infra_services_token_hash",
        table_name="instance_infra",
        postgresql_where=sa.text("services_token_hash IS NOT NULL"),
    )
