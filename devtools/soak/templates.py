"""Templates under the chaos (DESIGN §11): besides `default`, the soak creates two templates through
the operator API (`POST /api/templates`), each with its own minIdle, and names them in part of its
claims (`templateId`). During the run, as an operator would:
- `second` gets a new version with a `canary` rollout (one canary, a short window); once that has
  rolled on or back (or after a bound), another version with a `recreate` rollout;
- `archived` is archived half-way; claims keep naming it (a 409 each) and must get none of it.
What the soak saw (versions published, each rollout's end as the status API showed it) is kept in a
`TemplateRun` for devtools/soak/invariants.py (`check_templates`).

A PATCH is not idempotent (sent again it makes another version), so a publish whose answer was lost
is looked up among the template's versions by its instructions before it is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import httpx

from devtools.soak.claims import ask
from devtools.soak.invariants import FINAL_PHASES, TemplateRun

if TYPE_CHECKING:
    from devtools.soak.chaos import Soak

SECOND = {"slug": "soak-second", "name": "Soak second", "minIdle": 2}
ARCHIVED = {"slug": "soak-archived", "name": "Soak archived", "minIdle": 1}
# The share of claims that name each template (the rest name none: `default`).
SECOND_SHARE = 0.25
ARCHIVED_SHARE = 0.06
CANARY = {"strategy": "canary", "count": 1, "windowSeconds": 10}
RECREATE = {"strategy": "recreate", "floor": 1}
# When each step happens, as a share of the chaos: the canary, the archive, and the recreate (not
# before the canary ended, and at the latest by its share of the run).
CANARY_AT, ARCHIVE_AT, RECREATE_AT, RECREATE_LATEST = 0.2, 0.4, 0.55, 0.7
T = TypeVar("T")
# Every operator call is tried again while the pool is down, up to this long.
ATTEMPT_SECONDS = 60.0


class Templates:
    def __init__(self, soak: Soak) -> None:
        self.soak = soak
        self.run = TemplateRun()
        self.rng = random.Random(soak.system.config.seed + 2)

    # -- the claims' share -------------------------------------------------------------------

    def choose(self) -> str | None:
        """The template a claim names (None: none, so `default`); drawn from its own stream so the
        rest of the workload's dice stay those of a run without templates."""
        roll = self.rng.random()
        if roll < SECOND_SHARE and self.run.second:
            return self.run.second
        if roll < SECOND_SHARE + ARCHIVED_SHARE and self.run.archived:
            return self.run.archived
        return None

    # -- the operator's steps ----------------------------------------------------------------

    async def setup(self, http: httpx.AsyncClient) -> None:
        """Both templates, version 1, before the faults start (a create's lost answer is found by
        its slug: sent again it would be a 409)."""
        for spec in (SECOND, ARCHIVED):
            body = {
                "slug": spec["slug"],
                "name": spec["name"],
                "instructions": f"{spec['slug']} v1",
                "poolPolicy": {"minIdle": spec["minIdle"], "sizing": "fixed"},
            }
            template_id = await self._attempt(http, functools.partial(self._create, http, body))
            if template_id is None:
                continue
            if spec is SECOND:
                self.run.second = template_id
            else:
                self.run.archived = template_id
            self.soak.report.operations["templates_created"] += 1

    async def steps(self, http: httpx.AsyncClient) -> None:
        """The rollouts and the archive, at their shares of the run."""
        archive = asyncio.create_task(self._archive_at(http, ARCHIVE_AT * self.soak.seconds))
        try:
            await self._rollouts(http)
            await archive
        except Exception as exc:  # a step that breaks is the harness's fault, reported
            archive.cancel()
            self.soak.report.add([("harness_error", f"template steps: {exc!r}"[:300])])

    async def _rollouts(self, http: httpx.AsyncClient) -> None:
        started, seconds = time.monotonic(), self.soak.seconds
        if self.run.second is None:
            return
        await self.soak._sleep(CANARY_AT * seconds)
        if self.soak._stop.is_set():
            return
        canary = await self._publish(http, "canary", CANARY)
        if canary is not None:
            latest = started + RECREATE_LATEST * seconds
            await self.until_ended(http, canary, latest - time.monotonic())
        await self.soak._sleep(max(0.0, started + RECREATE_AT * seconds - time.monotonic()))
        if not self.soak._stop.is_set():
            await self._publish(http, "recreate", RECREATE)

    async def _archive_at(self, http: httpx.AsyncClient, delay: float) -> None:
        await self.soak._sleep(delay)
        template_id = self.run.archived
        if template_id is None or self.soak._stop.is_set():
            return

        async def archive() -> bool | None:
            data = await self._ask(http, "template_archive", "POST", f"/api/templates/{template_id}/archive")
            return None if data is None else bool(data.get("archivedAt"))

        if await self._attempt(http, archive):
            self.run.archived_at = time.monotonic()
            self.soak.report.operations["templates_archived"] += 1

    async def _publish(self, http: httpx.AsyncClient, strategy: str, rollout: dict[str, Any]) -> int | None:
        assert self.run.second is not None
        marker = f"soak-second {strategy} {len(self.run.published) + 2}"
        path = f"/api/templates/{self.run.second}"

        async def publish() -> int | None:
            known = await self._version_with(http, marker)
            if known is not None:
                return known
            data = await self._ask(
                http, "template_publish", "PATCH", path, json={"instructions": marker, "rollout": rollout}
            )
            return None if data is None else int(data["currentVersion"])

        version = await self._attempt(http, publish)
        if version is not None:
            self.run.published.append((strategy, version))
            self.soak.report.operations[f"template_publish:{strategy}"] += 1
        return version

    async def until_ended(
        self, http: httpx.AsyncClient, version: int, seconds: float
    ) -> dict[str, Any] | None:
        """Follow the second template's rollout of `version` in the status API until it rolled on
        or back (kept in the run's outcomes), at most `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.soak._stop.is_set():
            rollout = await self.rollout(http)
            if rollout is not None and rollout.get("version") == version:
                self.run.outcomes[version] = rollout
                if rollout.get("phase") in FINAL_PHASES:
                    return rollout
            await asyncio.sleep(1.0)
        return self.run.outcomes.get(version)

    async def rollout(self, http: httpx.AsyncClient) -> dict[str, Any] | None:
        for pool in await self.pools(http):
            if pool.get("templateId") == self.run.second:
                rollout = pool.get("rollout")
                return rollout if isinstance(rollout, dict) else None
        return None

    async def pools(self, http: httpx.AsyncClient) -> list[dict[str, Any]]:
        """Each template's pool as the status API shows it (empty while the pool does not answer)."""
        with contextlib.suppress(httpx.HTTPError, ValueError):
            response = await http.get("/api/pool/status")
            if response.status_code == 200:
                return [p for p in response.json().get("templates", []) if isinstance(p, dict)]
        return []

    async def settled(self, http: httpx.AsyncClient) -> tuple[bool, bool, list[dict[str, Any]]]:
        """Whether nothing is on its way and every live template has its target idle, as far as
        max_total leaves room (agents whose end was lost to a kill stay bound and fill it: the
        round of creates then leaves a template short), and whether the second template's last
        rollout has ended (the quiesce waits for it)."""
        pools = await self.pools(http)
        live = [p for p in pools if not p.get("archived")]
        counts = [{s: int(n) for s, n in (p.get("counts") or {}).items()} for p in pools]
        moving = sum(c.get(s, 0) for c in counts for s in ("creating", "starting", "claiming"))
        full = sum(sum(c.values()) for c in counts) >= self.soak.system.config.max_total
        at_target = all(int((p.get("counts") or {}).get("idle", 0)) >= int(p.get("target", 0)) for p in live)
        warm = bool(live) and moving == 0 and (at_target or full)
        rollout = next((p.get("rollout") for p in live if p.get("templateId") == self.run.second), None)
        ended = not self.run.published or (isinstance(rollout, dict) and rollout.get("phase") in FINAL_PHASES)
        if isinstance(rollout, dict) and self.run.published:
            self.run.outcomes[int(rollout.get("version", 0))] = rollout
        return warm, ended, pools

    async def quiesce(self, http: httpx.AsyncClient, timeout: float) -> None:
        """Once the faults stopped and the claims ended: every live template reaches its own target
        and the last rollout ends (one that does not is `check_templates`' to report)."""
        deadline = time.monotonic() + timeout
        warm, ended, pools = await self.settled(http)
        while not (warm and ended) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            warm, ended, pools = await self.settled(http)
        if not warm:
            shown = [
                {k: p.get(k) for k in ("slug", "target", "counts", "idleByVersion", "rollout")} for p in pools
            ]
            self.soak.report.add(
                [
                    (
                        "template_no_convergence",
                        f"not every template at its target (as far as max_total leaves room) within "
                        f"{timeout}s: {shown}",
                    )
                ]
            )

    async def summary(self) -> dict[str, Any]:
        """The run's figures: claims per template and how they ended, the rollouts and their ends."""
        conn = await asyncpg.connect(self.soak.system.pool_db)
        try:
            rows = await conn.fetch("SELECT template, status, count(*) AS n FROM claims GROUP BY 1, 2")
        finally:
            await conn.close()
        names = {self.run.second: "second", self.run.archived: "archived"}
        claims: dict[str, dict[str, int]] = {}
        for r in rows:
            claims.setdefault(names.get(r["template"], r["template"]), {})[r["status"]] = int(r["n"])
        return {
            "ids": {"second": self.run.second, "archived": self.run.archived},
            "claims": claims,
            "rollouts": [
                {"strategy": strategy, "version": version}
                | {
                    k: v
                    for k, v in (self.run.outcomes.get(version) or {}).items()
                    if k in ("phase", "reason")
                }
                for strategy, version in self.run.published
            ],
            "archived": self.run.archived_at is not None,
        }

    # -- requests ----------------------------------------------------------------------------

    async def _create(self, http: httpx.AsyncClient, body: dict[str, Any]) -> str | None:
        data = await self._ask(http, "template_create", "POST", "/api/templates", json=body)
        if data is not None:
            return str(data["id"])
        listed = await self._ask(http, "template_list", "GET", "/api/templates")
        found = [t for t in (listed or {}).get("items", []) if t.get("slug") == body["slug"]]
        return str(found[0]["id"]) if found else None

    async def _version_with(self, http: httpx.AsyncClient, instructions: str) -> int | None:
        versions = await self._ask(
            http, "template_versions", "GET", f"/api/templates/{self.run.second}/versions"
        )
        for version in (versions or {}).get("items", []):
            if version.get("instructions") == instructions:
                return int(version["version"])
        return None

    async def _attempt(self, http: httpx.AsyncClient, step: Callable[[], Awaitable[T | None]]) -> T | None:
        """`step()` until it gives something, the pool being down or the answer lost meanwhile."""
        deadline = time.monotonic() + ATTEMPT_SECONDS
        while time.monotonic() < deadline:
            result = await step()
            if result is not None:
                return result
            await asyncio.sleep(1.0)
        self.soak.report.add([("templates_idle", f"operator step gave nothing in {ATTEMPT_SECONDS:.0f}s")])
        return None

    async def _ask(
        self, http: httpx.AsyncClient, kind: str, method: str, path: str, **kwargs: Any
    ) -> dict[str, Any] | None:
        """One operator request, noted as an answer; its JSON (a list as `items`) when it answered 2xx."""
        data = await ask(self.soak._note, http, kind, method, path, lists=True, **kwargs)
        return {"items": data} if isinstance(data, list) else data if isinstance(data, dict) else None
