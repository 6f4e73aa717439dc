"""Which instances a tick asks `GET /convos/status`, and asking them.

Asking every healthy instance every tick doubled the tick's requests (services already probes
`/pool/health` of each): 10,000 authenticated requests per tick from the pool at 10,000 idle
instances. The answer only matters where the plan could change something, so a tick asks:

- `starting`, `sleeping`, `crashed`: promotion to idle (or recovery) needs the runtime's word;
- any instance with failed probes: an answer resets the counter, no answer counts towards death;
- `idle` instances on a slow rotation: each at most once per `idle_runtime_check_seconds`, the
  least recently checked first, no more than `idle_runtime_checks_per_tick` (and no more than an
  even spread of the idle count over the period) per tick;
- never `claimed`/`pending_acceptance` (the runtime's answer changes nothing for them in
  `pool.status`) nor rows in flight.

Only instances this tick observed healthy can be asked, and a tick observes a slice of the steady
fleet (`pool.tick.selection`, each within `POOL_OBSERVE_ROTATION_SECONDS` plus two ticks): the
due ones among them, least recently asked first, with the per-tick spread reckoned over every
idle instance. Trade-off: an idle instance tainted out of band (a conversation we did not give
it, or no longer clean) is found within about one rotation instead of on the next tick: at
10,000 idle with the defaults (600 s, 200 per tick, 30 s ticks) a rotation takes 50 ticks,
25 minutes, plus up to one observation period for the instance to come round in a tick's
slice. A claim in that window still does not hand it out bound to someone else's
conversation: the runtime refuses a second provision (409, DESIGN.md §4) and the claim resets
it or takes another instance. Set `idle_runtime_check_seconds` to 0 to ask every idle instance
a tick observes.

The rotation's stamp is the row's `runtime_checked_at` (the database's clock), as the observation
rotation's is `last_probe_at`: a new leader carries on where the last one was, and the pool holds no
map of every idle id (10,000 entries were ~1 MB of its RSS).

Requests go through the pool's one `InstanceClient` (aiohttp: httpx cost 5–7 ms of CPU per
request on the reference machine against ~0.4 ms), at most `probe_concurrency` at once, never retried.
"""

from __future__ import annotations

import math

from sqlalchemy import text

from pool.status import Runtime
from pool.status_batch import Batch
from pool.tick.context import TickContext
from pool.tick.plan import Row, seen_healthy
from pool.tick.probes import bounded, runtime_status

ALWAYS_ASKED = frozenset({"starting", "sleeping", "crashed"})

# Of the given idle ids, the `size` due (never asked, or not within the period) least recently
# asked first, stamped as asked now in the same statement; the id orders ties.
_DUE = text(
    """
    WITH due AS (
        SELECT id FROM instances
        WHERE id = ANY(CAST(:ids AS text[]))
          AND (runtime_checked_at IS NULL OR runtime_checked_at <= now() - make_interval(secs => :period))
        ORDER BY runtime_checked_at ASC NULLS FIRST, id
        LIMIT :size
    )
    UPDATE instances AS i SET runtime_checked_at = now() FROM due WHERE i.id = due.id
    RETURNING i.id
    """
)


def per_tick(population: int, *, period: float, interval: float, cap: int) -> int:
    """Idle instances one tick asks: an even spread of every idle instance (`population`: a tick
    observes only a slice of them) over the period, at most `cap`."""
    return min(cap, math.ceil(population * interval / period))


async def select(
    ctx: TickContext, rows: list[Row], batch: Batch, *, everything: bool = False
) -> tuple[list[str], list[str]]:
    """(ids to ask, healthy ids not asked). `everything`: an operator's recheck asks all."""
    wanted, idle, skipped = [], [], []
    for row in seen_healthy(rows, batch):
        if everything or row.status in ALWAYS_ASKED or row.failed_probes > 0:
            wanted.append(row.id)
        elif row.status == "idle":
            idle.append(row.id)
        else:
            skipped.append(row.id)
    if everything:
        return wanted, []
    s = ctx.settings
    if s.idle_runtime_check_seconds <= 0 or not idle:
        return wanted + idle, skipped
    size = per_tick(
        sum(1 for row in rows if row.status == "idle" and row.failed_probes == 0),
        period=s.idle_runtime_check_seconds,
        interval=s.tick_interval_seconds,
        cap=s.idle_runtime_checks_per_tick,
    )
    async with ctx.sessionmaker.begin() as session:
        found = await session.execute(
            _DUE, {"ids": idle, "period": float(s.idle_runtime_check_seconds), "size": size}
        )
        chosen = set(found.scalars())
    return wanted + [i for i in idle if i in chosen], skipped + [i for i in idle if i not in chosen]


async def ask(
    ctx: TickContext,
    ids: list[str],
    urls: dict[str, str | None],
    tokens: dict[str, str | None],
) -> dict[str, Runtime | None]:
    items = [(i, url, token) for i in ids if (url := urls.get(i)) and (token := tokens.get(i))]
    answers = await bounded(
        items, ctx.settings.probe_concurrency, lambda item: runtime_status(ctx, item[1], item[2])
    )
    return {item[0]: answer for item, answer in zip(items, answers, strict=True)}
