"""What services needs from a platform: the neutral contract every provider implements.

Above `services/platforms/<provider>/` nothing knows a provider's ids or words: a provider maps
its deploy words onto `shared.schemas.DeployState` and keeps where an instance lives in the
opaque `PlatformRef.data`, which services stores as JSON and hands back unread.

Every method is safe to call again after a crash: `create` reports each resource through
`on_progress` as soon as it exists (the caller persists it before the next step), and `destroy`
of something already gone succeeds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from shared.errors import TransientError
from shared.schemas import DeployState


class AtCapacity(TransientError):
    """The platform holds all it can (e.g. a project's most services): placement tries the
    next platform and pauses this one at once, as after repeated failures."""


@dataclass
class InstanceSpec:
    instance_id: str
    name: str
    # Every variable the instance boots with: GATEWAY_TOKEN, INSTANCE_SERVICES_TOKEN, tool keys, ...
    env: dict[str, str]
    image: str | None = None


@dataclass
class PlatformRef:
    """Where an instance lives on its platform, persisted in `instance_infra` (`data` as the JSON
    column `platform_ref`). `data` is the provider's own: only the provider named by `provider`
    reads or writes it (each has a typed view of it in its own module), and it never holds
    secrets. Empty `data` means nothing was made on the platform yet. `url` is where the
    instance answers, the one thing every platform has."""

    provider: str
    data: dict[str, Any] = field(default_factory=dict)
    url: str | None = None


@dataclass
class PlatformState:
    # The provider's own deploy words, mapped onto the neutral state inside its folder.
    deploy_status: DeployState | None
    url: str | None = None


@dataclass
class PlatformOrphanRef:
    """Something the platform runs under our naming that no `instance_infra` row records.

    `ref` is the platform's id for it (opaque outside the provider) and `kind` says what it is,
    so `destroy_orphan` can remove it without a row. `instance_id` is the
    id its name carries when the name has exactly the shape we give resources, else None (then
    it is only reported, never destroyed).
    """

    ref: str
    name: str
    created_at: datetime | None = None
    kind: str = ""
    instance_id: str | None = None


@dataclass
class FleetSnapshot:
    """One observation of the whole fleet: states by instance id, plus what we have no row for."""

    states: dict[str, PlatformState]
    orphans: list[PlatformOrphanRef] = field(default_factory=list)
    api_calls: int = 0


ProgressCallback = Callable[[PlatformRef], Awaitable[None]]


class Platform(Protocol):
    name: str

    async def create(self, spec: InstanceSpec, on_progress: ProgressCallback) -> PlatformRef: ...

    async def status_many(self, refs: dict[str, PlatformRef], *, listing: bool = True) -> FleetSnapshot:
        """Deploy state of each given instance (keyed by instance id), in O(pages) platform calls.
        `listing`: list the platform in full (finds orphans); without it, ask about the given
        instances only (batched, no orphans), for the few a tick or an event observes."""
        ...

    async def destroy(self, ref: PlatformRef) -> bool:
        """Remove everything the instance has on the platform. False when it was already gone."""
        ...

    async def destroy_orphan(self, orphan: PlatformOrphanRef) -> bool:
        """Remove an orphan this platform listed; False when it was already gone. Raises
        PermanentError, touching nothing, for anything not named the way we name resources."""
        ...

    def orphan_match(self, orphan: PlatformOrphanRef) -> dict[str, Any]:
        """A non-empty part of `PlatformRef.data` that every stored ref recording `orphan`
        contains, so the sweep can ask the database (JSON containment) whether a row records it
        after all without reading any provider's data itself."""
        ...

    async def configure(self, ref: PlatformRef, variables: dict[str, str], *, redeploy: bool) -> None: ...

    async def redeploy(self, ref: PlatformRef, *, image: str | None) -> DeployState | None:
        """Roll the instance to `image` (or its configured one); returns the new deploy state."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class DeployEvent:
    """A platform's push about one of its deployments, reduced to what services needs: which row
    it may concern. `match` is a non-empty part of `PlatformRef.data` that the ref of the instance
    it names contains (matched by JSON containment, like `orphan_match`); `kind` is the provider's
    event word, for counts and logs only. The event is unsigned: it only asks for an observation."""

    match: dict[str, Any]
    kind: str


@runtime_checkable
class DeployEvents(Protocol):
    """What a provider that pushes deploy events offers (DESIGN.md §13); optional for a provider.

    `event_secret` is the secret of its webhook URL (`/webhooks/<provider>/<secret>`), empty when
    events are off. `parse_event` returns None for anything that cannot concern our instances
    (another kind of event, another project or environment, a malformed body). `subscribe_events`
    makes sure the platform delivers to `url` (creates its rule or subscription unless one with
    that URL exists) and says which ("created" | "exists"). `missed_events` lists what the
    platform delivered (or tried to) since `since`, for a catch-up after services was down.
    """

    event_secret: str

    def parse_event(self, body: Any) -> DeployEvent | None: ...

    async def subscribe_events(self, url: str) -> str: ...

    async def missed_events(self, since: datetime) -> list[DeployEvent]: ...
