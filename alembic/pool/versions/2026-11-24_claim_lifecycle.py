"""claim lifecycle: pending -> succeeded | failed, keys per caller, join hold, tick indexes

`released` meant two things: a succeeded claim whose agent let go of its joinUrl (now `succeeded`
with `join_released_at`, its answer unchanged), and a pending claim ended without an answer (now
`failed`, with the failure every retry replays). Every existing claim came through POOL_API_KEY,
the only claim credential, so its caller is that key's identity (pool.auth.API_KEY_CALLER).

Revision ID: ea89018afc5c
Revises: 775b13427e6c
Create Date: 2026-11-24 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "ea89018afc5c"
down_revision: str | None = "775b13427e6c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ACTIVE = "join_url IS NOT NULL AND status IN ('pending', 'succeeded')"
NEW_ACTIVE = "join_url IS NOT NULL AND status IN ('pending', 'succeeded') AND join_released_at IS NULL"
ABANDONED = '{"error": "UpstreamError", "detail": "the claim ended: abandoned mid-provision"}'


def upgrade() -> None:
    op.drop_index("uq_claims_active_join_url", table_name="claims")
    op.drop_constraint(op.f("ck_claims_status"), "claims", type_="check")
    op.drop_constraint(op.f("uq_claims_idempotency_key"), "claims", type_="unique")
    op.add_column("claims", sa.Column("caller", sa.Text(), server_default="pool_api_key", nullable=False))
    op.alter_column("claims", "caller", server_default=None)
    op.add_column("claims", sa.Column("join_released_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE claims SET status = 'succeeded', join_released_at = updated_at "
        "WHERE status = 'released' AND response IS NOT NULL"
    )
    op.execute(
        f"UPDATE claims SET status = 'failed', response = '{ABANDONED}'::jsonb WHERE status = 'released'"
    )
    op.create_check_constraint(
        op.f("ck_claims_status"), "claims", "status IN ('pending', 'succeeded', 'failed')"
    )
    op.create_unique_constraint(
        op.f("uq_claims_caller_idempotency_key"), "claims", ["caller", "idempotency_key"]
    )
    op.create_index(
        "uq_claims_active_join_url", "claims", ["join_url"], unique=True, postgresql_where=sa.text(NEW_ACTIVE)
    )
    op.create_index(
        "ix_claims_pending_created_at",
        "claims",
        ["created_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_claims_created_at", "claims", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_claims_created_at", table_name="claims")
    op.drop_index("ix_claims_pending_created_at", table_name="claims")
    op.drop_index("uq_claims_active_join_url", table_name="claims")
    op.drop_constraint(op.f("uq_claims_caller_idempotency_key"), "claims", type_="unique")
    op.drop_constraint(op.f("ck_claims_status"), "claims", type_="check")
    op.execute(
        "UPDATE claims SET status = 'released' "
        "WHERE status = 'failed' OR (status = 'succeeded' AND join_released_at IS NOT NULL)"
    )
    op.execute("UPDATE claims SET response = NULL WHERE status = 'released' AND join_released_at IS NULL")
    op.drop_column("claims", "join_released_at")
    op.drop_column("claims", "caller")
    op.create_check_constraint(
        op.f("ck_claims_status"), "claims", "status IN ('pending', 'succeeded', 'released')"
    )
    op.create_unique_constraint(op.f("uq_claims_idempotency_key"), "claims", ["idempotency_key"])
    op.create_index(
        "uq_claims_active_join_url", "claims", ["join_url"], unique=True, postgresql_where=sa.text(OLD_ACTIVE)
    )
