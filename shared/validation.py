"""Input PostgreSQL can store, checked where a request is parsed so a refused request changes nothing.

PostgreSQL's `text` and `jsonb` cannot hold a NUL character; UTF-8 (hence both) cannot hold a lone
surrogate, which JSON's `\\ud800` escape produces; `jsonb` has no NaN or Infinity, which Python's
JSON parser accepts. Each of these used to pass validation and fail at the database, after an
instance was provisioned (issue 11, finding 4). `InputModel` applies the check to every field of
every request model, including fields added later; `JsonObject` bounds free-form JSON (metadata).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, field_validator

MAX_JSON_DEPTH = 32


def unstorable(text: str) -> str | None:
    """Why PostgreSQL cannot store `text`, or None when it can."""
    if "\x00" in text:
        return "must not contain a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain a lone surrogate (invalid Unicode)"
    return None


def check_text(text: str) -> str:
    problem = unstorable(text)
    if problem is not None:
        raise ValueError(f"text {problem}")
    return text


def check_value(value: Any) -> Any:
    """Walk strings, numbers, lists and dicts (keys too) without recursion, so deep input cannot
    exhaust the stack; models nested inside validate themselves."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        elif isinstance(item, dict | list | tuple | set | frozenset):
            if depth >= MAX_JSON_DEPTH:
                raise ValueError(f"must not nest deeper than {MAX_JSON_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else list(item)
            stack.extend((child, depth + 1) for child in children)
    return value


def utf8_at_most(limit: int) -> AfterValidator:
    """A bound in bytes where the column's index or a header bounds bytes, not characters (a
    2,000-character joinUrl of emoji is 8,000 bytes, past what a btree index entry holds)."""

    def check(text: str) -> str:
        if len(text.encode("utf-8")) > limit:
            raise ValueError(f"must be at most {limit} bytes of UTF-8")
        return text

    return AfterValidator(check)


JsonObject = Annotated[dict[str, Any], AfterValidator(check_value)]


class InputModel(BaseModel):
    """Base of every request model: no field (of any type, at any depth) holds what PostgreSQL
    cannot store. Pydantic already refuses a lone surrogate in a `str` field; this covers the rest
    (NUL, and strings or numbers inside free-form values)."""

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return check_value(value)
