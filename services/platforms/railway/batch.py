"""Aliased batch documents for per-instance mode.

One request per project would make a tick cost O(instances). GraphQL aliases let one request ask
for many `environment(...)` fields at once, but a batch of N aliases cannot be a static file. So
the batch is generated from the static, schema-checked `EnvironmentStatus.graphql`: its one root
field is repeated under aliases `e0..eN` with its own variables. The selection set is copied
unchanged, so the generated document is valid whenever the file is (the tests also validate
generated documents against the published schema with graphql-core).
"""

from __future__ import annotations

from graphql import FieldNode, OperationDefinitionNode, parse, print_ast

from services.platforms.railway.operations import operation

UNIT_OPERATION = "EnvironmentStatus"
BATCH_OPERATION = "EnvironmentStatusBatch"


def _unit_selection() -> str:
    document = parse(operation(UNIT_OPERATION))
    definition = document.definitions[0]
    assert isinstance(definition, OperationDefinitionNode)
    field = definition.selection_set.selections[0]
    assert isinstance(field, FieldNode) and field.selection_set is not None
    return print_ast(field.selection_set)


_SELECTION = _unit_selection()


def alias(index: int) -> str:
    return f"e{index}"


def batch_document(size: int) -> str:
    """`query EnvironmentStatusBatch($e0: String!, $p0: String, ...) { e0: environment(...) {...} ... }`"""
    variables = ", ".join(f"$e{i}: String!, $p{i}: String" for i in range(size))
    fields = "\n".join(
        f"  {alias(i)}: environment(id: $e{i}, projectId: $p{i}) {_SELECTION}" for i in range(size)
    )
    return f"query {BATCH_OPERATION}({variables}) {{\n{fields}\n}}\n"


def batch_variables(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Variables for `batch_document(len(pairs))` from (environment_id, project_id) pairs."""
    values: dict[str, str] = {}
    for index, (environment_id, project_id) in enumerate(pairs):
        values[f"e{index}"] = environment_id
        values[f"p{index}"] = project_id
    return values
