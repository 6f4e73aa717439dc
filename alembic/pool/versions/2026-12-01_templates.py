"""templates: templates and their immutable versions (issue 13, first step); the `default` template

A template is what agents are made from (DESIGN.md §11). This step only stores them: nothing reads
them to create or claim yet, so a deployment that never defines one behaves as before. The
`default` template (id and slug `default`, the claim queue's `claims.template` key), version 1, is
made from nothing the database knows: its image and tools are null, meaning "the deployment's
settings" (POOL_TOOLS, services' runtime image), read at run time as today.

`instances.template_id` is left as it is: the claim path still writes the claim body's `templateId`
there (the caller's label, shown in the API), so a backfill to `default` would change what the API
answers. Binding instances to a template version comes with pools per template, which changes the
claim path.

A trigger refuses UPDATE on `template_versions`: a version, once written, is what instances made
from it were made from.

Revision ID: 3a8c6e1d9f52
Revises: 6e1f0c2b7a16
Create Date: 2026-12-01 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "3a8c6e1d9f52"
down_revision: str | None = "6e1f0c2b7a16"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMPTY_JSON = sa.text("'{}'::jsonb")


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("visibility", sa.Text(), server_default="private", nullable=False),
        sa.Column("forked_from", sa.Text(), nullable=True),
        sa.Column("forked_from_version", sa.Integer(), nullable=True),
        sa.Column("current_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("visibility IN ('private', 'public')", name=op.f("ck_templates_visibility")),
        sa.ForeignKeyConstraint(
            ["forked_from"], ["templates.id"], name=op.f("fk_templates_forked_from_templates")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
    )
    op.create_index(
        "uq_templates_owner_slug_live",
        "templates",
        ["owner", "slug"],
        unique=True,
        postgresql_where=sa.text("archived_at IS NULL"),
    )
    op.create_table(
        "template_versions",
        sa.Column("template_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("image", sa.Text(), nullable=True),
        sa.Column("tools", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("agent_name", sa.Text(), nullable=True),
        sa.Column("instructions", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("env", postgresql.JSONB(astext_type=sa.Text()), server_default=EMPTY_JSON, nullable=False),
        sa.Column(
            "resources", postgresql.JSONB(astext_type=sa.Text()), server_default=EMPTY_JSON, nullable=False
        ),
        sa.Column("min_idle", sa.Integer(), nullable=True),
        sa.Column("max_idle", sa.Integer(), nullable=True),
        sa.Column("rollout_strategy", sa.Text(), server_default="on-replenish", nullable=False),
        sa.Column(
            "rollout", postgresql.JSONB(astext_type=sa.Text()), server_default=EMPTY_JSON, nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "rollout_strategy IN ('on-replenish', 'recreate', 'canary')",
            name=op.f("ck_template_versions_rollout_strategy"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_template_versions_version_positive")),
        sa.CheckConstraint(
            "min_idle IS NULL OR max_idle IS NULL OR min_idle <= max_idle",
            name=op.f("ck_template_versions_idle_range"),
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_template_versions_template_id_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("template_id", "version", name=op.f("pk_template_versions")),
    )
    op.execute(
        """
        CREATE FUNCTION template_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'template versions are immutable: write a new version instead';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER template_versions_immutable BEFORE UPDATE ON template_versions "
        "FOR EACH ROW EXECUTE FUNCTION template_versions_immutable()"
    )
    op.execute(
        "INSERT INTO templates (id, slug, name, owner, visibility) "
        "VALUES ('default', 'default', 'Default', 'operator', 'public')"
    )
    op.execute("INSERT INTO template_versions (template_id, version) VALUES ('default', 1)")


def downgrade() -> None:
    op.execute("DROP TRIGGER template_versions_immutable ON template_versions")
    op.execute("DROP FUNCTION template_versions_immutable()")
    op.drop_table("template_versions")
    op.drop_index("uq_templates_owner_slug_live", table_name="templates")
    op.drop_table("templates")
