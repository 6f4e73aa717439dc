"""The end of a soak run: faults stop, the pool must come back to its target, the claim resources
still followed end, then a sweep, then nothing may be billed that no instance owns."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import httpx

from devtools.soak.hostile import HOSTILE
from devtools.soak.leaks import check_leaks
from devtools.soak.system import SERVICES_KEY

if TYPE_CHECKING:
    from devtools.soak.chaos import Soak


async def quiesce(soak: Soak, timeout: float = 120.0) -> None:
    """Faults stop: the profile's own dice go quiet, the pool must come back to its target, then a
    sweep, then nothing may be billed that no instance owns."""
    system = soak.system
    for faults in [system.railway.settings.faults, *system.vendors.faults.values()]:
        faults.calm()
        faults.with_profile(error_rate=0.0, timeout_rate=0.0, burst_rate=0.0)
    system.railway.settings.operation_latency_seconds.clear()
    for app in (system.services, system.pool):
        if app.proc is None or app.proc.poll() is not None:
            app.start()
        await app.ready()
    calm = time.monotonic()
    deadline = calm + timeout
    target, limit = system.config.min_idle, system.config.max_total
    counts: dict[str, Any] = {}
    async with system.operator() as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                counts = (await http.get("/api/pool/counts")).json()
                moving = sum(int(counts.get(s, 0)) for s in ("creating", "starting", "claiming"))
                bound = sum(int(counts.get(s, 0)) for s in ("claimed", "pending_acceptance", "crashed"))
                # The target, as far as max_total leaves room for it beside the bound instances.
                if int(counts.get("idle", 0)) >= min(target, limit - bound) and moving == 0:
                    soak.report.converge_seconds = time.monotonic() - calm
                    break
            await asyncio.sleep(0.5)
        else:
            soak.report.add([("no_convergence", f"not {target} idle within {timeout}s: {counts}")])
        # The claim resources still followed end by their own bounds (their agents are let go).
        await soak.claims.settle()
        if soak.templates is not None:
            # Each template at its own target, and the last rollout ended (bounded by its window
            # and the stuck timeout when its canaries never became healthy).
            await soak.templates.quiesce(http, timeout)
        # Each hostile body once more against a warm pool (mid-run the pool is often empty and
        # refuses with 503 before reading the body), so a refusal that comes too late shows.
        for name, hostile in HOSTILE:
            await soak._claim(http, "hostile", hostile, label=name)
    # Past every grace, then the sweep removes what nobody owns.
    await asyncio.sleep(6.0)
    async with httpx.AsyncClient(
        base_url=system.services.url, headers={"Authorization": f"Bearer {SERVICES_KEY}"}, timeout=60
    ) as services:
        for _ in range(2):
            with contextlib.suppress(httpx.HTTPError):
                swept = await services.post("/sweep")
                soak._record("sweep", swept)
            await asyncio.sleep(1.0)
    soak.report.add(await check_leaks(system))
