"""What every resolver takes (the fake and the caller's bearer token), and the lookups that answer
Railway's "... not found" for what is missing or deleted. A module of its own so each resolver module
can use them: `resolvers.py`, which holds the tables of root fields, imports the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError

if TYPE_CHECKING:
    from devtools.railway_fake.server import FakeRailway


@dataclass
class Context:
    fake: FakeRailway
    token: str


Resolver = Callable[[Context, dict[str, Any]], Any]


def fail(message: str) -> GraphQLError:
    return GraphQLError(message)


def _live(found: Any, kind: str) -> Any:
    if found is None or found.deleted_at:
        raise fail(f"{kind} not found")
    return found


def live_project(ctx: Context, project_id: str | None) -> Any:
    return _live(ctx.fake.store.projects.get(project_id or ""), "Project")


def live_service(ctx: Context, service_id: str) -> Any:
    return _live(ctx.fake.store.services.get(service_id), "Service")


def live_instance(ctx: Context, service_id: str, environment_id: str) -> Any:
    return _live(ctx.fake.store.instances.get((service_id, environment_id)), "ServiceInstance")


def live_environment(ctx: Context, environment_id: str) -> Any:
    return _live(ctx.fake.store.environments.get(environment_id), "Environment")
