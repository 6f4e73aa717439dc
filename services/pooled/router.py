from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from services.auth import OperatorAuth
from services.deps import BoxDep
from services.pooled import service as pooled_service
from services.pooled.schemas import PooledResource, PooledResourceCreate
from shared.db import SessionDep

router = APIRouter(prefix="/pooled", tags=["pooled"], dependencies=[OperatorAuth])

KIND_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
KindPath = Annotated[str, Path(pattern=KIND_PATTERN)]


@router.post("/{kind}", response_model=PooledResource, status_code=201, response_model_by_alias=True)
async def create(
    kind: KindPath, body: PooledResourceCreate, session: SessionDep, box: BoxDep
) -> PooledResource:
    """Add an operator-supplied resource (wallet key, pre-bought number) to the pool."""
    row = await pooled_service.add_resource(
        session, box=box, kind=kind, label=body.label, value=body.value, resource_ref=body.resource_ref
    )
    return PooledResource.model_validate(row)


@router.get("", response_model=list[PooledResource], response_model_by_alias=True)
async def list_(
    session: SessionDep,
    # The same shape as a kind in a path: anything else (a NUL byte) is a 422, not a database error.
    kind: Annotated[str | None, Query(pattern=KIND_PATTERN)] = None,
) -> list[PooledResource]:
    """Pooled resources with their assignment; values are never shown."""
    return [
        PooledResource.model_validate(row) for row in await pooled_service.list_resources(session, kind=kind)
    ]


@router.delete("/{resource_id}", status_code=204)
async def delete(
    # The column is a PostgreSQL integer: a larger id is a 422 here, not a database error (500).
    resource_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: SessionDep,
) -> None:
    """Remove an unassigned resource from the pool."""
    await pooled_service.remove_resource(session, resource_id=resource_id)
