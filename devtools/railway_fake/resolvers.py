"""Root fields the fake implements. Any other field answers Railway's generic error.

Messages are Railway's (specs/railway.md §3): "Project not found", "ServiceInstance not found",
"You are creating projects too quickly", "Problem processing request", ...

Here: the queries and the mutations that create and delete projects, services, volumes and
domains. The mutations that configure and deploy a service instance are in `deploy_mutations.py`,
the notification rules' in `notification_views.py`.
"""

from __future__ import annotations

import re
from typing import Any

from devtools.railway_fake.context import (
    Context,
    Resolver,
    fail,
    live_environment,
    live_instance,
    live_project,
    live_service,
)
from devtools.railway_fake.deploy_mutations import (
    m_environment_patch_commit,
    m_service_instance_deploy_v2,
    m_service_instance_redeploy,
    m_variable_collection_upsert,
)

# bench/warmup.py swaps this module's `free_port` for the fleet's ports: serviceDomainCreate stays here.
from devtools.railway_fake.deploys import free_port
from devtools.railway_fake.notification_views import (
    m_notification_rule_create,
    m_notification_rule_delete,
    q_notification_deliveries,
    q_notification_rules,
)
from devtools.railway_fake.store import Domain, Volume, VolumeInstance, new_id
from devtools.railway_fake.views import connection

SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


# Queries


def q_project(ctx: Context, args: dict[str, Any]) -> Any:
    return ctx.fake.views.project(live_project(ctx, args["id"]))


def q_projects(ctx: Context, args: dict[str, Any]) -> Any:
    workspace = args.get("workspaceId")
    projects = [
        p
        for p in ctx.fake.store.projects.values()
        if (args.get("includeDeleted") or not p.deleted_at) and (not workspace or p.workspace_id == workspace)
    ]
    paging = {k: args.get(k) for k in ("first", "after", "last", "before")}
    return connection(projects, ctx.fake.views.project, **paging)


def q_environment(ctx: Context, args: dict[str, Any]) -> Any:
    environment = live_environment(ctx, args["id"])
    if args.get("projectId") and environment.project_id != args["projectId"]:
        raise fail("Environment not found")
    return ctx.fake.views.environment(environment)


def q_environments(ctx: Context, args: dict[str, Any]) -> Any:
    environments = ctx.fake.store.live_environments(live_project(ctx, args["projectId"]).id)
    paging = {k: args.get(k) for k in ("first", "after", "last", "before")}
    return connection(environments, ctx.fake.views.environment, **paging)


def q_service_instance(ctx: Context, args: dict[str, Any]) -> Any:
    return ctx.fake.views.service_instance(live_instance(ctx, args["serviceId"], args["environmentId"]))


def q_deployment(ctx: Context, args: dict[str, Any]) -> Any:
    deployment = ctx.fake.store.deployments.get(args["id"])
    if deployment is None:
        raise fail("Deployment not found")
    return ctx.fake.views.deployment(deployment)


def q_variables(ctx: Context, args: dict[str, Any]) -> Any:
    if not args.get("serviceId"):
        return {}
    return dict(live_instance(ctx, args["serviceId"], args["environmentId"]).variables)


# Mutations


def m_project_create(ctx: Context, args: dict[str, Any]) -> Any:
    fake, spec = ctx.fake, args["input"]
    if not fake.throttle_allows("project", ctx.token):
        raise fail("You are creating projects too quickly")
    name = spec.get("name") or f"project-{new_id()[:8]}"
    env_name = spec.get("defaultEnvironmentName") or "production"
    project = fake.store.create_project(name, spec.get("workspaceId"), ctx.token, env_name)
    return fake.views.project(project)


async def m_project_delete(ctx: Context, args: dict[str, Any]) -> bool:
    project = live_project(ctx, args["id"])
    for service in ctx.fake.store.live_services(project.id):
        await ctx.fake.deploys.stop_service(service.id)
    ctx.fake.store.delete_project(project.id)
    return True


def m_service_create(ctx: Context, args: dict[str, Any]) -> Any:
    fake, spec = ctx.fake, args["input"]
    project = live_project(ctx, spec["projectId"])
    name = spec.get("name") or f"service-{new_id()[:8]}"
    if not SERVICE_NAME.match(name):
        raise fail("Invalid service name")
    live = fake.store.live_services(project.id)
    if any(s.name == name for s in live):
        raise fail(f"Service {name} already exists in this project")
    if len(live) >= fake.settings.services_per_project:
        limit = fake.settings.services_per_project
        raise fail(f"Project has reached the maximum number of services ({limit})")
    if spec.get("environmentId"):
        environment_ids = [live_environment(ctx, spec["environmentId"]).id]
    else:
        environment_ids = [e.id for e in fake.store.live_environments(project.id)]
    service = fake.store.create_service(project.id, environment_ids, name)
    source = spec.get("source") or {}
    for environment_id in environment_ids:
        instance = fake.store.instances[(service.id, environment_id)]
        instance.variables.update(spec.get("variables") or {})
        if source.get("image"):
            # A service created with a source deploys at once, before anything else is configured.
            instance.image = source["image"]
            fake.deploys.start(instance)
    return fake.views.service(service)


async def m_service_delete(ctx: Context, args: dict[str, Any]) -> bool:
    service = live_service(ctx, args["id"])
    await ctx.fake.deploys.stop_service(service.id)
    ctx.fake.store.delete_service(service.id)
    return True


def m_volume_create(ctx: Context, args: dict[str, Any]) -> Any:
    fake, spec = ctx.fake, args["input"]
    project = live_project(ctx, spec["projectId"])
    if not fake.throttle_allows("volume", ctx.token):
        raise fail("You are creating volumes too quickly")
    service_id = spec.get("serviceId")
    prefix = live_service(ctx, service_id).name if service_id else "volume"
    volume = Volume(new_id(), project.id, f"{prefix}-volume")
    fake.store.volumes[volume.id] = volume
    if "environmentId" in spec:
        environment_ids = [live_environment(ctx, spec["environmentId"]).id] if spec["environmentId"] else []
    else:
        environment_ids = [e.id for e in fake.store.live_environments(project.id)]
    for environment_id in environment_ids:
        instance = VolumeInstance(new_id(), volume.id, service_id, environment_id, spec["mountPath"])
        fake.store.volume_instances[instance.id] = instance
    return fake.views.volume(volume)


def m_volume_delete(ctx: Context, args: dict[str, Any]) -> bool:
    volume = ctx.fake.store.volumes.get(args["volumeId"])
    if volume is None or volume.deleted_at:
        raise fail("Volume not found")
    ctx.fake.store.delete_volume(volume.id)
    return True


def m_service_domain_create(ctx: Context, args: dict[str, Any]) -> Any:
    fake, spec = ctx.fake, args["input"]
    instance = live_instance(ctx, spec["serviceId"], spec["environmentId"])
    existing = fake.store.service_domain(instance.service_id, instance.environment_id)
    if existing is not None:
        return fake.views.domain(existing)
    service = fake.store.services[instance.service_id]
    # Stands in for `<name>.up.railway.app`: the loopback port the deployment will listen on.
    port = free_port()
    domain = Domain(
        new_id(),
        service.project_id,
        service.id,
        instance.environment_id,
        f"127.0.0.1:{port}",
        spec.get("targetPort"),
        port,
    )
    fake.store.add_domain(domain)
    return fake.views.domain(domain)


QUERY: dict[str, Resolver] = {
    "project": q_project,
    "projects": q_projects,
    "environment": q_environment,
    "environments": q_environments,
    "serviceInstance": q_service_instance,
    "deployment": q_deployment,
    "variables": q_variables,
    "notificationRules": q_notification_rules,
    "notificationDeliveries": q_notification_deliveries,
}

MUTATION: dict[str, Resolver] = {
    "projectCreate": m_project_create,
    "projectDelete": m_project_delete,
    "serviceCreate": m_service_create,
    "serviceDelete": m_service_delete,
    "volumeCreate": m_volume_create,
    "volumeDelete": m_volume_delete,
    "serviceDomainCreate": m_service_domain_create,
    "environmentPatchCommit": m_environment_patch_commit,
    "variableCollectionUpsert": m_variable_collection_upsert,
    "serviceInstanceDeployV2": m_service_instance_deploy_v2,
    "serviceInstanceRedeploy": m_service_instance_redeploy,
    "notificationRuleCreate": m_notification_rule_create,
    "notificationRuleDelete": m_notification_rule_delete,
}
