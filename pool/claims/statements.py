"""The claim path's SQL: which instance a claim gets, and each step as one atomic statement.

The one definition of which instance a claim gets (`pick_idle`): an idle one of the claim's
template, its newest version first (DESIGN.md §11: after a new version, old idle ones serve only
once the new ones are gone), oldest first within it, that no other claim holds, locked with SKIP
LOCKED so concurrent claims on any replica take different rows instead of waiting on, or
double-taking, the same one. The partial index `ix_instances_idle_pick` yields it in that order
without sorting every idle row (an `, id` tie-break once cost 1.4 ms of PostgreSQL CPU per claim
at 1,000 idle).

No barging (DESIGN.md §10): every statement here that picks an idle instance for a claim that
did not come through the queue picks only while no claim of its template is queued, in the same
statement; an instance that becomes idle while claims wait goes to the queue's head
(`pool.claims.queue_db.DISPATCH`). The idle claim still costs the same two statements.

`db.ClaimsDb` runs them.
"""

from __future__ import annotations

from pool.templates.schemas import DEFAULT_TEMPLATE_ID

# A claim that names no template is served from this one (DESIGN.md §11).
DEFAULT_TEMPLATE = DEFAULT_TEMPLATE_ID


def no_barging(template_param: str) -> str:
    """The condition under which a claim outside the queue may take an idle instance."""
    queued = f"SELECT 1 FROM claims q WHERE q.status = 'queued' AND q.template = {template_param}"
    return f" AND NOT EXISTS ({queued})"


# In every statement that picks, $1 is the claim and $2 the instance ids it must not get (those
# it already tried). The caller marks the picked row `claiming` in the same statement, and only
# if it is still idle (the lock makes that certain; the condition says so).
def pick_idle(template: str, condition: str = "") -> str:
    return f"""
    SELECT id FROM instances
     WHERE status = 'idle' AND template_id = {template} AND NOT (id = ANY($2::text[])){condition}
     ORDER BY template_version DESC, created_at
     LIMIT 1
     FOR UPDATE SKIP LOCKED
"""


MARK_CLAIMING = "SET status = 'claiming', status_changed_at = now(), updated_at = now()"

# The common claim in ONE statement: pick, register the claim already attached to the instance,
# and mark it `claiming`. The claim is inserted only when an instance was picked, and the instance
# is taken only when the claim was inserted (ON CONFLICT: an Idempotency-Key of the same caller, or
# an active joinUrl, that already has a claim; a concurrent insert of the same key waits for the
# other to commit). `picked` NULL (no idle instance) or no `taken` row (a duplicate) sends the
# caller to `register`, which decides between waiting, deduplicating and 503. `picked` is
# MATERIALIZED so the row the claim is attached to is the row that was locked, evaluated once.
RESERVE = f"""
WITH picked AS MATERIALIZED ({pick_idle("$7", no_barging("$7"))}), inserted AS (
    INSERT INTO claims (id, caller, idempotency_key, request_hash, join_url, status, instance_id, source,
                        template, owner_id)
    SELECT $1, $6, $3, $4, $5, 'pending', picked.id, $8, $7, $9 FROM picked
    ON CONFLICT DO NOTHING
    RETURNING instance_id
), taken AS (
    UPDATE instances {MARK_CLAIMING}
     WHERE id = (SELECT instance_id FROM inserted) AND status = 'idle'
    RETURNING id, url, gateway_token_enc
)
SELECT (SELECT id FROM picked) AS picked,
       (SELECT count(*) FROM inserted) AS inserted,
       taken.id, taken.url, taken.gateway_token_enc
  FROM (SELECT 1) AS one LEFT JOIN taken ON true
"""

# Every write that moves a claim forward first locks it while it is still `pending` (claim, then
# instance: the kill's `release_claims_of` goes in the same order), so nothing attaches an
# instance to, or records success on, a claim that a kill or the tick has ended meanwhile.
LOCK_PENDING = "SELECT id, template FROM claims WHERE id = $1 AND status = 'pending' FOR UPDATE"
CLAIM_TEMPLATE = "(SELECT template FROM claim)"


# Give a pending claim an instance of its template: pick, mark `claiming`, attach.
def take(condition: str) -> str:
    return f"""
WITH claim AS MATERIALIZED ({LOCK_PENDING}),
picked AS MATERIALIZED ({pick_idle(CLAIM_TEMPLATE, condition)}), taken AS (
    UPDATE instances {MARK_CLAIMING}
     WHERE id = (SELECT id FROM picked) AND status = 'idle'
    RETURNING id, url, gateway_token_enc
), attached AS (
    UPDATE claims SET instance_id = taken.id, updated_at = now()
      FROM taken WHERE claims.id = (SELECT id FROM claim)
)
SELECT id, url, gateway_token_enc FROM taken
"""


# The claim's template's queue must be empty.
TAKE = take(no_barging(CLAIM_TEMPLATE))
# A claim the queue assigned whose first instance failed was served at its turn, ahead of everyone
# still queued: its second instance is no barging.
TAKE_AS_HEAD = take("")

# A concurrent insert of the same key blocks here until its transaction ends, so a duplicate
# either sees the first claim or becomes the first claim itself.
INSERT_CLAIM = """
INSERT INTO claims (id, caller, idempotency_key, request_hash, join_url, status, source, template, owner_id)
VALUES ($1, $5, $2, $3, $4, 'pending', $6, $7, $8)
ON CONFLICT DO NOTHING
RETURNING id
"""

# The instance write is conditional on `claiming` (a kill that raced the claim wins) and on the
# claim still pending on this instance; the claim is marked succeeded only if that write happened.
MARK_CLAIMED = """
WITH claim AS MATERIALIZED (
    SELECT id FROM claims WHERE id = $11 AND status = 'pending' AND instance_id = $1 FOR UPDATE
), instance AS (
    UPDATE instances
       SET status = $2, agent_name = $3, instructions = $4, join_url = $5, profile_image = $6,
           metadata = $7::jsonb, owner_id = $8, conversation_id = $9, invite_url = $10,
           claimed_at = now(), status_changed_at = now(), updated_at = now(), last_error = NULL
     WHERE id = $1 AND status = 'claiming' AND EXISTS (SELECT 1 FROM claim)
    RETURNING id
)
UPDATE claims
   SET status = 'succeeded', response = $12::jsonb, updated_at = now()
 WHERE id = (SELECT id FROM claim) AND EXISTS (SELECT 1 FROM instance)
RETURNING id
"""

# The claim's own failure, recorded once: if a kill or the tick ended it first, theirs stands.
FAIL = """
UPDATE claims SET status = 'failed', response = $2::jsonb, updated_at = now()
 WHERE id = $1 AND status = 'pending'
RETURNING id
"""

DELETE_PENDING = "DELETE FROM claims WHERE id = $1 AND status = 'pending'"
