"""Railway's GraphQL API through gql: one method per operation, each in `operations/<Name>.graphql`.

gql validates every document against Railway's published schema (`schema.graphqls`, bundled with
the provider) before sending it, and sends it over the app's httpx client with
`RAILWAY_TIMEOUT_SECONDS` stated on the call (that client's own default is a 2 s probe timeout).

Retry policy (STYLE.md §6), one for Railway, from `RAILWAY_MAX_ATTEMPTS`, `RAILWAY_BACKOFF_SECONDS`
and `RAILWAY_MAX_RETRY_AFTER_SECONDS`: a 429 is retried after its `Retry-After`; a "too quickly"
answer is retried at once on the token whose cooldown ends first; transport errors, 5xx and
Railway's generic "Problem processing request" are retried with exponential backoff, but only for
operations that are safe to repeat (reads and deletes). A creating mutation is never re-sent after
an answer we did not see, since Railway has no idempotency keys; the caller rolls back instead.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportError, TransportQueryError
from graphql import GraphQLError
from pydantic import BaseModel

from services.platforms.railway.errors import (
    RailwayRateLimited,
    RailwayRejected,
    RailwayRetryable,
    RailwayThrottled,
    RailwayUnauthorized,
    error_from_graphql,
)
from services.platforms.railway.limits import Budget, CreateKind, RateLimiter, TokenPool, shared_budget
from services.platforms.railway.operations import operation
from services.platforms.railway.settings import RailwaySettings
from services.platforms.railway.transport import AppClientTransport, HttpStatus, Request, SchemaClient
from shared.http import call_timeout
from shared.logging import get_logger, register_secret
from shared.retry import RetryPolicy

log = get_logger("services.railway")


@dataclass
class CallStats:
    calls: int = 0


class CreatedProject(BaseModel):
    id: str
    environment_id: str


class CreatedResource(BaseModel):
    id: str
    name: str = ""


class CreatedDomain(BaseModel):
    id: str
    domain: str


def without_none(value: Any) -> Any:
    """Railway reads an explicit null as "unset this field", so optional inputs are omitted instead."""
    if isinstance(value, dict):
        return {key: without_none(item) for key, item in value.items() if item is not None}
    return value


class RailwayClient:
    name = "railway"

    def __init__(
        self, settings: RailwaySettings, client: httpx.AsyncClient, *, budget: Budget | None = None
    ) -> None:
        self.settings = settings
        for token in settings.tokens:
            register_secret(token)
        # gql's transport logs whole request bodies at DEBUG, and variables carry instance secrets.
        logging.getLogger("gql.transport.httpx").setLevel(logging.WARNING)
        # Another platform on the same tokens may share the budget (limits.shared_budget).
        budget = budget or shared_budget({}, settings)
        self.tokens: TokenPool = budget.tokens
        self.limiter: RateLimiter = budget.limiter
        self.retry = RetryPolicy(
            "railway",
            attempts=settings.max_attempts,
            backoff_seconds=settings.backoff_seconds,
            max_retry_after_seconds=settings.max_retry_after_seconds,
        )
        self._timeout = call_timeout(settings.timeout_seconds)
        self._session = AsyncClientSession(SchemaClient(AppClientTransport(settings.api_url, client)))
        self.calls: Counter[str] = Counter()

    def _headers(self, token: str) -> dict[str, str]:
        if self.settings.token_kind == "project":
            return {"Project-Access-Token": token}
        return {"Authorization": f"Bearer {token}"}

    async def execute(
        self,
        operation_name: str,
        variables: dict[str, Any],
        *,
        document: str | None = None,
        create: CreateKind | None = None,
        repeatable: bool = True,
        stats: CallStats | None = None,
    ) -> dict[str, Any]:
        request = Request(document or operation(operation_name), without_none(variables), operation_name)

        def worth_retrying(error: BaseException) -> bool:
            if isinstance(error, RailwayThrottled):
                return create is not None
            # A rate-limited request was not executed, so even a creation may be re-sent.
            if isinstance(error, RailwayRateLimited):
                return True
            return isinstance(error, RailwayRetryable) and repeatable

        async def attempt() -> dict[str, Any]:
            return await self._attempt(request, operation_name, create, stats)

        return await self.retry.call(attempt, retry_on=worth_retrying)

    async def _attempt(
        self,
        request: Request,
        operation_name: str,
        create: CreateKind | None,
        stats: CallStats | None,
    ) -> dict[str, Any]:
        token = await self.tokens.for_create(create) if create else self.tokens.any()
        self.calls[operation_name] += 1
        if stats is not None:
            stats.calls += 1
        try:
            await self.limiter.acquire()
            extra = {"headers": self._headers(token), "timeout": self._timeout}
            data: dict[str, Any] = await self._session.execute(request, extra_args=extra)
            return data
        except TransportQueryError as exc:
            error = error_from_graphql(operation_name, exc.errors or [])
            if isinstance(error, RailwayThrottled):
                log.info("railway.throttled", operation=operation_name, kind=create)
            raise error from None
        except HttpStatus as exc:
            _raise_for_status(operation_name, exc)
        except TransportError as exc:
            # gql wraps what httpx raised (timeouts, refused connections) as TransportConnectionFailed.
            cause = exc.__cause__ or exc
            raise RailwayRetryable(f"railway {operation_name}: {type(cause).__name__}") from exc
        except GraphQLError as exc:
            # The document failed validation against the published schema: our bug, never retried.
            raise RailwayRejected(f"railway {operation_name}: invalid document: {exc.message}") from exc
        finally:
            if create:
                self.tokens.release(token, create)

    async def project_create(self, name: str, workspace_id: str | None) -> CreatedProject:
        data = await self.execute(
            "ProjectCreate",
            {"input": {"name": name, "workspaceId": workspace_id or None}},
            create="project",
            repeatable=False,
        )
        project = data["projectCreate"]
        environments = [edge["node"] for edge in project["environments"]["edges"]]
        if not environments:
            raise RailwayRejected(f"railway ProjectCreate: project {project['id']} has no environment")
        return CreatedProject(id=project["id"], environment_id=environments[0]["id"])

    async def project_environment_id(self, project_id: str) -> str:
        data = await self.execute("ProjectEnvironments", {"projectId": project_id})
        environments = [edge["node"] for edge in data["project"]["environments"]["edges"]]
        named = [env["id"] for env in environments if env["name"] == "production"]
        if not environments:
            raise RailwayRejected(f"railway project {project_id} has no environment")
        return str(named[0] if named else environments[0]["id"])

    async def project_delete(self, project_id: str) -> None:
        await self.execute("ProjectDelete", {"id": project_id})

    async def service_create(self, project_id: str, environment_id: str, name: str) -> CreatedResource:
        # No `source`: a service created with one deploys at once, before volume, domain and variables.
        variables = {"input": {"projectId": project_id, "environmentId": environment_id, "name": name}}
        data = await self.execute("ServiceCreate", variables, repeatable=False)
        return CreatedResource.model_validate(data["serviceCreate"])

    async def service_delete(self, service_id: str, environment_id: str | None) -> None:
        await self.execute("ServiceDelete", {"id": service_id, "environmentId": environment_id})

    async def volume_create(
        self, project_id: str, environment_id: str, service_id: str, mount_path: str, region: str | None
    ) -> CreatedResource:
        volume_input = {
            "projectId": project_id,
            "environmentId": environment_id,
            "serviceId": service_id,
            "mountPath": mount_path,
            "region": region,
        }
        data = await self.execute("VolumeCreate", {"input": volume_input}, create="volume", repeatable=False)
        return CreatedResource.model_validate(data["volumeCreate"])

    async def service_volume_ids(self, environment_id: str, service_id: str) -> list[str]:
        """Volumes mounted on a service in an environment, minus those already being deleted."""
        found: list[str] = []
        after: str | None = None
        while True:
            variables = {"environmentId": environment_id, "first": self.settings.page_size, "after": after}
            data = await self.execute("EnvironmentVolumeInstances", variables)
            connection = data["environment"]["volumeInstances"]
            for edge in connection["edges"]:
                node = edge["node"]
                if node["serviceId"] == service_id and not node["isPendingDeletion"]:
                    found.append(str(node["volumeId"]))
            if not connection["pageInfo"]["hasNextPage"]:
                return found
            after = connection["pageInfo"]["endCursor"]

    async def volume_delete(self, volume_id: str) -> None:
        await self.execute("VolumeDelete", {"volumeId": volume_id})

    async def service_domain_create(
        self, environment_id: str, service_id: str, target_port: int
    ) -> CreatedDomain:
        domain_input = {"environmentId": environment_id, "serviceId": service_id, "targetPort": target_port}
        # Repeatable: "Failed to create service domain" right after serviceCreate is expected (the
        # service instance is not ready yet). If a lost answer made a second domain, it is deleted
        # with the service; a spare domain costs nothing, a failed create costs an instance.
        data = await self.execute("ServiceDomainCreate", {"input": domain_input})
        return CreatedDomain.model_validate(data["serviceDomainCreate"])

    async def environment_patch_commit(self, environment_id: str, patch: dict[str, Any], message: str) -> str:
        variables = {"environmentId": environment_id, "patch": patch, "commitMessage": message}
        data = await self.execute("EnvironmentPatchCommit", variables, repeatable=False)
        return str(data["environmentPatchCommit"])

    async def variables_upsert(
        self,
        project_id: str,
        environment_id: str,
        service_id: str,
        variables: dict[str, str],
        *,
        deploy: bool,
    ) -> None:
        upsert = {
            "projectId": project_id,
            "environmentId": environment_id,
            "serviceId": service_id,
            "variables": variables,
            "skipDeploys": not deploy,
        }
        # An upsert of the same values is harmless to repeat unless it also deploys.
        await self.execute("VariableCollectionUpsert", {"input": upsert}, repeatable=not deploy)

    async def service_instance_deploy(self, service_id: str, environment_id: str) -> str:
        variables = {"serviceId": service_id, "environmentId": environment_id}
        data = await self.execute("ServiceInstanceDeployV2", variables, repeatable=False)
        return str(data["serviceInstanceDeployV2"])


def _raise_for_status(operation_name: str, answer: HttpStatus) -> NoReturn:
    code = answer.code or 0
    if code == 429:
        wait = answer.retry_after
        log.warning("railway.rate_limited", operation=operation_name, retry_after=wait)
        raise RailwayRateLimited(f"railway {operation_name}: rate limited (429)", retry_after=wait)
    if code >= 500:
        raise RailwayRetryable(f"railway {operation_name}: HTTP {code}")
    if code in (401, 403):
        raise RailwayUnauthorized(f"railway {operation_name}: HTTP {code}")
    # 400: the document failed validation at Railway, a bug on our side that retrying cannot fix.
    raise RailwayRejected(f"railway {operation_name}: HTTP {code}")
