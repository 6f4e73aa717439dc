"""sizing: each template's pool policy grows the demand-driven target's fields; its state per template

DESIGN.md §12. A version's pool policy gains `sizing` (`fixed`: the target is min_idle raised by
schedules; `demand`: sized from the measured claim rate and refill time; null: POOL_SIZING),
`schedules` (lines like `weekdays 09-18 >= 10`), `idle_hours_per_day` (the cost budget) and
`max_idle_age_seconds` (recycling). `templates.sizing_state` is what the tick keeps between ticks:
the smoothed demand, the idle-hours spent, when the supply went above the target, and the target
with its reason, which the status API shows.

Revision ID: 1c7e4a9b2d60
Revises: 8f2d6b4a0c13
Create Date: 2026-12-01 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "1c7e4a9b2d60"
down_revision: str | None = "8f2d6b4a0c13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("template_versions", sa.Column("sizing", sa.Text(), nullable=True))
    op.create_check_constraint(
        "sizing", "template_versions", "sizing IS NULL OR sizing IN ('fixed', 'demand')"
    )
    op.add_column(
        "template_versions", sa.Column("schedules", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.add_column("template_versions", sa.Column("idle_hours_per_day", sa.Float(), nullable=True))
    op.add_column("template_versions", sa.Column("max_idle_age_seconds", sa.Float(), nullable=True))
    op.add_column("templates", sa.Column("sizing_state", postgresql.JSONB(astext_type=sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column("templates", "sizing_state")
    op.drop_column("template_versions", "max_idle_age_seconds")
    op.drop_column("template_versions", "idle_hours_per_day")
    op.drop_column("template_versions", "schedules")
    op.drop_constraint("sizing", "template_versions", type_="check")
    op.drop_column("template_versions", "sizing")
