"""claim queue: queued and cancelled claims, FIFO order per template, deadlines, ETA; instance ready_at

A claim that finds no idle instance may wait in a queue (DESIGN.md §10): `queued` until the
dispatcher gives it an instance (→ `pending`), it times out (→ `failed`) or its caller cancels it
(→ `cancelled`). Its place is (priority desc, queue_seq); a queued claim holds its joinUrl like a
pending one. `instances.ready_at` (first time idle) measures the refill the ETA is built from.

Revision ID: 7d3b9a1c5e20
Revises: 4c7d2a9e1b30
Create Date: 2026-11-25 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "7d3b9a1c5e20"
down_revision: str | None = "4c7d2a9e1b30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_HOLDS = "join_url IS NOT NULL AND status IN ('pending', 'succeeded') AND join_released_at IS NULL"
NEW_HOLDS = "join_url IS NOT NULL AND status IN ('queued', 'pending', 'succeeded') AND join_released_at IS NULL"
DROPPED = '{"error": "Unavailable", "detail": "the claim ended: the queue was removed by a downgrade"}'


def upgrade() -> None:
    op.drop_constraint(op.f("ck_claims_status"), "claims", type_="check")
    op.create_check_constraint(
        op.f("ck_claims_status"),
        "claims",
        "status IN ('queued', 'pending', 'succeeded', 'failed', 'cancelled')",
    )
    op.add_column("claims", sa.Column("template", sa.Text(), server_default="default", nullable=False))
    op.add_column("claims", sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column(
        "claims", sa.Column("queue_seq", sa.BigInteger(), sa.Identity(always=False), nullable=False)
    )
    op.add_column("claims", sa.Column("request", postgresql.JSONB(), nullable=True))
    op.add_column("claims", sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("claims", sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("claims", sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("claims", sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("claims", sa.Column("eta_seconds", sa.Float(), nullable=True))
    # Where the claim came from (the original's landing server says "landing"): recorded, never acted on.
    op.add_column("claims", sa.Column("source", sa.Text(), nullable=True))
    op.create_index(
        "ix_claims_queue",
        "claims",
        ["template", sa.text("priority DESC"), "queue_seq"],
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.drop_index("uq_claims_active_join_url", table_name="claims")
    op.create_index(
        "uq_claims_active_join_url", "claims", ["join_url"], unique=True, postgresql_where=sa.text(NEW_HOLDS)
    )
    op.add_column("instances", sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_instances_ready_at", "instances", ["ready_at"], postgresql_where=sa.text("ready_at IS NOT NULL")
    )


def downgrade() -> None:
    op.drop_index("ix_instances_ready_at", table_name="instances")
    op.drop_column("instances", "ready_at")
    # Nothing below knows a waiting or cancelled claim: both end as failures nothing was handed for.
    op.execute(
        f"UPDATE claims SET status = 'failed', response = '{DROPPED}'::jsonb, instance_id = NULL "
        "WHERE status IN ('queued', 'cancelled')"
    )
    op.drop_index("uq_claims_active_join_url", table_name="claims")
    op.create_index(
        "uq_claims_active_join_url", "claims", ["join_url"], unique=True, postgresql_where=sa.text(OLD_HOLDS)
    )
    op.drop_index("ix_claims_queue", table_name="claims")
    for column in (
        "source",
        "eta_seconds",
        "assigned_at",
        "queued_at",
        "deadline_at",
        "attempts",
        "request",
        "queue_seq",
        "priority",
        "template",
    ):
        op.drop_column("claims", column)
    op.drop_constraint(op.f("ck_claims_status"), "claims", type_="check")
    op.create_check_constraint(
        op.f("ck_claims_status"), "claims", "status IN ('pending', 'succeeded', 'failed')"
    )
