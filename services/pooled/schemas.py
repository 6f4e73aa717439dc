from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.validation import InputModel


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class PooledResourceCreate(_Camel, InputModel):
    label: str = Field(default="", max_length=200)
    value: str = Field(min_length=1, max_length=10_000)
    resource_ref: str | None = Field(default=None, max_length=200)


class PooledResource(_Camel):
    """What operators see of a pooled resource: never its value."""

    id: int
    kind: str
    label: str
    resource_ref: str | None
    instance_id: str | None
    assigned_at: datetime | None
