"""Bankr: one wallet key per instance, handed out from the pool, because Bankr has no API to mint
a wallet per instance (specs/bankr.md). Operators add keys with `POST /pooled/bankr`."""

from __future__ import annotations

from services.pooled.service import PooledProvider, PooledSettings
from services.tools.base import ToolContext

ENV_KEY = "BANKR_API_KEY"


def build_bankr(context: ToolContext) -> PooledProvider | None:
    """The provider, or None unless POOLED_TOOLS names bankr."""
    if "bankr" not in PooledSettings().tools:
        return None
    return PooledProvider("bankr", ENV_KEY, context.sessionmaker, context.box)
