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


# In every statement that picks one instance, $1 is the claim and $2 the instance ids it must not
# get (those it already tried). The caller marks the picked row `claiming` in the same statement,
# and only if it is still idle (the lock makes that certain; the condition says so).
def pick_idle(template: str, condition: str = "", *, limit: str = "1", exclude: str | None = "$2") -> str:
    if exclude is not None:
        condition = f" AND NOT (id = ANY({exclude}::text[])){condition}"
    return f"""
    SELECT id FROM instances
     WHERE status = 'idle' AND template_id = {template}{condition}
     ORDER BY template_version DESC, created_at
     LIMIT {limit}
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

# RESERVE for a batch of claims at once (`pool.claims.batches`): what concurrent claims send while
# one statement is in flight goes as one, its arguments as arrays in the order of RESERVE's ($1 the
# claim ids, $2 callers, $3 keys, $4 request hashes, $5 joinUrls, $6 sources, $7 templates, $8
# owners). Each template picks as many of its idle instances as the batch has claims of it, by the
# same rule and no barging, and the k-th claim of a template gets its k-th instance (which claim of
# one batch gets which instance does not matter: they arrived together). A claim that conflicts,
# with a claim already stored or with one earlier in the batch, is not inserted and its instance is
# not taken, as in RESERVE. One row per claim, RESERVE's columns plus `claim_id`.
RESERVE_MANY = f"""
WITH batch AS MATERIALIZED (
    SELECT b.*, row_number() OVER (PARTITION BY b.template ORDER BY b.n) AS k
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                  $8::text[])
           WITH ORDINALITY AS b(claim_id, caller, idempotency_key, request_hash, join_url, source, template,
                                owner_id, n)
), wanted AS (
    SELECT template, count(*) AS n FROM batch GROUP BY template
), picked AS MATERIALIZED (
    SELECT wanted.template, p.id, row_number() OVER (PARTITION BY wanted.template) AS k
      FROM wanted CROSS JOIN LATERAL (
          {pick_idle("wanted.template", no_barging("wanted.template"), limit="wanted.n", exclude=None)}
      ) AS p
), paired AS (
    SELECT batch.*, picked.id AS instance_id FROM batch JOIN picked USING (template, k)
), inserted AS (
    INSERT INTO claims (id, caller, idempotency_key, request_hash, join_url, status, instance_id, source,
                        template, owner_id)
    SELECT claim_id, caller, idempotency_key, request_hash, join_url, 'pending', instance_id, source,
           template, owner_id
      FROM paired ORDER BY n
    ON CONFLICT DO NOTHING
    RETURNING id, instance_id
), taken AS (
    UPDATE instances {MARK_CLAIMING}
     WHERE id IN (SELECT instance_id FROM inserted) AND status = 'idle'
    RETURNING id, url, gateway_token_enc
)
SELECT batch.claim_id, paired.instance_id AS picked, inserted.id IS NOT NULL AS inserted,
       taken.id, taken.url, taken.gateway_token_enc
  FROM batch
  LEFT JOIN paired USING (claim_id)
  LEFT JOIN inserted ON inserted.id = batch.claim_id
  LEFT JOIN taken ON taken.id = inserted.instance_id
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

# MARK_CLAIMED for a batch (`pool.claims.batches`), its arguments as arrays in MARK_CLAIMED's order
# (metadata and response as JSON text). The same conditions per claim; the claims are locked in
# one order (by id), as every statement that locks several does. The ids of the claims recorded.
MARK_CLAIMED_MANY = """
WITH batch AS MATERIALIZED (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
        AS b(instance_id, status, agent_name, instructions, join_url, profile_image, metadata, owner_id,
             conversation_id, invite_url, claim_id, response)
), claim AS MATERIALIZED (
    SELECT claims.id
      FROM claims JOIN batch ON claims.id = batch.claim_id AND claims.instance_id = batch.instance_id
     WHERE claims.status = 'pending'
     ORDER BY claims.id
       FOR UPDATE OF claims
), instance AS (
    UPDATE instances
       SET status = batch.status, agent_name = batch.agent_name, instructions = batch.instructions,
           join_url = batch.join_url, profile_image = batch.profile_image, metadata = batch.metadata::jsonb,
           owner_id = batch.owner_id, conversation_id = batch.conversation_id, invite_url = batch.invite_url,
           claimed_at = now(), status_changed_at = now(), updated_at = now(), last_error = NULL
      FROM batch
     WHERE instances.id = batch.instance_id AND instances.status = 'claiming'
       AND batch.claim_id IN (SELECT id FROM claim)
    RETURNING instances.id
)
UPDATE claims
   SET status = 'succeeded', response = batch.response::jsonb, updated_at = now()
  FROM batch
 WHERE claims.id = batch.claim_id AND claims.id IN (SELECT id FROM claim)
   AND batch.instance_id IN (SELECT id FROM instance)
RETURNING claims.id
"""

# The claim's own failure, recorded once: if a kill or the tick ended it first, theirs stands.
FAIL = """
UPDATE claims SET status = 'failed', response = $2::jsonb, updated_at = now()
 WHERE id = $1 AND status = 'pending'
RETURNING id
"""

DELETE_PENDING = "DELETE FROM claims WHERE id = $1 AND status = 'pending'"
