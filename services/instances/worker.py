"""Services' create workers: make the creates `POST /create-instance` recorded, at the platform's pace.

`SERVICES_CREATE_CONCURRENCY` workers per process take `queued` rows oldest first (`FOR UPDATE
SKIP LOCKED`, so replicas share the queue and each create is taken once): arrival order is the
order of service, so a create waiting for a platform cooldown is never overtaken by later ones.
No HTTP request waits on them. A taken row is held by a lease on the database's clock, renewed
every third of `SERVICES_CREATE_LEASE_SECONDS` while the worker runs; a `creating` row whose
lease ran out belongs to a worker that died (a crash, a restart) and is taken again like a queued
one, which is how a start finishes what a crash left (`services.instances.create.run_create`
removes the dead attempt's platform resources, then redoes it; past `SERVICES_CREATE_MAX_ATTEMPTS`
it fails the create).

A worker sleeps until woken by an accepted create or `SERVICES_CREATE_POLL_SECONDS` passed (work
recorded by another replica, an expired lease). Its own errors (the database away) are logged
and retried after that pause; they never end the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import and_, func, or_, select, update

from services.config import Settings
from services.instances.create import run_create
from services.instances.service import Sessionmaker
from services.models import InstanceInfra
from services.platforms.registry import Platforms
from services.tools.base import ToolProvider
from shared.auth import SecretBox
from shared.logging import get_logger

log = get_logger("services.instances.worker")


async def take_next(sessionmaker: Sessionmaker, *, lease_seconds: float) -> tuple[str, int] | None:
    """The oldest create waiting for a worker (queued, or creating with its lease run out), now
    held by the caller: (instance id, attempt number)."""
    lease = timedelta(seconds=lease_seconds)
    async with sessionmaker.begin() as session:
        row = await session.scalar(
            select(InstanceInfra)
            .where(
                or_(
                    InstanceInfra.state == "queued",
                    and_(InstanceInfra.state == "creating", InstanceInfra.lease_until < func.now()),
                )
            )
            .order_by(InstanceInfra.created_at, InstanceInfra.instance_id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if row is None:
            return None
        if row.state == "creating":
            log.warning("instance.create.retaken", instance_id=row.instance_id, attempts=row.create_attempts)
        row.state = "creating"
        row.create_attempts += 1
        row.lease_until = func.now() + lease
        return row.instance_id, row.create_attempts


async def renew(sessionmaker: Sessionmaker, instance_id: str, attempt: int, lease_seconds: float) -> bool:
    """Extend the lease of a create this attempt still holds; False once it does not."""
    async with sessionmaker.begin() as session:
        renewed = await session.execute(
            update(InstanceInfra)
            .where(
                InstanceInfra.instance_id == instance_id,
                InstanceInfra.state == "creating",
                InstanceInfra.create_attempts == attempt,
            )
            .values(lease_until=func.now() + timedelta(seconds=lease_seconds))
        )
        return bool(renewed.rowcount == 1)  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def held(
    sessionmaker: Sessionmaker, instance_id: str, attempt: int, lease_seconds: float
) -> AsyncIterator[None]:
    """Renew the lease while the body runs. A renewal that fails (database away) is tried again
    at the next beat: the lease is three beats long."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(lease_seconds / 3)
            try:
                if not await renew(sessionmaker, instance_id, attempt, lease_seconds):
                    return  # destroyed or taken again: run_create notices at its next step
            except Exception as exc:  # noqa: BLE001 - retried at the next beat
                log.warning("instance.create.renew_failed", instance_id=instance_id, error=type(exc).__name__)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class CreateWorkers:
    """The workers of one services process; started and stopped by its lifespan."""

    def __init__(
        self,
        sessionmaker: Sessionmaker,
        *,
        platforms: Platforms,
        tools: dict[str, ToolProvider],
        box: SecretBox,
        settings: Settings,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._platforms = platforms
        self._tools = tools
        self._box = box
        self._settings = settings
        self._work = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"create-worker-{n}")
            for n in range(self._settings.create_concurrency)
        ]
        self.wake()  # what a crash left, or what was queued while no worker ran

    def wake(self) -> None:
        self._work.set()

    async def stop(self) -> None:
        """Cancel the workers. A create cut short stays `creating`; its lease runs out and the
        next start takes it again."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _run(self) -> None:
        settings = self._settings
        while True:
            # Cleared before looking, so a create accepted while this worker looks is not missed.
            self._work.clear()
            try:
                job = await take_next(self._sessionmaker, lease_seconds=settings.create_lease_seconds)
            except Exception as exc:  # noqa: BLE001 - the database away: look again after a pause
                log.warning("instance.create.take_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                job = None
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work.wait(), settings.create_poll_seconds)
                continue
            self._work.set()  # there may be more: let an idle worker look too
            instance_id, attempt = job
            try:
                async with held(self._sessionmaker, instance_id, attempt, settings.create_lease_seconds):
                    await run_create(
                        self._sessionmaker,
                        platforms=self._platforms,
                        tools=self._tools,
                        box=self._box,
                        settings=settings,
                        instance_id=instance_id,
                        attempt=attempt,
                    )
            except Exception as exc:  # noqa: BLE001 - the lease runs out and the create is taken again
                log.warning(
                    "instance.create.worker_error",
                    instance_id=instance_id,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                )
