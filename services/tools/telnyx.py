"""Telnyx: one phone number per instance (specs/telnyx.md).

Provision takes a number from the pool (pre-bought or recycled) when there is one, else buys one:
search → order → wait for the order → find the number → assign the messaging profile.

Concurrent orders must not race for one number: search and order run under one Postgres advisory
lock (transaction-scoped, so a crashed holder frees it), so the next searcher only runs after the
previous order took its number off the market. The lock covers two short HTTP calls, not the wait.
A fresh number can answer 404 for a while after purchase: lookups retry with bounded backoff.
Destroy releases the number, or with TELNYX_RELEASE_MODE=recycle returns it to the pooled table.
A number taken from the pool goes back to the pool by its pooled row, whatever the release mode,
and whether or not the operator recorded its Telnyx id (`resource_ref`) when adding it.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import locks
from services.models import PooledResource
from services.pooled import service as pooled
from services.tools.base import Grant, InventoryItem, ToolContext
from services.tools.telnyx_client import PhoneNumber, TelnyxClient, TelnyxNotYetThere
from services.tools.vendor import instance_from_name, parse_time, resource_name
from shared.auth import SecretBox
from shared.logging import get_logger, register_secret
from shared.retry import RetryPolicy

log = get_logger(__name__)


class TelnyxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TELNYX_", extra="ignore")

    api_key: str = ""
    base_url: str = "https://api.telnyx.com/v2"
    messaging_profile_id: str = ""
    country: str = "US"
    release_mode: Literal["release", "recycle"] = "release"
    name_prefix: str = "warmpool-"
    timeout_seconds: float = 15.0
    search_limit: int = 5
    order_poll_seconds: float = 1.0
    order_timeout_seconds: float = 120.0
    # A bought number may 404 for a while: this many tries, doubling from not_found_backoff_seconds.
    not_found_attempts: int = 6
    not_found_backoff_seconds: float = 1.0

    @property
    def configured(self) -> bool:
        return bool(self.api_key)


class TelnyxProvider:
    name = "telnyx"
    env_key = "TELNYX_PHONE_NUMBER"
    mode = "per-instance"

    def __init__(
        self,
        settings: TelnyxSettings,
        client: TelnyxClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        box: SecretBox,
    ) -> None:
        self.settings = settings
        self.client = client
        self._sessionmaker = sessionmaker
        self._box = box
        # A bought number may 404 for a while: tried again, doubling from not_found_backoff_seconds.
        self._until_there = RetryPolicy(
            "telnyx-not-yet-there",
            attempts=max(1, settings.not_found_attempts),
            backoff_seconds=settings.not_found_backoff_seconds,
            max_backoff_seconds=float("inf"),  # bounded by the attempts
        )

    async def provision(self, instance_id: str) -> Grant:
        row = await pooled.assign_in_own_transaction(
            self._sessionmaker, kind=self.name, instance_id=instance_id
        )
        if row is not None:
            # Without its Telnyx id the number is still the instance's number; the ledger then
            # records the pooled row, which is what revoke hands back.
            e164 = self._box.decrypt(row.value)
            resource_id = row.resource_ref or f"pooled-{row.id}"
            log.info("tool.telnyx.number_from_pool", instance_id=instance_id, number_id=resource_id)
            meta = {"phone_number": e164, "pooled_id": row.id}
            return Grant(resource_id=resource_id, env_value=e164, meta=meta)
        reference = resource_name(self.settings.name_prefix, instance_id)
        async with self._sessionmaker() as session, session.begin():
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": locks.TELNYX_ORDER_KEY})
            order = await self.client.order_first_available(
                country=self.settings.country, limit=self.settings.search_limit, customer_reference=reference
            )
        number = await self._settle(order.id, order.phone_numbers[0].phone_number)
        log.info("tool.telnyx.number_bought", instance_id=instance_id, number_id=number.id)
        return Grant(
            resource_id=number.id, env_value=number.phone_number, meta={"phone_number": number.phone_number}
        )

    async def _settle(self, order_id: str, e164: str) -> PhoneNumber:
        """Wait for the order, find the number, assign the profile; release it if any of that fails."""
        settings = self.settings
        await self.client.wait_for_order(
            order_id, poll=settings.order_poll_seconds, timeout=settings.order_timeout_seconds
        )
        number = await self._find_number(e164)
        try:
            if settings.messaging_profile_id:
                await self._assign_profile(number.id, settings.messaging_profile_id)
        except BaseException:
            await self._release_quietly(number.id)
            raise
        return number

    async def _find_number(self, e164: str) -> PhoneNumber:
        return await self._until_there.call(lambda: self.client.find_number(e164), retry_on=_not_yet_there)

    async def _assign_profile(self, number_id: str, profile_id: str) -> None:
        await self._until_there.call(
            lambda: self.client.assign_profile(number_id, profile_id), retry_on=_not_yet_there
        )

    async def _release_quietly(self, number_id: str) -> None:
        try:
            await self.client.release(number_id)
        except Exception as exc:  # the sweep finds it by customer_reference
            log.warning("tool.telnyx.release_failed", number_id=number_id, error=type(exc).__name__)

    async def revoke(self, resource_id: str, meta: dict[str, Any]) -> None:
        if "pooled_id" in meta:
            async with self._sessionmaker() as session, session.begin():
                returned = await pooled.give_back(session, kind=self.name, resource_id=int(meta["pooled_id"]))
            log.info("tool.telnyx.number_returned", number_id=resource_id, already_free=not returned)
            return
        if self.settings.release_mode == "release":
            released = await self.client.release(resource_id)
            log.info("tool.telnyx.number_released", number_id=resource_id, already_gone=not released)
            return
        await self._recycle(resource_id, str(meta.get("phone_number", "")))

    async def _recycle(self, number_id: str, e164: str) -> None:
        async with self._sessionmaker() as session, session.begin():
            statement = insert(PooledResource).values(
                kind=self.name, label=e164, resource_ref=number_id, value=self._box.encrypt(e164)
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["kind", "resource_ref"],
                    index_where=PooledResource.resource_ref.is_not(None),
                    set_={"instance_id": None, "assigned_at": None},
                )
            )
        log.info("tool.telnyx.number_recycled", number_id=number_id)

    async def inventory(self) -> list[InventoryItem]:
        """Numbers we bought (customer_reference carries our prefix) that are not parked in the pool."""
        prefix = self.settings.name_prefix
        async with self._sessionmaker() as session:
            parked = {row.resource_ref for row in await pooled.list_resources(session, kind=self.name)}
        return [
            InventoryItem(
                resource_id=number.id,
                name=number.customer_reference or "",
                instance_id=instance_from_name(prefix, number.customer_reference),
                created_at=parse_time(number.purchased_at or number.created_at),
            )
            for number in await self.client.list_numbers()
            if (number.customer_reference or "").startswith(prefix) and number.id not in parked
        ]

    @classmethod
    def from_settings(
        cls,
        settings: TelnyxSettings,
        http: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        box: SecretBox,
    ) -> TelnyxProvider:
        register_secret(settings.api_key)
        auth = {"Authorization": f"Bearer {settings.api_key}"}
        client = TelnyxClient(http, base_url=settings.base_url, auth=auth, timeout=settings.timeout_seconds)
        return cls(settings, client, sessionmaker, box)


def build_telnyx(context: ToolContext) -> TelnyxProvider | None:
    # The order lock and the recycled pool live in services' database: the app's own sessionmaker.
    settings = TelnyxSettings()
    if not settings.configured:
        return None
    return TelnyxProvider.from_settings(settings, context.http, context.sessionmaker, context.box)


def _not_yet_there(error: BaseException) -> bool:
    return isinstance(error, TelnyxNotYetThere)
