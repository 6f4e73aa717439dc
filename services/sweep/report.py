"""What one sweep found and did, shared by its stages (tool ledger, platform)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.errors import AppError

OrphanKind = Literal[
    "stuck_row",
    "unknown_at_provider",
    "missing_at_provider",
    "not_in_pool",
    "not_in_services",
    "platform_orphan",
]


@dataclass
class Orphan:
    kind: OrphanKind
    # The tool's id, or for a platform orphan the platform's name.
    tool_id: str | None
    resource_id: str | None
    instance_id: str | None
    age_seconds: float | None
    # removed | already gone | kept (...) | reported | failed: <reason>
    action: str


@dataclass
class SweepReport:
    ran: bool
    orphans: list[Orphan] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pool_compared: bool = False

    def removed(self) -> int:
        return sum(1 for orphan in self.orphans if orphan.action == "removed")


def reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, AppError) else type(exc).__name__
