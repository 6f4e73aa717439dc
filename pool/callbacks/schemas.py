from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class SelfDestructed(_Camel):
    ok: bool = True
    instance_id: str
    destroying: bool = Field(True, description="The teardown runs right after this answer")


class Event(_Camel):
    id: int
    instance_id: str
    at: datetime
    kind: str
    actor: str
    summary: dict[str, Any]
