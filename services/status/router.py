from __future__ import annotations

from fastapi import APIRouter, Response

from services.auth import OperatorAuth
from services.deps import PlatformsDep, SessionmakerDep, SettingsDep
from services.status import service as status_service
from shared.schemas import StatusBatch, StatusBatchRequest

router = APIRouter(tags=["status"], dependencies=[OperatorAuth])


@router.post("/status/batch", response_model=StatusBatch)
async def batch(
    sessionmaker: SessionmakerDep,
    platforms: PlatformsDep,
    settings: SettingsDep,
    body: StatusBatchRequest | None = None,
) -> Response:
    """Deploy status and health of every known instance (or the ids given), plus platform orphans."""
    observed = await status_service.observe_fleet(
        sessionmaker, platforms=platforms, settings=settings, body=body or StatusBatchRequest()
    )
    # Serialised by pydantic-core in one pass: at 10,000 instances FastAPI's generic path
    # (validate the return value again, jsonable_encoder, json.dumps) costs far more.
    return Response(observed.model_dump_json(by_alias=True), media_type="application/json")
