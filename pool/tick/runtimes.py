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

The rotation's memory (`TickContext.runtime_checked`) lives in the tick context, so a new leader starts with
every idle instance due; the per-tick bound keeps that first burst small.

Requests go through the pool's one `InstanceClient` (aiohttp: httpx cost 5–7 ms of CPU per
request on the reference machine against ~0.4 ms), at most `probe_concurrency` at once, never retried.
"""

from __future__ import annotations

import math
import time

from pool.status import Runtime
from pool.tick.context import TickContext
from pool.tick.plan import Row, seen_healthy
from pool.tick.probes import bounded, runtime_status
from shared.schemas import StatusBatch

ALWAYS_ASKED = frozenset({"starting", "sleeping", "crashed"})


def rotation(
    last: dict[str, float],
    idle: list[str],
    *,
    now: float,
    period: float,
    interval: float,
    cap: int,
    population: int | None = None,
) -> list[str]:
    """The idle ids to ask this tick, among `idle` (the ones observed healthy this tick); `last`
    maps an id to when it was last asked (monotonic). The spread is over `population`, every
    idle instance (default: `idle`), since a tick observes only a slice of them."""
    if period <= 0:
        return idle
    per_tick = min(cap, math.ceil((len(idle) if population is None else population) * interval / period))
    never = -math.inf
    due = [i for i in idle if now - last.get(i, never) >= period]
    due.sort(key=lambda i: last.get(i, never))
    return due[:per_tick]


def select(
    ctx: TickContext, rows: list[Row], batch: StatusBatch, *, everything: bool = False
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
    s, now = ctx.settings, time.monotonic()
    # Only ids still in the pool are remembered, so the map never outgrows the fleet (built from
    # the rows, without a set of every id: a tick's transient containers make its peak RSS).
    checked = ctx.runtime_checked
    last = {row.id: t for row in rows if (t := checked.get(row.id)) is not None}
    due = rotation(
        last,
        idle,
        now=now,
        period=s.idle_runtime_check_seconds,
        interval=s.tick_interval_seconds,
        cap=s.idle_runtime_checks_per_tick,
        population=sum(1 for row in rows if row.status == "idle" and row.failed_probes == 0),
    )
    last.update(dict.fromkeys(due, now))
    ctx.runtime_checked = last
    chosen = set(due)
    return wanted + due, skipped + [i for i in idle if i not in chosen]


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
