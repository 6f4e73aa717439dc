"""neutral deploy states

`instance_infra.deploy_status` held Railway's DeploymentStatus words (the local provider reported
the same words); it now holds the neutral deploy state every provider maps onto (DESIGN.md §9).
The word lists are written out here, not imported: a migration must not change when the code does.
Downgrade maps each state back to one representative word.

Revision ID: 3d7e5b9c1a20
Revises: a62e4f26a198
Create Date: 2026-11-23 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3d7e5b9c1a20"
down_revision: str | None = "a62e4f26a198"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UP = {
    "INITIALIZING": "pending",
    "QUEUED": "pending",
    "WAITING": "pending",
    "NEEDS_APPROVAL": "pending",
    "BUILDING": "deploying",
    "DEPLOYING": "deploying",
    "SUCCESS": "running",
    "SLEEPING": "sleeping",
    "FAILED": "failed",
    "CRASHED": "crashed",
    "REMOVED": "removed",
    "REMOVING": "removed",
    "SKIPPED": "removed",
}
DOWN = {
    "pending": "QUEUED",
    "deploying": "DEPLOYING",
    "running": "SUCCESS",
    "sleeping": "SLEEPING",
    "failed": "FAILED",
    "crashed": "CRASHED",
    "removed": "REMOVED",
}
NEUTRAL = ("pending", "deploying", "running", "sleeping", "failed", "crashed", "removed", "unknown")


def _remap(mapping: dict[str, str], default: str | None) -> None:
    """Every non-null value becomes its mapped word, or `default` for a word the map lacks."""
    cases = " ".join(f"WHEN '{old}' THEN '{new}'" for old, new in mapping.items())
    fallback = f"'{default}'" if default is not None else "NULL"
    op.execute(
        sa.text(
            f"UPDATE instance_infra SET deploy_status = CASE deploy_status {cases} ELSE {fallback} END "
            "WHERE deploy_status IS NOT NULL"
        )
    )


def upgrade() -> None:
    # A word not in Railway's list was treated as a deploy in progress; `unknown` still is.
    # Neutral values are kept as they are, so running this again changes nothing.
    mapping = {**UP, **{state: state for state in NEUTRAL}}
    _remap(mapping, "unknown")


def downgrade() -> None:
    # `unknown` has no Railway word: it becomes NULL ("no deployment recorded"). Services reads
    # this column only to probe instances last seen running early; the pool never reads it.
    _remap(DOWN, None)
