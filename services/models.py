"""Services' tables. `instance_id` is the only value shared with the pool's database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import make_metadata


class Base(DeclarativeBase):
    metadata = make_metadata()


class InstanceInfra(Base):
    """One row per instance, written before the platform is called (write-ahead)."""

    __tablename__ = "instance_infra"
    __table_args__ = (
        # An instance calling services is found by its token's hash on every tool call.
        Index(
            "uq_instance_infra_services_token_hash",
            "services_token_hash",
            unique=True,
            postgresql_where=text("services_token_hash IS NOT NULL"),
        ),
        # Placement counts each platform's live rows under its lock.
        Index("ix_instance_infra_platform", "platform", postgresql_where=text("platform IS NOT NULL")),
        # The create workers' queue (services/instances/worker.py).
        Index(
            "ix_instance_infra_create_queue",
            "created_at",
            postgresql_where=text("state IN ('queued', 'creating')"),
        ),
    )

    instance_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    # The platform (a SERVICES_PLATFORMS name) placement put it on, and that platform's provider:
    # null until a create worker places it (services/platforms/placement.py). Every later
    # operation goes to this platform.
    platform: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(Text)
    # queued → creating → active → destroying; failed: a create that failed (rolled back, or not
    # wholly: `last_error` says) and waits for a destroy. A crash leaves creating (taken again
    # by a worker once its lease runs out) or destroying (destroy or the sweep finishes it).
    state: Mapped[str] = mapped_column(Text, server_default="creating")
    # Where the instance lives on `provider` (PlatformRef.data): the provider's own record,
    # opaque here. `{}` until the platform reports the first resource it made.
    platform_ref: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    url: Mapped[str | None] = mapped_column(Text)
    # A shared.schemas.DeployState, as last observed.
    deploy_status: Mapped[str | None] = mapped_column(Text)
    runtime_image: Mapped[str | None] = mapped_column(Text)
    # Only hashes: services compares tokens, it never needs to read them back.
    gateway_token_hash: Mapped[str | None] = mapped_column(Text)
    services_token_hash: Mapped[str | None] = mapped_column(Text)
    # Encrypted: inbound mail/SMS is delivered to the runtime's /convos/notify with it (services/inbound).
    gateway_token_enc: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    # What the create's workers need of the request until the create ends (then cleared):
    # the tools asked for (null: the default tools) and, encrypted, the gateway token and env.
    create_tools: Mapped[list[str] | None] = mapped_column(JSONB)
    create_secret: Mapped[str | None] = mapped_column(Text)
    # The worker making it holds the row until then (database clock; renewed while it works).
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Each take by a worker counts; it is also the attempt's token of ownership.
    create_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PlatformHealth(Base):
    """Each platform's record of failed creates, shared by every replica (placement's backoff)."""

    __tablename__ = "platform_health"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Placement skips the platform until then (the database's clock).
    backoff_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class InstanceService(Base):
    """The ledger: one row per external resource, written (status `creating`) before it is made."""

    __tablename__ = "instance_services"
    __table_args__ = (
        Index(
            "uq_instance_services_live_tool",
            "instance_id",
            "tool_id",
            unique=True,
            postgresql_where=text("status <> 'destroyed'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[str] = mapped_column(
        String(12), ForeignKey("instance_infra.instance_id", ondelete="CASCADE"), index=True
    )
    tool_id: Mapped[str] = mapped_column(Text)
    resource_id: Mapped[str | None] = mapped_column(Text)
    resource_meta: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    env_key: Mapped[str] = mapped_column(Text)
    # Encrypted with SERVICES_ENCRYPTION_KEY; never logged, never returned to the pool.
    env_value: Mapped[str | None] = mapped_column(Text)
    # creating → active → destroying → destroyed (or failed, kept for the sweep)
    status: Mapped[str] = mapped_column(Text, server_default="creating")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PooledResource(Base):
    """Operator-supplied resources (wallet keys, pre-bought or recycled numbers), one per instance per kind.

    Assigned with `FOR UPDATE SKIP LOCKED`; the partial unique index makes a second assignment of
    the same kind to one instance impossible even when two requests race.
    """

    __tablename__ = "pooled_resource"
    __table_args__ = (
        Index(
            "uq_pooled_resource_kind_instance",
            "kind",
            "instance_id",
            unique=True,
            postgresql_where=text("instance_id IS NOT NULL"),
        ),
        Index(
            "uq_pooled_resource_kind_ref",
            "kind",
            "resource_ref",
            unique=True,
            postgresql_where=text("resource_ref IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(Text, server_default="")
    # The vendor's id for it when it has one (a Telnyx number id); never secret.
    resource_ref: Mapped[str | None] = mapped_column(Text)
    # Encrypted with SERVICES_ENCRYPTION_KEY; never listed, only handed to the instance it is assigned to.
    value: Mapped[str] = mapped_column(Text)
    instance_id: Mapped[str | None] = mapped_column(String(12))
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class InboundDelivery(Base):
    """A vendor webhook delivery already handed to its instance (svix-id / Telnyx event id): a retried
    delivery is answered without a second notification. Pruned after a day (services/inbound)."""

    __tablename__ = "inbound_deliveries"
    __table_args__ = (Index("ix_inbound_deliveries_at", "at"),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
