"""opaque platform ref

Where an instance lives on its platform was five columns shaped like one provider's ids
(`provider_project_id`, `provider_env_id`, `provider_service_id`, `volume_id`, `domain`) plus the
JSON `provider_meta`. It becomes one JSON column, `platform_ref`, that only the instance's
provider reads (DESIGN.md §9): the old columns' values move into it under the keys that provider
uses (`project_id`, `environment_id`, `service_id`, `volume_id`, `domain`), merged with what
`provider_meta` held. The unique constraint on `provider_service_id` goes with its column: the
sweep matches orphans by JSON containment instead.

Downgrade moves those keys back into their columns (the local provider's rows get their instance
id as `provider_service_id` again, as it used to write) and the rest into `provider_meta`.

Revision ID: 8b1f4c6d2e57
Revises: 3d7e5b9c1a20
Create Date: 2026-11-23 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "8b1f4c6d2e57"
down_revision: str | None = "3d7e5b9c1a20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Column → key in platform_ref.
MOVED = {
    "provider_project_id": "project_id",
    "provider_env_id": "environment_id",
    "provider_service_id": "service_id",
    "volume_id": "volume_id",
    "domain": "domain",
}
EMPTY = sa.text("'{}'::jsonb")


def upgrade() -> None:
    op.add_column(
        "instance_infra",
        sa.Column(
            "platform_ref", postgresql.JSONB(astext_type=sa.Text()), server_default=EMPTY, nullable=False
        ),
    )
    pairs = ", ".join(f"'{key}', {column}" for column, key in MOVED.items())
    op.execute(
        sa.text(
            f"UPDATE instance_infra SET platform_ref = provider_meta || jsonb_strip_nulls(jsonb_build_object({pairs}))"
        )
    )
    op.drop_constraint("uq_instance_infra_provider_service_id", "instance_infra", type_="unique")
    for column in [*MOVED, "provider_meta"]:
        op.drop_column("instance_infra", column)


def downgrade() -> None:
    for column in MOVED:
        op.add_column("instance_infra", sa.Column(column, sa.Text(), nullable=True))
    op.add_column(
        "instance_infra",
        sa.Column(
            "provider_meta", postgresql.JSONB(astext_type=sa.Text()), server_default=EMPTY, nullable=False
        ),
    )
    values = ", ".join(f"{column} = platform_ref->>'{key}'" for column, key in MOVED.items())
    op.execute(sa.text(f"UPDATE instance_infra SET {values}"))
    op.execute(
        sa.text(
            "UPDATE instance_infra SET provider_service_id = instance_id "
            "WHERE provider = 'local' AND provider_service_id IS NULL AND platform_ref <> '{}'::jsonb"
        )
    )
    removed = " - ".join(f"'{key}'" for key in MOVED.values())
    op.execute(sa.text(f"UPDATE instance_infra SET provider_meta = platform_ref - {removed}"))
    op.create_unique_constraint(
        "uq_instance_infra_provider_service_id", "instance_infra", ["provider_service_id"]
    )
    op.drop_column("instance_infra", "platform_ref")
