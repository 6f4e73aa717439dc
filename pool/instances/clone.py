"""Cloning an agent (DESIGN.md §11): `POST /api/pool/instances/{id}/clone` puts the source agent's
state into a new agent on an idle instance of the same template.

The order keeps the source untouched and the target's life that of a claim:
1. the source must be `claimed` and announce `export`; its state is exported first, before any
   instance is taken (a refusal or a failure here changes nothing);
2. an idle instance of the source's template is taken, newest template version first, then the
   oldest, SKIP LOCKED, and marked `claiming` under a `pending` claim row (source `clone`) in one
   statement, only while no claim of that template is queued (no barging, DESIGN.md §10). The
   claim row is what keeps the tick off the target (it recovers `claiming` instances no pending
   claim holds) and lets a kill end the clone like any claim;
3. the target must announce `import`, else it goes back to idle untouched (409); then import,
   then provision (the source's agent name, instructions, profile image and metadata, a new
   conversation); a failure of either is recovered like a failed provision: reset, clean → idle,
   otherwise dead for the tick to replace (pool.claims.recovery);
4. the target is recorded `claimed` with `parent_instance` = the source, its owner and template
   sync time copied (its template version stays its own: the image it runs).

While the claim row is pending the calls are a health check (probe timeout) and at most four of
POOL_CLAIM_PROVISION_TIMEOUT_SECONDS (import, provision, reset, status): inside the bound past
which the tick ends a pending claim as abandoned (pool.config.Settings.claim_stale_seconds).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import text

from pool.activity import log as event_log
from pool.claims import recovery
from pool.claims import repository as repo
from pool.claims.service import EMPTY_RETRY_AFTER
from pool.claims.statements import no_barging
from pool.deps import PoolState
from pool.instance_client import ProvisionRequest, StateArchive
from pool.instances.schemas import Cloned
from pool.models import Instance
from shared.errors import AppError, Conflict, NotFound, Unavailable, UpstreamError
from shared.logging import get_logger

log = get_logger("pool.instances.clone")

# Who the clone's claim row says asked: no claim caller's Idempotency-Keys can collide with it.
CLONE_CALLER = "clone"

TAKE_TARGET = f"""
WITH picked AS MATERIALIZED (
    SELECT id FROM instances
     WHERE status = 'idle' AND template_id = :template AND id <> :source{no_barging(":template")}
     ORDER BY template_version DESC, created_at
     LIMIT 1
     FOR UPDATE SKIP LOCKED
), inserted AS (
    INSERT INTO claims (id, caller, request_hash, status, instance_id, source, template, owner_id)
    SELECT :claim, :caller, :digest, 'pending', picked.id, 'clone', :template, :owner FROM picked
    RETURNING instance_id
)
UPDATE instances SET status = 'claiming', status_changed_at = now(), updated_at = now()
 WHERE id = (SELECT instance_id FROM inserted) AND status = 'idle'
RETURNING id, url, gateway_token_enc, template_version
"""

# Like the claim's MARK_CLAIMED: only while the clone's claim is pending on this instance and the
# instance is still `claiming` (a kill that raced the clone wins), plus the lineage.
MARK_CLONED = """
WITH claim AS MATERIALIZED (
    SELECT id FROM claims WHERE id = :claim AND status = 'pending' AND instance_id = :target FOR UPDATE
), instance AS (
    UPDATE instances
       SET status = 'claimed', agent_name = :agent_name, instructions = :instructions, join_url = NULL,
           profile_image = :profile_image, metadata = CAST(:metadata AS jsonb), owner_id = :owner,
           parent_instance = :source, template_synced_at = :synced_at, conversation_id = :conversation,
           invite_url = :invite, claimed_at = now(), status_changed_at = now(), updated_at = now(),
           last_error = NULL
     WHERE id = :target AND status = 'claiming' AND EXISTS (SELECT 1 FROM claim)
    RETURNING id
)
UPDATE claims SET status = 'succeeded', response = CAST(:response AS jsonb), updated_at = now()
 WHERE id = (SELECT id FROM claim) AND EXISTS (SELECT 1 FROM instance)
RETURNING id
"""

CLAIMS_WAITING = "SELECT EXISTS (SELECT 1 FROM claims WHERE status = 'queued' AND template = :template)"


@dataclass(frozen=True)
class _Target:
    id: str
    url: str | None
    gateway_token_enc: str | None
    template_version: int

    def claiming(self) -> repo.Claiming:
        return repo.Claiming(self.id, self.url, self.gateway_token_enc)


async def clone_instance(pool: PoolState, source_id: str) -> Cloned:
    started = time.monotonic()
    settings = pool["settings"]
    async with pool["sessionmaker"]() as session:
        source = await session.get(Instance, source_id)
    if source is None:
        raise NotFound(f"no instance {source_id}")
    if source.status != "claimed":
        raise Conflict(f"only a claimed agent can be cloned: instance {source_id} is {source.status}")
    url, token = _address(pool, source.url, source.gateway_token_enc, "source")
    await _require(pool, url, "export", "source")
    state, archive = await pool["instances"].export_state(
        url, token, max_bytes=settings.clone_max_state_bytes, timeout=settings.claim_provision_timeout_seconds
    )
    claim_id = uuid.uuid4().hex
    target = await _take_target(pool, source, claim_id)
    pool["tick"].wake()  # an idle instance was taken: refill runs in the tick's task
    try:
        conversation, invite = await _fill(pool, claim_id, target, source, state)
    except AppError as exc:
        await _fail(pool, claim_id, f"clone of {source_id} failed on {target.id}: {exc.message}")
        raise
    answer = Cloned(
        instance_id=target.id,
        parent_instance=source.id,
        template_id=source.template_id,
        template_version=target.template_version,
        agent_name=source.agent_name or "",
        conversation_id=conversation,
        invite_url=invite,
        state_bytes=len(archive),
        state_sha256=state.sha256,
    )
    if not await _mark_cloned(pool, claim_id, target, source, answer):
        raise UpstreamError(f"instance {target.id} was removed while the clone was in flight")
    log.info(
        "instance.cloned",
        source=source.id,
        instance_id=target.id,
        state_bytes=len(archive),
        elapsed_ms=round((time.monotonic() - started) * 1000),
    )
    return answer


def _address(pool: PoolState, url: str | None, token_enc: str | None, role: str) -> tuple[str, str]:
    if url is None or token_enc is None:
        raise UpstreamError(f"the {role} instance has no URL or gateway token")
    try:
        return url, pool["box"].decrypt(token_enc)
    except ValueError as exc:
        raise UpstreamError(f"the {role} instance's gateway token cannot be decrypted") from exc


async def _require(pool: PoolState, url: str, capability: str, role: str) -> None:
    announced = await pool["instances"].capabilities(url, timeout=pool["settings"].probe_timeout_seconds)
    if capability not in announced:
        direction = "from" if role == "source" else "into"
        listed = ", ".join(sorted(announced)) or "none"
        raise Conflict(
            f"the {role} instance's runtime cannot be cloned {direction}: it does not announce "
            f"`{capability}` in /pool/health (it announces: {listed})"
        )


async def _take_target(pool: PoolState, source: Instance, claim_id: str) -> _Target:
    params = {
        "template": source.template_id,
        "source": source.id,
        "claim": claim_id,
        "caller": CLONE_CALLER,
        "digest": hashlib.sha256(f"clone:{source.id}:{claim_id}".encode()).hexdigest(),
        "owner": source.owner_id,
    }
    async with pool["sessionmaker"]() as session, session.begin():
        row = (await session.execute(text(TAKE_TARGET), params)).first()
        if row is not None:
            return _Target(row.id, row.url, row.gateway_token_enc, row.template_version)
        queued = bool(await session.scalar(text(CLAIMS_WAITING), {"template": source.template_id}))
    why = "claims of it are queued" if queued else "none is idle"
    raise Unavailable(
        f"no idle instance of template {source.template_id} to clone into ({why}); retry later",
        retry_after=EMPTY_RETRY_AFTER,
    )


async def _fill(
    pool: PoolState, claim_id: str, target: _Target, source: Instance, state: StateArchive
) -> tuple[str, str]:
    """Import and provision on the target: its conversation and invite URL. A target that cannot
    import goes back to idle as it was; any other failure recovers it."""
    settings = pool["settings"]
    timeout = settings.claim_provision_timeout_seconds
    try:
        url, token = _address(pool, target.url, target.gateway_token_enc, "target")
        await _require(pool, url, "import", "target")
    except Conflict as exc:
        await _give_back(pool, claim_id, target, exc.message)
        raise
    except AppError as exc:
        await _recover(pool, claim_id, target, exc.message)
        raise
    try:
        await pool["instances"].import_state(url, token, state, timeout=timeout)
        request = ProvisionRequest(
            agent_name=source.agent_name or "",
            instructions=source.instructions or "",
            profile_image=source.profile_image,
            metadata=source.metadata_,
        )
        provisioned = await pool["instances"].provision(url, token, request, timeout=timeout)
    except AppError as exc:
        await _recover(pool, claim_id, target, exc.message)
        raise
    return provisioned.conversation_id, provisioned.invite_url


async def _give_back(pool: PoolState, claim_id: str, target: _Target, reason: str) -> None:
    """Nothing was done on the target: idle again as it was (unless a kill took it meanwhile)."""
    async with pool["sessionmaker"]() as session, session.begin():
        await repo.set_status_from_claiming(
            session, instance_id=target.id, status="idle", error=f"clone refused: {reason}", claim_id=claim_id
        )
    log.info("instance.clone.given_back", instance_id=target.id, reason=reason[:200])
    pool["queue"].kick()


async def _recover(pool: PoolState, claim_id: str, target: _Target, reason: str) -> None:
    status = await recovery.recover_instance(
        pool["instances"],
        pool["box"],
        pool["sessionmaker"],
        instance=target.claiming(),
        reason=f"clone failed: {reason}",
        timeout=pool["settings"].claim_provision_timeout_seconds,
        claim_id=claim_id,
    )
    if status == "idle":
        pool["queue"].kick()


async def _fail(pool: PoolState, claim_id: str, detail: str) -> None:
    await pool["claims_db"].fail(claim_id=claim_id, outcome=repo.failure(detail))


async def _mark_cloned(
    pool: PoolState, claim_id: str, target: _Target, source: Instance, answer: Cloned
) -> bool:
    params = {
        "claim": claim_id,
        "target": target.id,
        "source": source.id,
        "agent_name": source.agent_name,
        "instructions": source.instructions,
        "profile_image": source.profile_image,
        "metadata": json.dumps(source.metadata_) if source.metadata_ is not None else None,
        "owner": source.owner_id,
        "synced_at": source.template_synced_at,
        "conversation": answer.conversation_id,
        "invite": answer.invite_url,
        "response": json.dumps(answer.model_dump(mode="json", by_alias=True)),
    }
    async with pool["sessionmaker"]() as session, session.begin():
        if (await session.execute(text(MARK_CLONED), params)).first() is None:
            return False
        await event_log.add(session, source.id, "clone.source", actor=event_log.OPERATOR, target=target.id)
        await event_log.add(session, target.id, "clone.target", actor=event_log.OPERATOR, source=source.id)
        return True
