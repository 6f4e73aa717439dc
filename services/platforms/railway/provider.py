"""The Railway platform: shared-project mode (one service per instance) or a project per instance.

Create order (lessons-from-the-original.md): project (per-instance mode) → environment id →
service with no source → volume → domain → one environment patch commit carrying image, start
command and every variable, which starts the one and only deploy. Each resource is reported
through `on_progress` as soon as it exists, and a failure part-way destroys what was made.

Calls per create: 5 in per-instance mode (ProjectCreate, ServiceCreate, VolumeCreate,
ServiceDomainCreate, EnvironmentPatchCommit); 4 in shared mode (the environment id comes from
settings, or one ProjectEnvironments lookup per process when not configured).
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from services.config import Settings
from services.platforms.base import (
    DeployEvent,
    FleetSnapshot,
    InstanceSpec,
    PlatformOrphanRef,
    PlatformRef,
    ProgressCallback,
)
from services.platforms.railway.client import RailwayClient
from services.platforms.railway.errors import RailwayNotFound
from services.platforms.railway.events import RailwayEvents, parse_event
from services.platforms.railway.limits import Budget, shared_budget
from services.platforms.railway.ref import RailwayRef
from services.platforms.railway.settings import RailwaySettings
from services.platforms.railway.status import (
    orphan_instance_id,
    per_instance_status,
    shared_status,
    shared_status_of,
)
from shared.errors import PermanentError
from shared.logging import get_logger, register_secret
from shared.schemas import DeployState

if TYPE_CHECKING:
    from services.platforms.registry import BuildContext

log = get_logger("services.platforms.railway")

NAME_LIMIT = 32


class RailwayPlatform:
    name = "railway"

    def __init__(
        self, settings: RailwaySettings, http_client: httpx.AsyncClient, *, budget: Budget | None = None
    ) -> None:
        self.settings = settings
        self.client = RailwayClient(settings, http_client, budget=budget)
        self._environment_id = settings.environment_id or None
        register_secret(settings.webhook_secret)
        self.event_secret = settings.webhook_secret
        self._events = RailwayEvents(self.client, settings)
        # What this platform's orphan listing covers: the shared environment's services, or
        # every project of the workspace named with its prefix.
        api = settings.api_url
        self.territory = (
            ("railway", api, "project", settings.project_id)
            if settings.mode == "shared"
            else ("railway", api, "workspace", settings.workspace_id, settings.service_name_prefix)
        )

    @property
    def per_instance(self) -> bool:
        return self.settings.mode == "per-instance"

    def resource_name(self, instance_id: str) -> str:
        """Railway wants lower case and about 32 characters; instance ids are [0-9a-z]{12}."""
        name = f"{self.settings.service_name_prefix}{instance_id}".lower()
        if len(name) > NAME_LIMIT:
            raise PermanentError(f"railway name {name!r} is longer than {NAME_LIMIT} characters")
        return name

    async def _shared_environment_id(self) -> str:
        if self._environment_id is None:
            self._environment_id = await self.client.project_environment_id(self.settings.project_id)
        return self._environment_id

    async def create(self, spec: InstanceSpec, on_progress: ProgressCallback) -> PlatformRef:
        name = self.resource_name(spec.instance_id)
        ref = PlatformRef(provider=self.name)
        view = RailwayRef(mode=self.settings.mode)
        try:
            await self._create(spec, name, ref, view, on_progress)
        except Exception:
            # Roll back whatever exists; the ref already persisted lets destroy finish it after a crash.
            with contextlib.suppress(Exception):
                await self.destroy(view.write(ref))
            raise
        log.info("railway.instance.created", instance_id=spec.instance_id, service_id=view.service_id)
        return ref

    async def _create(
        self, spec: InstanceSpec, name: str, ref: PlatformRef, view: RailwayRef, on_progress: ProgressCallback
    ) -> None:
        settings = self.settings
        if self.per_instance:
            project = await self.client.project_create(name, settings.workspace_id or None)
            view.project_id, view.environment_id = project.id, project.environment_id
            await on_progress(view.write(ref))
        else:
            view.project_id = settings.project_id
            view.environment_id = await self._shared_environment_id()
        assert view.project_id and view.environment_id
        service = await self.client.service_create(view.project_id, view.environment_id, name)
        view.service_id = service.id
        await on_progress(view.write(ref))
        volume = await self.client.volume_create(
            view.project_id,
            view.environment_id,
            service.id,
            settings.volume_mount_path,
            settings.region or None,
        )
        view.volume_id = volume.id
        await on_progress(view.write(ref))
        domain = await self.client.service_domain_create(
            view.environment_id, service.id, settings.target_port
        )
        view.domain, view.domain_id = domain.domain, domain.id
        ref.url = f"{settings.public_scheme}://{domain.domain}"
        await on_progress(view.write(ref))
        patch = self._service_patch(service.id, spec)
        await self.client.environment_patch_commit(view.environment_id, patch, f"create {name}")

    def _service_patch(self, service_id: str, spec: InstanceSpec) -> dict[str, Any]:
        variables = {"PORT": str(self.settings.target_port), **spec.env, "INSTANCE_ID": spec.instance_id}
        config: dict[str, Any] = {
            "source": {"image": spec.image or self.settings.default_image},
            "variables": {key: {"value": value} for key, value in variables.items()},
        }
        if self.settings.start_command:
            config["deploy"] = {"startCommand": self.settings.start_command}
        return {"services": {service_id: config}}

    async def status_many(self, refs: dict[str, PlatformRef], *, listing: bool = True) -> FleetSnapshot:
        """Each instance is observed the way its mode needs; a fleet mid-way through a change of
        `RAILWAY_MODE` pays for both kinds of query, never one query per instance. Without
        `listing`, only the given instances are asked about (batched), and no orphans found."""
        prefix = self.settings.service_name_prefix
        shared = {
            key: ref for key, ref in refs.items() if self._mode_of(RailwayRef.of(ref)) != "per-instance"
        }
        separate = {key: ref for key, ref in refs.items() if key not in shared}
        snapshot = FleetSnapshot(states={})
        if not listing:
            if separate:
                _merge(snapshot, await per_instance_status(self.client, separate, prefix, listing=False))
            if shared:
                _merge(snapshot, await shared_status_of(self.client, shared))
            return snapshot
        if separate or self.per_instance:
            part = await per_instance_status(self.client, separate, prefix, find_orphans=self.per_instance)
            _merge(snapshot, part)
        if shared or not self.per_instance:
            environment_id = None if self.per_instance else await self._shared_environment_id()
            _merge(snapshot, await shared_status(self.client, shared, environment_id, prefix))
        return snapshot

    async def destroy(self, ref: PlatformRef) -> bool:
        view = RailwayRef.of(ref)
        if self._mode_of(view) == "per-instance":
            if not view.project_id:
                return False
            return await _gone_is_false(self.client.project_delete(view.project_id))
        existed = False
        if view.volume_id:
            # Volumes first: deleting the service alone leaves its volume behind (and billed).
            existed = await _gone_is_false(self.client.volume_delete(view.volume_id))
        if view.service_id:
            environment_id = view.environment_id or self.settings.environment_id or None
            existed = (
                await _gone_is_false(self.client.service_delete(view.service_id, environment_id)) or existed
            )
        return existed

    async def destroy_orphan(self, orphan: PlatformOrphanRef) -> bool:
        """A project (per-instance mode) or a service of the shared environment, named by us.

        The name is checked again here, whoever built the orphan: only `<prefix><instance id>`
        is ours, and the configured shared project is never deleted whatever its name.
        """
        prefix = self.settings.service_name_prefix
        if orphan.instance_id is None or orphan_instance_id(orphan.name, prefix) != orphan.instance_id:
            raise PermanentError(f"railway {orphan.kind} {orphan.name!r} is not named by us; left alone")
        if orphan.kind == "project":
            if orphan.ref == self.settings.project_id:
                raise PermanentError("the configured shared project is never deleted as an orphan")
            view = RailwayRef(mode="per-instance", project_id=orphan.ref)
            return await self.destroy(view.write(PlatformRef(provider=self.name)))
        if orphan.kind != "service":
            raise PermanentError(f"railway has no orphans of kind {orphan.kind!r}")
        environment_id = await self._shared_environment_id()
        existed = False
        # Volumes first, as in `destroy`: the service's deletion leaves them behind (and billed).
        for volume_id in await self.client.service_volume_ids(environment_id, orphan.ref):
            existed = await _gone_is_false(self.client.volume_delete(volume_id)) or existed
        deleted = await _gone_is_false(self.client.service_delete(orphan.ref, environment_id))
        return deleted or existed

    def orphan_match(self, orphan: PlatformOrphanRef) -> dict[str, Any]:
        """A project orphan is recorded by a ref naming that project, a service by one naming it."""
        return {"project_id": orphan.ref} if orphan.kind == "project" else {"service_id": orphan.ref}

    async def configure(self, ref: PlatformRef, variables: dict[str, str], *, redeploy: bool) -> None:
        project_id, environment_id, service_id = await self._locate(ref)
        await self.client.variables_upsert(project_id, environment_id, service_id, variables, deploy=redeploy)

    async def redeploy(self, ref: PlatformRef, *, image: str | None) -> DeployState | None:
        _, environment_id, service_id = await self._locate(ref)
        if image:
            patch = {"services": {service_id: {"source": {"image": image}}}}
            await self.client.environment_patch_commit(environment_id, patch, f"roll to {image}")
        else:
            # Deploys the service's current configuration: the configured image and variables.
            await self.client.service_instance_deploy(service_id, environment_id)
        # Both calls queue a fresh deployment; the next status observation follows it.
        return "pending"

    async def _locate(self, ref: PlatformRef) -> tuple[str, str, str]:
        """(project, environment, service) from the ref, whichever mode created it."""
        view = RailwayRef.of(ref)
        if not view.service_id:
            raise PermanentError("instance has no Railway service yet")
        if self._mode_of(view) == "per-instance":
            if not (view.project_id and view.environment_id):
                raise PermanentError("per-instance Railway ref lacks its project or environment")
            return view.project_id, view.environment_id, view.service_id
        project_id = view.project_id or self.settings.project_id
        environment_id = view.environment_id or await self._shared_environment_id()
        return project_id, environment_id, view.service_id

    def parse_event(self, body: Any) -> DeployEvent | None:
        return parse_event(body, self.settings)

    async def subscribe_events(self, url: str) -> str:
        return await self._events.ensure_rule(url)

    async def missed_events(self, since: datetime) -> list[DeployEvent]:
        return await self._events.missed(since)

    def _mode_of(self, view: RailwayRef) -> str:
        # An instance keeps the mode it was created in, even if the setting changed since.
        return view.mode or self.settings.mode

    async def aclose(self) -> None:
        """The HTTP client belongs to the app that passed it in; nothing else holds resources."""


def _merge(into: FleetSnapshot, part: FleetSnapshot) -> None:
    into.states.update(part.states)
    into.orphans.extend(part.orphans)
    into.api_calls += part.api_calls


async def _gone_is_false(call: Any) -> bool:
    try:
        await call
    except RailwayNotFound:
        return False
    return True


def build_railway_platform(
    settings: Settings, http_client: httpx.AsyncClient, context: BuildContext | None = None
) -> RailwayPlatform:
    """Built by services' platform registry; Railway's own settings come from `RAILWAY_*`, and a
    platform's `settings` in SERVICES_PLATFORMS override them by field name (`{"mode": ...}`)."""
    overrides = dict(context.config.settings) if context else {}
    unknown = sorted(set(overrides) - set(RailwaySettings.model_fields))
    if unknown:
        name = context.config.name if context else "railway"
        raise ValueError(f"platform {name!r}: unknown railway settings {', '.join(unknown)}")
    railway = RailwaySettings(**overrides)
    if "default_image" not in railway.model_fields_set:
        railway = railway.model_copy(update={"default_image": settings.runtime_image})
    budget = shared_budget(context.shared, railway) if context else None
    return RailwayPlatform(railway, http_client, budget=budget)
