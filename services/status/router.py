from __future__ import annotations

from fastapi import APIRouter

from services.auth import OperatorAuth
from services.deps import HttpClientDep, PlatformDep, SessionmakerDep, SettingsDep
from services.status import service as status_service
from shared.schemas import StatusBatch, StatusBatchRequest

router = APIRouter(tags=["status"], dependencies=[OperatorAuth])


@router.post("/status/batch", response_model=StatusBatch)
async def batch(
    sessionmaker: SessionmakerDep,
    platform: PlatformDep,
    http_client: HttpClientDep,
    settings: SettingsDep,
    body: StatusBatchRequest | None = None,
) -> StatusBatch:
    """Deploy status and health of every known instance (or the ids given), plus platform orphans."""
    return await status_service.observe_fleet(
        sessionmaker,
        platform=platform,
        http_client=http_client,
        settings=settings,
        body=body or StatusBatchRequest(),
    )
