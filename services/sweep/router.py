from __future__ import annotations

from fastapi import APIRouter

from services.auth import OperatorAuth
from services.deps import HttpClientDep, PlatformsDep, SessionmakerDep, SettingsDep, ToolsDep
from services.sweep import service as sweep_service
from services.sweep.schemas import SweepResult, SweptOrphan

router = APIRouter(tags=["sweep"], dependencies=[OperatorAuth])


@router.post("/sweep", response_model=SweepResult, response_model_by_alias=True)
async def sweep(
    sessionmaker: SessionmakerDep,
    tools: ToolsDep,
    platforms: PlatformsDep,
    settings: SettingsDep,
    http: HttpClientDep,
) -> SweepResult:
    """Compare the ledger with provider inventories, the platform and the pool; remove orphans past grace."""
    report = await sweep_service.sweep_once(
        sessionmaker, tools=tools, platforms=platforms, settings=settings, http=http
    )
    return SweepResult(
        ran=report.ran,
        pool_compared=report.pool_compared,
        removed=report.removed(),
        orphans=[SweptOrphan.model_validate(orphan, from_attributes=True) for orphan in report.orphans],
        errors=report.errors,
    )
