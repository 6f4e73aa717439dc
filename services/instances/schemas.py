"""What operators read about an instance: its platform resources and its whole tool ledger.

Built field by field from the rows, so nothing secret can ride along: no env values (encrypted
or not), no token hashes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.ledger.schemas import LedgerEntry
from shared.schemas import WireModel


class Instance(WireModel):
    instance_id: str
    name: str
    # The SERVICES_PLATFORMS name it was placed on and that platform's provider (null: not yet placed).
    platform: str | None
    provider: str | None
    # creating → active → destroying (failed: a rollback that could not finish)
    state: str
    url: str | None
    deploy_status: str | None
    runtime_image: str | None
    # Where the instance lives, as its provider records it (ids, data dir, ...); the provider's
    # own shape, shown as is. Never secrets.
    platform_ref: dict[str, Any]
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    tools: list[LedgerEntry]


class InstancePage(WireModel):
    instances: list[Instance]
    # Pass as `after` for the next page; null on the last one.
    next_after: str | None
