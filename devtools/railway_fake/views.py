"""Store rows as GraphQL values: dicts read by graphql-core's default resolver.

A callable value is called with the field's arguments, which is how connection fields
(`services(first:, after:)`) page lazily instead of building every edge up front.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from graphql import GraphQLError

from devtools.railway_fake.store import (
    Deployment,
    Domain,
    Environment,
    Project,
    Service,
    ServiceInstance,
    Store,
    Volume,
    VolumeInstance,
)

PROBLEM = "Problem processing request"


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def connection(items: Sequence[Any], view: Callable[[Any], dict[str, Any]], **args: Any) -> dict[str, Any]:
    """A Relay connection over `items` (each with an `.id`), paged by `first`/`after`."""
    if args.get("last") is not None or args.get("before") is not None:
        raise GraphQLError(PROBLEM)
    start = 0
    if args.get("after"):
        ids = [item.id for item in items]
        if args["after"] not in ids:
            raise GraphQLError(PROBLEM)
        start = ids.index(args["after"]) + 1
    first = args.get("first")
    end = len(items) if first is None else min(len(items), start + max(0, first))
    page = items[start:end]
    return {
        "edges": [{"cursor": item.id, "node": view(item)} for item in page],
        "pageInfo": {
            "hasNextPage": end < len(items),
            "hasPreviousPage": start > 0,
            "startCursor": page[0].id if page else None,
            # Like Railway, the last page still names a cursor: clients must stop on hasNextPage.
            "endCursor": page[-1].id if page else (items[-1].id if items else None),
        },
    }


class Views:
    def __init__(self, store: Store) -> None:
        self.store = store

    def project(self, p: Project) -> dict[str, Any]:
        store = self.store
        return {
            "id": p.id,
            "name": p.name,
            "description": None,
            "createdAt": iso(p.created_at),
            "updatedAt": iso(p.created_at),
            "deletedAt": iso(p.deleted_at),
            "workspaceId": p.workspace_id,
            "isPublic": False,
            "environments": lambda _info, **a: connection(
                store.live_environments(p.id), self.environment, **a
            ),
            "services": lambda _info, **a: connection(store.live_services(p.id), self.service, **a),
            "volumes": lambda _info, **a: connection(
                [v for v in store.volumes.values() if v.project_id == p.id], self.volume, **a
            ),
        }

    def environment(self, e: Environment) -> dict[str, Any]:
        return {
            "id": e.id,
            "name": e.name,
            "projectId": e.project_id,
            "isEphemeral": False,
            "createdAt": iso(e.created_at),
            "updatedAt": iso(e.created_at),
            "deletedAt": iso(e.deleted_at),
            "serviceInstances": lambda _info, **a: connection(
                self.store.environment_instances(e.id), self.service_instance, **a
            ),
            # Soft-deleted volumes stay listed (isPendingDeletion) until Railway purges them.
            "volumeInstances": lambda _info, **a: connection(
                [v for v in self.store.volume_instances.values() if v.environment_id == e.id],
                self.volume_instance,
                **a,
            ),
        }

    def service(self, s: Service) -> dict[str, Any]:
        instances = [i for (sid, _), i in self.store.instances.items() if sid == s.id and not i.deleted_at]
        return {
            "id": s.id,
            "name": s.name,
            "projectId": s.project_id,
            "createdAt": iso(s.created_at),
            "updatedAt": iso(s.created_at),
            "deletedAt": iso(s.deleted_at),
            "icon": None,
            "serviceInstances": lambda _info, **a: connection(instances, self.service_instance, **a),
            "deployments": lambda _info, **a: connection(
                list(reversed(self.store.service_deployments(s.id))), self.deployment, **a
            ),
        }

    def service_instance(self, i: ServiceInstance) -> dict[str, Any]:
        store = self.store
        service = store.services[i.service_id]
        domain = store.service_domain(i.service_id, i.environment_id)
        latest = store.latest_deployment(i.service_id, i.environment_id)
        return {
            "id": i.id,
            "serviceId": i.service_id,
            "serviceName": service.name,
            "environmentId": i.environment_id,
            "createdAt": iso(i.created_at),
            "updatedAt": iso(i.created_at),
            "deletedAt": iso(i.deleted_at),
            "source": {"image": i.image, "repo": None} if i.image else None,
            "startCommand": i.start_command,
            "latestDeployment": self.deployment(latest) if latest else None,
            "domains": {"serviceDomains": [self.domain(domain)] if domain else [], "customDomains": []},
        }

    def deployment(self, d: Deployment) -> dict[str, Any]:
        domain = self.store.service_domain(d.service_id, d.environment_id)
        return {
            "id": d.id,
            "status": d.status,
            "createdAt": iso(d.created_at),
            "updatedAt": iso(d.updated_at),
            "statusUpdatedAt": iso(d.updated_at),
            "projectId": d.project_id,
            "serviceId": d.service_id,
            "environmentId": d.environment_id,
            "staticUrl": domain.domain if domain else None,
            "url": domain.domain if domain else None,
            "canRedeploy": True,
        }

    def domain(self, d: Domain) -> dict[str, Any]:
        return {
            "id": d.id,
            "domain": d.domain,
            "suffix": None,
            "targetPort": d.target_port,
            "environmentId": d.environment_id,
            "serviceId": d.service_id,
            "projectId": d.project_id,
            "syncStatus": "ACTIVE",
            "createdAt": iso(d.created_at),
        }

    def volume(self, v: Volume) -> dict[str, Any]:
        instances = [i for i in self.store.volume_instances.values() if i.volume_id == v.id]
        return {
            "id": v.id,
            "name": v.name,
            "projectId": v.project_id,
            "createdAt": iso(v.created_at),
            "volumeInstances": lambda _info, **a: connection(instances, self.volume_instance, **a),
        }

    def volume_instance(self, i: VolumeInstance) -> dict[str, Any]:
        return {
            "id": i.id,
            "volumeId": i.volume_id,
            "serviceId": i.service_id,
            "environmentId": i.environment_id,
            "mountPath": i.mount_path,
            "state": "DELETING" if i.pending_deletion else "READY",
            "isPendingDeletion": i.pending_deletion,
            "deletedAt": iso(i.deleted_at),
        }
