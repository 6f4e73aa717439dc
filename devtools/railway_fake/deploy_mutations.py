"""The mutations that change a service instance's configuration (image, start command, variables)
and start its deploys."""

from __future__ import annotations

from typing import Any

from devtools.railway_fake.context import Context, fail, live_environment, live_instance, live_project
from devtools.railway_fake.store import new_id
from devtools.railway_fake.views import PROBLEM


def _apply_variables(target: dict[str, str], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(value.get("value"), str):
            target[key] = value["value"]
        else:
            raise fail(PROBLEM)


def m_environment_patch_commit(ctx: Context, args: dict[str, Any]) -> str:
    fake = ctx.fake
    environment = live_environment(ctx, args["environmentId"])
    patch = args.get("patch") or {}
    services = patch.get("services") if isinstance(patch, dict) else None
    if not isinstance(services, dict):
        raise fail(PROBLEM)
    touched = []
    for service_id, config in services.items():
        instance = live_instance(ctx, service_id, environment.id)
        if not isinstance(config, dict):
            raise fail(PROBLEM)
        if (config.get("source") or {}).get("image"):
            instance.image = config["source"]["image"]
        if (config.get("deploy") or {}).get("startCommand") is not None:
            instance.start_command = config["deploy"]["startCommand"]
        _apply_variables(instance.variables, config.get("variables") or {})
        touched.append(instance)
    # The commit is atomic: every change lands before the one deploy per affected service starts.
    for instance in touched:
        if instance.image:
            fake.deploys.start(instance)
    return new_id()


def m_variable_collection_upsert(ctx: Context, args: dict[str, Any]) -> bool:
    spec = args["input"]
    live_project(ctx, spec["projectId"])
    if not spec.get("serviceId"):
        raise fail(PROBLEM)
    instance = live_instance(ctx, spec["serviceId"], spec["environmentId"])
    if spec.get("replace"):
        instance.variables.clear()
    instance.variables.update(spec["variables"])
    if not spec.get("skipDeploys") and instance.image:
        ctx.fake.deploys.start(instance)
    return True


def m_service_instance_deploy_v2(ctx: Context, args: dict[str, Any]) -> str:
    instance = live_instance(ctx, args["serviceId"], args["environmentId"])
    if not instance.image:
        raise fail(PROBLEM)
    return ctx.fake.deploys.start(instance).id


def m_service_instance_redeploy(ctx: Context, args: dict[str, Any]) -> bool:
    m_service_instance_deploy_v2(ctx, args)
    return True
