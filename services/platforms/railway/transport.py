"""How a document reaches Railway: gql's httpx transport on the app's client, and the published
schema that gql validates every document against before sending it.

Two costs are paid once per distinct document instead of once per call: parsing and validating it
(a 50-alias status batch takes ~50 ms to validate), and printing it back to text (~20 ms), since
a per-instance tick at 10,000 instances sends 200 such batches.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportServerError
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import DocumentNode, GraphQLSchema, build_schema, parse

from shared.retry import retry_after_seconds


@lru_cache(maxsize=1)
def published_schema() -> GraphQLSchema:
    # The published schema fails one self-check (a deprecated Team.id, specs/railway/SOURCE.md);
    # assume_valid skips that check only. Built once, on the first client.
    sdl = files("services.platforms.railway").joinpath("schema.graphqls").read_text()
    return build_schema(sdl, assume_valid=True)


@lru_cache(maxsize=256)
def parsed(document: str) -> DocumentNode:
    """The static operations and the few batch sizes in use, parsed once each."""
    return parse(document)


class Request(GraphQLRequest):
    """A request whose document is sent as the text it was parsed from (gql prints it back)."""

    def __init__(self, text: str, variables: dict[str, Any], operation_name: str) -> None:
        super().__init__(parsed(text), variable_values=variables, operation_name=operation_name)
        self.text = text

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"query": self.text, "operationName": self.operation_name}
        if self.variable_values:
            payload["variables"] = self.variable_values
        return payload


class SchemaClient(Client):
    """gql's client, validating each distinct document once (they are cached by `parsed`)."""

    def __init__(self, transport: HTTPXAsyncTransport) -> None:
        # execute_timeout=None: each call's httpx timeout (RAILWAY_TIMEOUT_SECONDS) is the bound;
        # gql's own default (10 s) would cut answers that setting allows.
        super().__init__(schema=published_schema(), transport=transport, execute_timeout=None)
        # Keyed by id(); holding the document keeps that id from being reused by another.
        self._valid: dict[int, DocumentNode] = {}

    def validate(self, request: GraphQLRequest) -> None:
        document = request.document
        if self._valid.get(id(document)) is document:
            return
        super().validate(request)
        self._valid[id(document)] = document


class HttpStatus(TransportServerError):
    """A non-200 answer, with the `Retry-After` it carried (Railway sends one on every 429)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}", response.status_code)
        self.retry_after = retry_after_seconds(response)


class AppClientTransport(HTTPXAsyncTransport):
    """gql's httpx transport on the app's client: its connection pool is shared and closed by the
    app, so connecting and closing here do nothing. Any non-200 answer raises `HttpStatus`: gql
    alone would read a 429's `{"data": null}` body as an empty result."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        super().__init__(url)
        self.client = client

    async def connect(self) -> None:
        """The app's client is already open."""

    async def close(self) -> None:
        """The app closes its client."""

    def _prepare_result(self, response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise HttpStatus(response)
        return super()._prepare_result(response)
