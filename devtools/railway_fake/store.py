"""The fake's in-memory Railway: projects, environments, services and their instances, deployments,
volumes, domains and variables. Deletes are soft, as on Railway: rows keep a `deleted_at`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# Railway keeps a deleted volume for about 48 h before it is really gone (specs/railway.md §7).
VOLUME_DELETE_GRACE = timedelta(hours=48)


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Project:
    id: str
    name: str
    workspace_id: str | None
    created_by: str
    created_at: datetime = field(default_factory=utcnow)
    deleted_at: datetime | None = None


@dataclass
class Environment:
    id: str
    project_id: str
    name: str
    created_at: datetime = field(default_factory=utcnow)
    deleted_at: datetime | None = None


@dataclass
class Service:
    id: str
    project_id: str
    name: str
    created_at: datetime = field(default_factory=utcnow)
    deleted_at: datetime | None = None


@dataclass
class ServiceInstance:
    """A service's configuration in one environment: source image, start command, variables."""

    id: str
    service_id: str
    environment_id: str
    image: str | None = None
    start_command: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    deleted_at: datetime | None = None


@dataclass
class Deployment:
    id: str
    project_id: str
    service_id: str
    environment_id: str
    status: str
    image: str | None
    variables: dict[str, str]
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    # Told of every status change (the fake's notification rules deliver events from it).
    on_move: Callable[[Deployment], None] | None = field(default=None, repr=False, compare=False)

    def move(self, status: str) -> None:
        self.status = status
        self.updated_at = utcnow()
        if self.on_move is not None:
            self.on_move(self)


@dataclass
class Volume:
    id: str
    project_id: str
    name: str
    created_at: datetime = field(default_factory=utcnow)
    deleted_at: datetime | None = None


@dataclass
class VolumeInstance:
    id: str
    volume_id: str
    service_id: str | None
    environment_id: str
    mount_path: str
    created_at: datetime = field(default_factory=utcnow)
    deleted_at: datetime | None = None
    pending_deletion: bool = False


@dataclass
class Domain:
    id: str
    project_id: str
    service_id: str
    environment_id: str
    domain: str
    target_port: int | None
    # The loopback port the fake routes this domain to (see fake/deploys.py).
    port: int
    created_at: datetime = field(default_factory=utcnow)
    deleted_at: datetime | None = None


@dataclass
class Store:
    projects: dict[str, Project] = field(default_factory=dict)
    environments: dict[str, Environment] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    instances: dict[tuple[str, str], ServiceInstance] = field(default_factory=dict)
    deployments: dict[str, Deployment] = field(default_factory=dict)
    volumes: dict[str, Volume] = field(default_factory=dict)
    volume_instances: dict[str, VolumeInstance] = field(default_factory=dict)
    domains: dict[str, Domain] = field(default_factory=dict)
    domain_index: dict[tuple[str, str], str] = field(default_factory=dict)
    environment_index: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # Newest last, per (service_id, environment_id).
    history: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    on_deployment_move: Callable[[Deployment], None] | None = None

    def create_project(self, name: str, workspace_id: str | None, token: str, env_name: str) -> Project:
        project = Project(new_id(), name, workspace_id, created_by=token)
        self.projects[project.id] = project
        environment = Environment(new_id(), project.id, env_name)
        self.environments[environment.id] = environment
        return project

    def live_environments(self, project_id: str) -> list[Environment]:
        return [e for e in self.environments.values() if e.project_id == project_id and not e.deleted_at]

    def live_services(self, project_id: str) -> list[Service]:
        return [s for s in self.services.values() if s.project_id == project_id and not s.deleted_at]

    def create_service(self, project_id: str, environment_ids: list[str], name: str) -> Service:
        service = Service(new_id(), project_id, name)
        self.services[service.id] = service
        for environment_id in environment_ids:
            key = (service.id, environment_id)
            self.instances[key] = ServiceInstance(new_id(), service.id, environment_id)
            self.environment_index.setdefault(environment_id, []).append(key)
        return service

    def environment_instances(self, environment_id: str) -> list[ServiceInstance]:
        keys = self.environment_index.get(environment_id, [])
        return [self.instances[key] for key in keys if not self.instances[key].deleted_at]

    def add_deployment(self, instance: ServiceInstance, status: str) -> Deployment:
        service = self.services[instance.service_id]
        deployment = Deployment(
            new_id(),
            service.project_id,
            instance.service_id,
            instance.environment_id,
            status,
            instance.image,
            dict(instance.variables),
            on_move=self.on_deployment_move,
        )
        self.deployments[deployment.id] = deployment
        self.history.setdefault((instance.service_id, instance.environment_id), []).append(deployment.id)
        return deployment

    def latest_deployment(self, service_id: str, environment_id: str) -> Deployment | None:
        ids = self.history.get((service_id, environment_id))
        return self.deployments[ids[-1]] if ids else None

    def service_deployments(self, service_id: str) -> list[Deployment]:
        return [d for d in self.deployments.values() if d.service_id == service_id]

    def delete_service(self, service_id: str) -> None:
        now = utcnow()
        self.services[service_id].deleted_at = now
        for (sid, _), instance in self.instances.items():
            if sid == service_id:
                instance.deleted_at = now
        for domain in self.domains.values():
            if domain.service_id == service_id:
                domain.deleted_at = now
        for deployment in self.service_deployments(service_id):
            if deployment.status != "REMOVED":
                deployment.move("REMOVED")

    def delete_volume(self, volume_id: str) -> None:
        for instance in self.volume_instances.values():
            if instance.volume_id == volume_id:
                instance.pending_deletion = True
                instance.deleted_at = utcnow() + VOLUME_DELETE_GRACE
        self.volumes[volume_id].deleted_at = utcnow()

    def delete_project(self, project_id: str) -> None:
        self.projects[project_id].deleted_at = utcnow()
        for service in self.live_services(project_id):
            self.delete_service(service.id)
        for volume in self.volumes.values():
            if volume.project_id == project_id and not volume.deleted_at:
                self.delete_volume(volume.id)
        for environment in self.live_environments(project_id):
            environment.deleted_at = utcnow()

    def volume_mount(self, service_id: str) -> VolumeInstance | None:
        for instance in self.volume_instances.values():
            if instance.service_id == service_id and not instance.pending_deletion:
                return instance
        return None

    def service_domain(self, service_id: str, environment_id: str) -> Domain | None:
        domain_id = self.domain_index.get((service_id, environment_id))
        domain = self.domains.get(domain_id) if domain_id else None
        return domain if domain and not domain.deleted_at else None

    def add_domain(self, domain: Domain) -> None:
        self.domains[domain.id] = domain
        self.domain_index[(domain.service_id, domain.environment_id)] = domain.id

    def leftovers(self) -> dict[str, list[str]]:
        """Everything still live: what a test of "destroy leaves nothing behind" asserts is empty."""
        return {
            "projects": [p.name for p in self.projects.values() if not p.deleted_at],
            "services": [s.name for s in self.services.values() if not s.deleted_at],
            "volumes": [v.id for v in self.volume_instances.values() if not v.pending_deletion],
            "domains": [d.domain for d in self.domains.values() if not d.deleted_at],
        }

    def seed(self, project: Project, environment_id: str, name: str, status: str = "SUCCESS") -> Any:
        """A service with one finished deployment, without running anything (for fleet-size tests)."""
        service = self.create_service(project.id, [environment_id], name)
        instance = self.instances[(service.id, environment_id)]
        instance.image = "ghcr.io/warmpool/runtime:seeded"
        self.add_deployment(instance, status)
        return service
