"""inbound notify: the gateway token services delivers inbound mail/SMS with, and webhook dedup

Inbound mail and SMS (issue 16) reach the owning instance's runtime at `POST /convos/notify`,
authenticated with the instance's own gateway token, the one credential every runtime already checks.
Services had only its hash; `gateway_token_enc` keeps it encrypted with SERVICES_ENCRYPTION_KEY (like
the tools' env values), written when a create is accepted. Rows from before stay null: their
instances get no notifications until recreated. `inbound_deliveries` holds each vendor delivery id
(svix-id, Telnyx event id) already delivered, so a retried webhook is not delivered twice.

Revision ID: 5a3d8e0c9f41
Revises: 5a1c7e9d3f02
Create Date: 2026-11-30 23:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5a3d8e0c9f41"
down_revision: str | None = "5a1c7e9d3f02"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("instance_infra", sa.Column("gateway_token_enc", sa.Text(), nullable=True))
    op.create_table(
        "inbound_deliveries",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_deliveries")),
    )
    op.create_index("ix_inbound_deliveries_at", "inbound_deliveries", ["at"])


def downgrade() -> None:
    op.drop_index("ix_inbound_deliveries_at", table_name="inbound_deliveries")
    op.drop_table("inbound_deliveries")
    op.drop_column("instance_infra", "gateway_token_enc")
