"""Observing the fleet in O(pages) calls (DESIGN.md §7).

Shared mode: one environment holds every service; its `serviceInstances` connection is read page
by page until `hasNextPage` is false. Per-instance mode: one `projects` listing (which also finds
orphans and projects deleted behind our back), then aliased batches of `environment(...)` fields.

Without the listing (`listing=False`: a tick observing the few instances that can have changed,
or an event's one instance), each mode asks about the given instances only, in aliased batches
(`serviceInstance(...)` per service in shared mode, `environment(...)` per project in
per-instance mode): one call per `status_batch_size` instances, no orphans. An instance the
platform no longer has drops out of its batch and reads as `missing`, as when a listing leaves
it out.
Railway's deployment words are mapped onto the neutral deploy state here, and nowhere else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.platforms.base import FleetSnapshot, PlatformOrphanRef, PlatformRef, PlatformState
from services.platforms.railway.batch import ENVIRONMENTS, SERVICE_INSTANCES, Unit, alias, batch_variables
from services.platforms.railway.client import CallStats, RailwayClient
from services.platforms.railway.errors import (
    RailwayNotFound,
    RailwayRetryable,
    RailwayUnauthorized,
    error_alias,
)
from services.platforms.railway.ref import RailwayRef
from shared.ids import is_instance_id
from shared.schemas import DeployState

# Railway's DeploymentStatus (specs/railway.md) onto the neutral state (DESIGN.md §5, §9).
DEPLOY_STATES: dict[str, DeployState] = {
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
# A service absent from its listing was probably deleted behind our back, but one listing is not
# proof (a fresh service may not be listed yet, an entry may fall between pages): the pool needs
# several such observations in a row before it gives the instance up.
ABSENT: DeployState = "missing"
# Projects deleted between the listing and the batch are rare; many at once means something else.
MAX_DROPS_PER_BATCH = 5


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def orphan_instance_id(name: str, prefix: str) -> str | None:
    """The instance id in a name we gave (`<prefix><instance id>`); None for any other name."""
    rest = name[len(prefix) :] if name.startswith(prefix) else ""
    return rest if is_instance_id(rest) else None


def _orphan(kind: str, node_id: str, name: str, created_at: str | None, prefix: str) -> PlatformOrphanRef:
    return PlatformOrphanRef(
        ref=node_id,
        name=name,
        created_at=_parse_time(created_at),
        kind=kind,
        instance_id=orphan_instance_id(name, prefix),
    )


def deploy_state(word: str | None) -> DeployState | None:
    """None (no deployment recorded) stays None: the pool then trusts the health probe. A word
    Railway adds later is `unknown`, which the pool treats as a deploy in progress."""
    return None if word is None else DEPLOY_STATES.get(word, "unknown")


def _latest_status(node: dict[str, Any]) -> DeployState | None:
    deployment = node.get("latestDeployment")
    return deploy_state(str(deployment["status"])) if deployment else None


def _state(ref: PlatformRef, observed: dict[str, DeployState | None]) -> PlatformState:
    service_id = RailwayRef.of(ref).service_id
    if not service_id:
        return PlatformState(deploy_status=None, url=ref.url)
    if service_id not in observed:
        return PlatformState(deploy_status=ABSENT, url=ref.url)
    return PlatformState(deploy_status=observed[service_id], url=ref.url)


async def shared_status(
    client: RailwayClient, refs: dict[str, PlatformRef], environment_id: str | None, prefix: str
) -> FleetSnapshot:
    """Orphans are looked for in `environment_id` (the configured shared environment), if given."""
    stats = CallStats()
    views = [RailwayRef.of(ref) for ref in refs.values()]
    known = {view.service_id for view in views if view.service_id}
    environments = {view.environment_id for view in views if view.environment_id}
    if environment_id:
        environments.add(environment_id)
    observed: dict[str, DeployState | None] = {}
    orphans: list[PlatformOrphanRef] = []
    for env_id in sorted(environments):
        after: str | None = None
        while True:
            variables = {"environmentId": env_id, "first": client.settings.page_size, "after": after}
            data = await client.execute("EnvironmentServiceInstances", variables, stats=stats)
            connection = data["environment"]["serviceInstances"]
            for edge in connection["edges"]:
                node = edge["node"]
                observed[node["serviceId"]] = _latest_status(node)
                orphan = node["serviceId"] not in known and node["serviceName"].startswith(prefix)
                if orphan and env_id == environment_id:
                    orphans.append(
                        _orphan("service", node["serviceId"], node["serviceName"], node["createdAt"], prefix)
                    )
            # The last page still carries an endCursor, so only hasNextPage ends the walk.
            if not connection["pageInfo"]["hasNextPage"]:
                break
            after = connection["pageInfo"]["endCursor"]
    states = {instance_id: _state(ref, observed) for instance_id, ref in refs.items()}
    return FleetSnapshot(states=states, orphans=orphans, api_calls=stats.calls)


async def _list_projects(client: RailwayClient, stats: CallStats) -> dict[str, dict[str, Any]]:
    projects: dict[str, dict[str, Any]] = {}
    after: str | None = None
    while True:
        variables = {
            "workspaceId": client.settings.workspace_id or None,
            "first": client.settings.page_size,
            "after": after,
        }
        data = await client.execute("Projects", variables, stats=stats)
        connection = data["projects"]
        for edge in connection["edges"]:
            projects[edge["node"]["id"]] = edge["node"]
        if not connection["pageInfo"]["hasNextPage"]:
            return projects
        after = connection["pageInfo"]["endCursor"]


async def _observe_batch(
    client: RailwayClient, unit: Unit, pairs: list[tuple[str, str]], stats: CallStats
) -> dict[str, DeployState | None]:
    """Deploy status by service id for one aliased batch of `unit`. An alias whose project or
    service is gone since it was recorded drops out and the batch is asked again without it
    (every root field is non-null, so one missing field nulls the whole answer)."""
    observed: dict[str, DeployState | None] = {}
    pending = list(pairs)
    for _ in range(MAX_DROPS_PER_BATCH + 1):
        if not pending:
            break
        try:
            data = await client.execute(
                unit.operation, batch_variables(pending), document=unit.document(len(pending)), stats=stats
            )
        except (RailwayNotFound, RailwayUnauthorized) as exc:
            failed = error_alias(exc)
            indexes = [i for i in range(len(pending)) if alias(i) == failed]
            if not indexes or len(pending) == 1 and isinstance(exc, RailwayUnauthorized):
                raise
            del pending[indexes[0]]
            continue
        for index in range(len(pending)):
            field = data[alias(index)]
            nodes = (
                [e["node"] for e in field["serviceInstances"]["edges"]] if unit is ENVIRONMENTS else [field]
            )
            for node in nodes:
                observed[node["serviceId"]] = _latest_status(node)
        return observed
    if pending:
        raise RailwayRetryable(f"railway {unit.operation}: too many instances vanished mid-tick")
    return observed


async def _observe_batches(
    client: RailwayClient, unit: Unit, pairs: list[tuple[str, str]], stats: CallStats
) -> dict[str, DeployState | None]:
    observed: dict[str, DeployState | None] = {}
    size = client.settings.status_batch_size
    for start in range(0, len(pairs), size):
        observed.update(await _observe_batch(client, unit, pairs[start : start + size], stats))
    return observed


async def shared_status_of(client: RailwayClient, refs: dict[str, PlatformRef]) -> FleetSnapshot:
    """Shared mode without the listing: the given instances only, no orphans."""
    stats = CallStats()
    views = [RailwayRef.of(ref) for ref in refs.values()]
    pairs = [(v.environment_id, v.service_id) for v in views if v.environment_id and v.service_id]
    observed = await _observe_batches(client, SERVICE_INSTANCES, pairs, stats)
    states = {instance_id: _state(ref, observed) for instance_id, ref in refs.items()}
    return FleetSnapshot(states=states, api_calls=stats.calls)


async def per_instance_status(
    client: RailwayClient,
    refs: dict[str, PlatformRef],
    prefix: str,
    *,
    find_orphans: bool = True,
    listing: bool = True,
) -> FleetSnapshot:
    """With `listing`, the projects are listed first (orphans, projects deleted behind our
    back); without, the given projects are asked about directly."""
    stats = CallStats()
    views = [RailwayRef.of(ref) for ref in refs.values()]
    orphans: list[PlatformOrphanRef] = []
    live = [view for view in views if view.project_id and view.environment_id and view.service_id]
    if listing:
        projects = await _list_projects(client, stats)
        known_projects = {view.project_id for view in views}
        orphans = [
            _orphan("project", project["id"], project["name"], project["createdAt"], prefix)
            for project in projects.values()
            if find_orphans and project["id"] not in known_projects and project["name"].startswith(prefix)
        ]
        live = [view for view in live if view.project_id in projects]
    pairs = [(view.environment_id or "", view.project_id or "") for view in live]
    observed = await _observe_batches(client, ENVIRONMENTS, pairs, stats)
    states = {instance_id: _state(ref, observed) for instance_id, ref in refs.items()}
    return FleetSnapshot(states=states, orphans=orphans, api_calls=stats.calls)
