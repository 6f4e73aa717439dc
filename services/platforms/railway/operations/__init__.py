"""The GraphQL documents the provider sends, one `<OperationName>.graphql` file each, loaded once."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent

OPERATIONS: dict[str, str] = {path.stem: path.read_text() for path in sorted(_HERE.glob("*.graphql"))}


def operation(name: str) -> str:
    return OPERATIONS[name]
