"""What operators send and read about the ledger: its rows (never env values) and the actions on
an instance's OpenRouter key (named by its hash, never by its secret)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from shared.schemas import WireModel


class LedgerEntry(WireModel):
    """One external resource, in any status (destroyed ones too: that is the audit trail)."""

    id: int
    tool_id: str
    resource_id: str | None
    env_key: str
    status: str
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class KeyDisable(WireModel):
    disabled: bool = True


class KeyLimit(WireModel):
    limit: Annotated[float, Field(gt=0, le=100_000)]


class KeyState(WireModel):
    instance_id: str
    resource_id: str
    disabled: bool | None = None
    limit: float | None = None
