from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class SweptOrphan(_Camel):
    kind: str
    tool_id: str | None
    resource_id: str | None
    instance_id: str | None
    age_seconds: float | None
    action: str


class SweepResult(_Camel):
    ran: bool
    pool_compared: bool
    removed: int
    orphans: list[SweptOrphan]
    errors: list[str]
