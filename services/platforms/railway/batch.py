"""Aliased batch documents: many instances observed in one request.

One request per project (or per service) would make observing cost O(instances). GraphQL aliases
let one request ask for many root fields at once, but a batch of N aliases cannot be a static
file. So each batch is generated from a static, schema-checked unit document whose one root field
is repeated under aliases `e0..eN` with its own variables. The selection set is copied unchanged,
so the generated document is valid whenever the file is (the tests also validate generated
documents against the published schema with graphql-core). Two units:

- `EnvironmentStatus` (per-instance mode): one `environment(...)` per project;
- `ServiceInstanceStatus` (shared mode, a few instances): one `serviceInstance(...)` per service,
  so a tick that observes 100 instances of a 10,000-service environment makes 2 calls, not 20 pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from graphql import FieldNode, OperationDefinitionNode, parse, print_ast

from services.platforms.railway.operations import operation


@cache
def _unit_selection(name: str) -> str:
    document = parse(operation(name))
    definition = document.definitions[0]
    assert isinstance(definition, OperationDefinitionNode)
    field = definition.selection_set.selections[0]
    assert isinstance(field, FieldNode) and field.selection_set is not None
    return print_ast(field.selection_set)


def alias(index: int) -> str:
    return f"e{index}"


@dataclass(frozen=True)
class Unit:
    """A root field repeated under aliases: `field(first: $e0, second: $p0)` per alias."""

    operation: str
    field: str
    first: str  # argument name bound to `$eN` (String!)
    second: str  # argument name bound to `$pN`
    second_type: str

    def document(self, size: int) -> str:
        return _document(self, size)

    @property
    def unit_operation(self) -> str:
        return self.operation.removesuffix("Batch")


@cache
def _document(unit: Unit, size: int) -> str:
    """Built once per (unit, size): the fake and Railway see the same few documents again."""
    selection = _unit_selection(unit.unit_operation)
    variables = ", ".join(f"$e{i}: String!, $p{i}: {unit.second_type}" for i in range(size))
    fields = "\n".join(
        f"  {alias(i)}: {unit.field}({unit.first}: $e{i}, {unit.second}: $p{i}) {selection}"
        for i in range(size)
    )
    return f"query {unit.operation}({variables}) {{\n{fields}\n}}\n"


ENVIRONMENTS = Unit("EnvironmentStatusBatch", "environment", "id", "projectId", "String")
SERVICE_INSTANCES = Unit(
    "ServiceInstanceStatusBatch", "serviceInstance", "environmentId", "serviceId", "String!"
)

# Kept for the per-instance batch's callers and tests.
BATCH_OPERATION = ENVIRONMENTS.operation


def batch_document(size: int) -> str:
    """`query EnvironmentStatusBatch($e0: String!, $p0: String, ...) { e0: environment(...) {...} ... }`"""
    return ENVIRONMENTS.document(size)


def batch_variables(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Variables for a batch document of `len(pairs)` aliases from (first, second) argument pairs:
    (environment_id, project_id) or (environment_id, service_id)."""
    values: dict[str, str] = {}
    for index, (first, second) in enumerate(pairs):
        values[f"e{index}"] = first
        values[f"p{index}"] = second
    return values
