from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from services.auth import OperatorAuth
from services.deps import HttpClientDep, PlatformDep, SessionmakerDep, SettingsDep, ToolsDep
from services.sweep.loop import sweep_once

router = APIRouter(tags=["sweep"], dependencies=[OperatorAuth])


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


@router.post("/sweep", response_model=SweepResult, response_model_by_alias=True)
async def sweep(
    sessionmaker: SessionmakerDep,
    tools: ToolsDep,
    platform: PlatformDep,
    settings: SettingsDep,
    http: HttpClientDep,
) -> SweepResult:
    """Compare the ledger with provider inventories, the platform and the pool; remove orphans past grace."""
    report = await sweep_once(sessionmaker, tools=tools, platform=platform, settings=settings, http=http)
    return SweepResult(
        ran=report.ran,
        pool_compared=report.pool_compared,
        removed=report.removed(),
        orphans=[SweptOrphan.model_validate(orphan, from_attributes=True) for orphan in report.orphans],
        errors=report.errors,
    )
