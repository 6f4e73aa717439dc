"""The fake Railway GraphQL endpoint (`POST /graphql/v2`), executed with graphql-core against the
published schema. Transport behaviour follows specs/railway.md §3-4: a document that fails to
parse or validate gets HTTP 400; resolver errors are HTTP 200 with `errors[]` and `data: null`;
going over the configured rate gets HTTP 429 with `Retry-After` and the body `{"data": null}`.

Limits: `services_per_project` (default 100) refuses a `serviceCreate` in a full project with an
`errors[]` entry (HTTP 200), as Railway does. Fault knobs: `error_rate` (random HTTP-200
errors), `fail_next(n, status=429 | message=...)` for bursts, `latency_seconds` (every answer)
and `operation_latency_seconds` (one operation's), per-token project/volume creation intervals,
and planned deploy outcomes (`deploys.plan("hang")`). Notification rules deliver deploy events to
their webhooks (`notifications.py`), late or lost under the `realistic` profile.
`faults` (devtools/faults.py) adds a latency and fault profile: `realistic` delays queries and
mutations (`projectCreate` the slowest), answers some calls 502/503, holds some answers past the
client's timeout (a mutation is then carried out and its answer lost), opens 429 bursts, and sets
the per-token creation cooldowns when they are not given; `instant` (the default) changes nothing.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from inspect import isawaitable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    default_field_resolver,
    execute,
    parse,
    validate,
)

from devtools.faults import Faults, Kind
from devtools.railway_fake.context import Context
from devtools.railway_fake.deploys import DeployEngine, DeploySettings
from devtools.railway_fake.notifications import Notifications
from devtools.railway_fake.resolvers import MUTATION, QUERY
from devtools.railway_fake.store import Store
from devtools.railway_fake.views import PROBLEM, Views

# The published schema ships with the provider (its operations are checked against it); the fake
# executes against the same file.
SCHEMA_PATH = files("services.platforms.railway").joinpath("schema.graphqls")


def load_schema() -> GraphQLSchema:
    # The published schema fails one self-check (a deprecated Team.id, see specs/railway/SOURCE.md).
    return build_schema(SCHEMA_PATH.read_text(), assume_valid=True)


SCHEMA = load_schema()


@dataclass
class FakeSettings:
    # Accepted bearer tokens; empty accepts any non-empty token.
    tokens: set[str] = field(default_factory=set)
    # Project-Access-Token values and the project they belong to.
    project_tokens: dict[str, str] = field(default_factory=dict)
    project_create_interval: float = 0.0
    volume_create_interval: float = 0.0
    requests_per_second: float | None = None
    retry_after_seconds: int = 1
    error_rate: float = 0.0
    latency_seconds: float = 0.0
    # Extra delay before answering one operation (by operationName), e.g. a slow mutation.
    operation_latency_seconds: dict[str, float] = field(default_factory=dict)
    # Live services one project may hold; `serviceCreate` past it fails as Railway's does (~100).
    services_per_project: int = 100
    seed: int = 0
    faults: Faults = field(default_factory=Faults)


def _resolve(source: Any, info: GraphQLResolveInfo[Context], **args: Any) -> Any:
    table = {"Query": QUERY, "Mutation": MUTATION}.get(info.parent_type.name)
    if table is None:
        return default_field_resolver(source, info, **args)
    resolver = table.get(info.field_name)
    if resolver is None:
        raise GraphQLError(PROBLEM)
    return resolver(info.context, args)


def _error(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    extensions: dict[str, Any] = dict(error.extensions or {})
    formatted["extensions"] = {"code": "INTERNAL_SERVER_ERROR", **extensions}
    return formatted


def _kind(document: DocumentNode, operation_name: str | None) -> Kind:
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if operation_name and (definition.name is None or definition.name.value != operation_name):
            continue
        if definition.operation.value != "mutation":
            return "query"
        selections = definition.selection_set.selections
        fields = {field.name.value for field in selections if isinstance(field, FieldNode)}
        return "slow" if "projectCreate" in fields else "mutation"
    return "query"


class FakeRailway:
    def __init__(
        self,
        settings: FakeSettings | None = None,
        deploy: DeploySettings | None = None,
        data_root: Path | None = None,
    ) -> None:
        self.settings = settings or FakeSettings()
        self._own_root = data_root is None
        self.data_root = data_root or Path(tempfile.mkdtemp(prefix="fake-railway-"))
        self.store = Store()
        self.views = Views(self.store)
        self.deploys = DeployEngine(self.store, deploy or DeploySettings(), self.data_root)
        # Notification rules, and the webhook deliveries of deploy events they make.
        self.notifications = Notifications(self.store, self.settings.faults)
        self.calls: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self._last_create: dict[tuple[str, str], float] = {}
        self._recent: deque[float] = deque()
        self._forced: deque[tuple[int, str]] = deque()
        self._random = random.Random(self.settings.seed)
        self._documents: dict[str, DocumentNode | list[dict[str, Any]]] = {}
        if (cooldown := self.settings.faults.cooldown) > 0:
            self.settings.project_create_interval = self.settings.project_create_interval or cooldown
            self.settings.volume_create_interval = self.settings.volume_create_interval or cooldown

    def fail_next(self, count: int, *, status: int = 200, message: str = PROBLEM) -> None:
        """The next `count` requests fail: HTTP 429, or HTTP 200 with `errors[]` carrying `message`."""
        self._forced.extend([(status, message)] * count)

    def throttle_allows(self, kind: str, token: str) -> bool:
        interval = (
            self.settings.project_create_interval
            if kind == "project"
            else self.settings.volume_create_interval
        )
        now = time.monotonic()
        last = self._last_create.get((kind, token))
        if last is not None and now - last < interval:
            self.rejected[f"{kind}_too_quickly"] += 1
            return False
        self._last_create[(kind, token)] = now
        return True

    def _over_rate(self) -> bool:
        limit = self.settings.requests_per_second
        if limit is None:
            return False
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        if len(self._recent) >= limit:
            return True
        self._recent.append(now)
        return False

    def _token(self, request: Request) -> tuple[str, str | None]:
        """(token, auth error message or None)."""
        project_token = request.headers.get("project-access-token")
        if project_token is not None:
            if project_token not in self.settings.project_tokens:
                return project_token, "Project token not found"
            return project_token, None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return "", "Not Authorized"
        if self.settings.tokens and token not in self.settings.tokens:
            return token, "Not Authorized"
        return token, None

    async def handle(self, request: Request) -> JSONResponse:
        if self.settings.latency_seconds:
            await asyncio.sleep(self.settings.latency_seconds)
        try:
            body = await request.json()
            query, variables = body["query"], body.get("variables") or {}
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"errors": [{"message": "Invalid JSON body"}]}, status_code=400)
        operation_name = body.get("operationName")
        self.calls[operation_name or "anonymous"] += 1
        if delay := self.settings.operation_latency_seconds.get(operation_name or ""):
            await asyncio.sleep(delay)
        if self._forced:
            status, message = self._forced.popleft()
            return self._reject(status, message)
        if self._over_rate():
            return self._reject(429, "")
        token, auth_error = self._token(request)
        if auth_error:
            return self._reject(200, auth_error)
        checked = self._checked(query)
        if isinstance(checked, list):
            return JSONResponse({"errors": checked}, status_code=400)
        document = checked
        faults = self.settings.faults
        lost = False
        if faults.active:
            await faults.delay(_kind(document, operation_name))
            outcome = faults.decide()
            if outcome == "429":
                return self._reject(429, "", retry_after=faults.retry_after)
            if outcome == "error":
                self.rejected["5xx"] += 1
                status = self._random.choice((502, 503))
                return JSONResponse({"data": None}, status_code=status)
            lost = outcome == "timeout"
        if self.settings.error_rate and self._random.random() < self.settings.error_rate:
            return self._reject(200, PROBLEM)
        if operation_name is None:
            first = document.definitions[0]
            if isinstance(first, OperationDefinitionNode) and first.name:
                self.calls["anonymous"] -= 1
                self.calls[first.name.value] += 1
        result = execute(
            SCHEMA,
            document,
            context_value=Context(self, token),
            variable_values=variables,
            operation_name=operation_name,
            field_resolver=_resolve,
        )
        if isawaitable(result):
            result = await result
        assert isinstance(result, ExecutionResult)
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [_error(error) for error in result.errors]
        if lost:
            # Done, and the answer never arrives before the client gives up.
            self.rejected["timeout"] += 1
            await asyncio.sleep(faults.hang)
        return JSONResponse(payload)

    def _checked(self, query: str) -> DocumentNode | list[dict[str, Any]]:
        """The parsed document, or the errors that make it HTTP 400. Clients send the same few
        documents again and again, and validating a 50-alias batch takes a good part of a second."""
        cached = self._documents.get(query)
        if cached is not None:
            return cached
        try:
            document = parse(query)
        except GraphQLError as exc:
            return [dict(exc.formatted)]
        problems = validate(SCHEMA, document)
        result: DocumentNode | list[dict[str, Any]] = (
            [dict(p.formatted) for p in problems] if problems else document
        )
        if len(self._documents) < 512:
            self._documents[query] = result
        return result

    def _reject(self, status: int, message: str, *, retry_after: float | None = None) -> JSONResponse:
        if status == 429:
            self.rejected["429"] += 1
            wait = self.settings.retry_after_seconds if retry_after is None else retry_after
            headers = {"Retry-After": f"{wait:g}"}
            return JSONResponse({"data": None}, status_code=429, headers=headers)
        self.rejected[message] += 1
        error = {"message": message, "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
        return JSONResponse({"data": None, "errors": [error]})

    async def aclose(self) -> None:
        """Stop every deployment and runtime process (also run when the app shuts down)."""
        await self.deploys.aclose()
        await self.notifications.aclose()
        if self._own_root:
            shutil.rmtree(self.data_root, ignore_errors=True)

    def app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            try:
                yield
            finally:
                await self.aclose()

        app = FastAPI(title="fake railway", lifespan=lifespan, docs_url=None, redoc_url=None)

        @app.post("/graphql/v2")
        async def graphql_v2(request: Request) -> JSONResponse:
            """Railway's public GraphQL endpoint."""
            return await self.handle(request)

        return app
