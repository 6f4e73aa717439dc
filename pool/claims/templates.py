"""Which template a claim is served from (DESIGN.md §11), and the defaults it brings.

A claim names a template by id (`templateId`), or by the original system's `runtime` (a template's
slug); neither means the `default` template. A named template must exist, be live, and be usable
by the claim: public, the deployment's own (owner `operator`), or the claim's `ownerId`'s; any
other is answered as unknown (404), so a private template's existence is not revealed. An unknown
`runtime` keeps the original's clients working: it is served from the default template.

A claim that leaves out its agent name or instructions gets its template's current ones (when the
template sets them), else the original's defaults (pool.claims.schemas).

Looked up on the claims' asyncpg pool and remembered for `CACHE_SECONDS`: a claim that names no
template and sends its own name and instructions (the common case) costs no statement at all,
and a burst of claims of one template costs one lookup, not one each, even as its entry expires
(claims that miss together share one read). An edit or an archive reaches claims within that time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from pool.claims.db import ClaimsDb, DatabaseSlow
from pool.claims.schemas import ClaimCreate
from pool.claims.statements import DEFAULT_TEMPLATE
from pool.templates.schemas import DEFAULT_OWNER as OPERATOR
from shared.errors import Conflict, NotFound
from shared.logging import get_logger

log = get_logger("pool.claims")

CACHE_SECONDS = 2.0

_COLUMNS = """
SELECT t.id, t.owner, t.visibility, t.archived_at IS NOT NULL AS archived, v.agent_name, v.instructions
  FROM templates t JOIN template_versions v ON v.template_id = t.id AND v.version = t.current_version
"""
BY_ID = _COLUMNS + " WHERE t.id = $1"
# A slug is unique per owner: the deployment's own template of that slug first, then a public one.
BY_SLUG = (
    _COLUMNS
    + f""" WHERE t.slug = $1 AND t.archived_at IS NULL AND (t.owner = '{OPERATOR}' OR t.visibility = 'public')
 ORDER BY (t.owner = '{OPERATOR}') DESC, t.created_at LIMIT 1"""
)


@dataclass(frozen=True)
class ChosenTemplate:
    id: str
    owner: str
    visibility: str
    archived: bool
    agent_name: str | None
    instructions: str | None

    def usable_by(self, owner_id: str | None) -> bool:
        return self.visibility == "public" or self.owner in (OPERATOR, owner_id)


class TemplateChooser:
    def __init__(self, db: ClaimsDb, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[float, ChosenTemplate | None]] = {}
        self._reading: dict[tuple[str, str], asyncio.Task[ChosenTemplate | None]] = {}

    async def choose(self, body: ClaimCreate) -> tuple[str, ClaimCreate]:
        """The claim's template id, and the body with the template's defaults filled in."""
        sent = body.model_fields_set
        if body.template_id is None and body.runtime is None and {"agent_name", "instructions"} <= sent:
            return DEFAULT_TEMPLATE, body
        chosen = await self._chosen(body)
        defaults = {
            field: value
            for field, value in (("agent_name", chosen.agent_name), ("instructions", chosen.instructions))
            if field not in sent and value is not None
        }
        return chosen.id, body.model_copy(update=defaults) if defaults else body

    async def _chosen(self, body: ClaimCreate) -> ChosenTemplate:
        if body.template_id is not None:
            chosen = await self._lookup("id", body.template_id)
            if chosen is None or not chosen.usable_by(body.owner_id):
                raise NotFound(f"no template {body.template_id}")
            if chosen.archived:
                raise Conflict(f"template {body.template_id} is archived: claim from another template")
            return chosen
        if body.runtime is not None:
            chosen = await self._lookup("slug", body.runtime)
            if chosen is not None:
                return chosen
            log.info("claim.runtime_unknown", runtime=body.runtime[:100])
        default = await self._lookup("id", DEFAULT_TEMPLATE)
        assert default is not None  # the migration made it and it cannot be archived
        return default

    async def _lookup(self, by: str, value: str) -> ChosenTemplate | None:
        key = (by, value)
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < self._cache_seconds:
            return cached[1]
        # Claims that miss together share one read: a burst of a template's claims as its entry
        # expires costs one statement, not one each. Shielded: a caller that gives up does not
        # cancel the read the others wait for.
        reading = self._reading.get(key)
        if reading is None:
            reading = self._reading[key] = asyncio.create_task(self._read(by, value))
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        return await asyncio.shield(reading)

    async def _read(self, by: str, value: str) -> ChosenTemplate | None:
        read_at = time.monotonic()
        try:
            async with self._db.connection() as connection:
                statement = BY_ID if by == "id" else BY_SLUG
                row = await connection.fetchrow(statement, value, timeout=self._db.statement_timeout)
        except TimeoutError as exc:
            # Shared by every claim of the template that missed: bounded like the claim's writes.
            raise DatabaseSlow from exc
        chosen = None if row is None else ChosenTemplate(**dict(row))
        if len(self._cache) > 1000:
            self._cache.clear()  # bounded: claims naming many unknown templates cannot grow it
        self._cache[(by, value)] = (read_at, chosen)
        return chosen
