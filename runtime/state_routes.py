"""The agent's memory and its portable state (DESIGN.md §4, §11): `/convos/memory` always;
`/convos/export` and `/convos/import` only when RUNTIME_CAPABILITIES names them (a runtime without
them answers 404, like one that never had them, and `/pool/health` does not announce them).

Export answers JSON (`runtime.schemas.StateArchive`: the memory as a base64 tar.gz with its size
and sha256); import takes the same body back. Import reads its body itself, so a body past the cap
is refused with 413 before it is all read.
"""

import math
from collections.abc import Sequence

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from runtime.deps import AgentDep, require_token
from runtime.errors import TooLarge
from runtime.schemas import Imported, Memory, Remember, Remembered, StateArchive

# Room for the JSON around the base64 text (field names, size, sha256).
ENVELOPE_BYTES = 1024


def memory_router() -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_token)])

    @router.get("/convos/memory", response_model=Memory)
    async def memory(agent: AgentDep) -> Memory:
        """What the agent remembers (its notes, oldest first): the state an export carries."""
        return Memory(notes=agent.memory.notes())

    @router.post("/convos/memory", response_model=Remembered)
    async def remember(body: Remember, agent: AgentDep) -> Remembered:
        """Remember one note (413 once memory would pass RUNTIME_STATE_MAX_BYTES)."""
        return Remembered(notes=agent.memory.add(body.text))

    return router


def state_router(capabilities: Sequence[str]) -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_token)])
    if "export" in capabilities:

        @router.post("/convos/export", response_model=StateArchive)
        async def export_state(agent: AgentDep) -> StateArchive:
            """The agent's state as an archive (size-capped, with its sha256)."""
            return agent.export_state()

    if "import" in capabilities:

        @router.post("/convos/import", response_model=Imported)
        async def import_state(request: Request, agent: AgentDep) -> Imported:
            """Restore an exported state into this clean instance (409 if not clean)."""
            limit = 4 * math.ceil(agent.settings.runtime_state_max_bytes / 3) + ENVELOPE_BYTES
            body = await _read_capped(request, limit)
            try:
                archive = StateArchive.model_validate_json(body)
            except ValidationError as exc:
                raise RequestValidationError(exc.errors(include_input=False)) from exc
            return await agent.import_state(archive)

    return router


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"body is larger than {limit} bytes")
    return bytes(body)
