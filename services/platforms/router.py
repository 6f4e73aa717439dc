from __future__ import annotations

from fastapi import APIRouter

from services.auth import OperatorAuth
from services.deps import PlatformsDep
from services.platforms import placement
from shared.db import SessionDep
from shared.schemas import PlatformList

router = APIRouter(tags=["platforms"], dependencies=[OperatorAuth])


@router.get("/platforms", response_model=PlatformList)
async def list_platforms(session: SessionDep, platforms: PlatformsDep) -> PlatformList:
    """Each platform as placement sees it: priority, capacity, in use, creating, health, backoff."""
    observed_at, views = await placement.list_platforms(session, platforms=platforms)
    return PlatformList(observed_at=observed_at, platforms=views)
