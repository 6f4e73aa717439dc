"""template pools: instances bound to a template version; owners on claims; rollout state

Pools per template (DESIGN.md §11): an instance is created for one template version and a claim is
served from its template's idle instances, newest version first. Every existing instance migrates
into the `default` template, version 1 (the deployment's settings, which made it); the caller's
free-form `templateId` label some of them carried becomes meaningless once `templateId` names a
template, and is kept in `metadata.templateLabel` rather than lost.

Also here, so the rest of the issue needs no further migration:
- `instances.template_synced_at`: when the template's instructions were last pushed to the agent;
- `claims.owner_id`: whose agent a claim makes, counted by the per-owner quota while it is in flight;
- `template_versions.owner_agent_limit`: that quota per template (null: the deployment's setting);
- `templates.rollout_state`: the progress of the template's current rollout, for the status API.

Revision ID: 8f2d6b4a0c13
Revises: 3a8c6e1d9f52
Create Date: 2026-12-01 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "8f2d6b4a0c13"
down_revision: str | None = "3a8c6e1d9f52"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("instances", sa.Column("template_version", sa.Integer(), nullable=True))
    op.add_column("instances", sa.Column("template_synced_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        """
        UPDATE instances
           SET metadata = coalesce(metadata, '{}'::jsonb) || jsonb_build_object('templateLabel', template_id)
         WHERE template_id IS NOT NULL AND template_id <> 'default'
        """
    )
    op.execute("UPDATE instances SET template_id = 'default', template_version = 1")
    op.alter_column("instances", "template_id", nullable=False, server_default="default")
    op.alter_column("instances", "template_version", nullable=False, server_default=sa.text("1"))
    # What a claim picks: its template's idle instances, newest version first, oldest first within.
    op.create_index(
        "ix_instances_idle_pick",
        "instances",
        ["template_id", sa.text("template_version DESC"), "created_at"],
        postgresql_where=sa.text("status = 'idle'"),
    )
    op.add_column("claims", sa.Column("owner_id", sa.Text(), nullable=True))
    op.create_index(
        "ix_claims_owner_in_flight",
        "claims",
        ["owner_id"],
        postgresql_where=sa.text("owner_id IS NOT NULL AND status IN ('queued', 'pending')"),
    )
    op.create_index(
        "ix_instances_owner_id", "instances", ["owner_id"], postgresql_where=sa.text("owner_id IS NOT NULL")
    )
    op.add_column("template_versions", sa.Column("owner_agent_limit", sa.Integer(), nullable=True))
    op.add_column("templates", sa.Column("rollout_state", postgresql.JSONB(astext_type=sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column("templates", "rollout_state")
    op.drop_column("template_versions", "owner_agent_limit")
    op.drop_index("ix_instances_owner_id", table_name="instances")
    op.drop_index("ix_claims_owner_in_flight", table_name="claims")
    op.drop_column("claims", "owner_id")
    op.drop_index("ix_instances_idle_pick", table_name="instances")
    op.alter_column("instances", "template_id", nullable=True, server_default=None)
    op.execute("UPDATE instances SET template_id = NULL WHERE template_id = 'default'")
    op.execute(
        """
        UPDATE instances
           SET template_id = metadata->>'templateLabel', metadata = metadata - 'templateLabel'
         WHERE metadata ? 'templateLabel'
        """
    )
    op.drop_column("instances", "template_synced_at")
    op.drop_column("instances", "template_version")
