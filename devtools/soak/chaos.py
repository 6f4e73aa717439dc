"""The chaos soak: a claim workload and a fault schedule, both drawn from one seeded RNG, against the
real processes of devtools/soak/system.py, with DESIGN §14's invariants checked every couple of
seconds, then again after the faults stop, the pool converges and services sweeps.

Workload: claims with fresh joinUrls, retries of one Idempotency-Key, bursts on one joinUrl, hostile
bodies. Faults: Railway 429 storms, HTTP-200 errors, lost answers (timeouts), slow creates; vendor
5xx and 429 storms; SIGKILL and restart of services or of the pool; pg_terminate_backend of every
app connection; operator kill of a claiming or claimed instance, drain, replenish.

`python -m devtools.soak --mode shared --seconds 600 --seed 7` runs one and prints its report; a
failing run replays with the same seed (`SOAK_SEED`): the dice are the same, the interleaving of
real processes is not, so a rare violation may need a few runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from typing import Any

import httpx

from devtools.soak.agents import Agents
from devtools.soak.invariants import Answer, Ledger, check_answers, check_leaks, check_pool
from devtools.soak.report import Report
from devtools.soak.system import SERVICES_KEY, System

FAULTS = (
    "railway_429_storm",
    "railway_http200_errors",
    "railway_timeouts",
    "slow_create",
    "vendor_5xx",
    "vendor_429_storm",
    "kill_services",
    "kill_pool",
    "terminate_db_connections",
    "operator_kill",
    "operator_drain_replenish",
)
# 2,000 characters outside the Basic Multilingual Plane: too big for a btree index entry.
ASTRAL = "\U0001f600" * 2000
HOSTILE: list[tuple[str, Any]] = [
    ("nul_instructions", {"agentName": "a", "instructions": "x\u0000y"}),
    ("nul_metadata", {"agentName": "a", "instructions": "x", "metadata": {"k": "\u0000"}}),
    ("nan_metadata", '{"agentName": "a", "instructions": "x", "metadata": {"k": NaN}}'),
    ("nul_join_url", {"agentName": "a", "instructions": "x", "joinUrl": "https://convos.org/\u0000"}),
    ("lone_surrogate", '{"agentName": "\\ud800", "instructions": "x"}'),
    ("astral_join_url", {"agentName": "a", "instructions": "x", "joinUrl": "https://c.org/" + ASTRAL}),
    ("huge_body", {"agentName": "a", "instructions": "x" * 3_000_000}),
]  # fmt: skip


class Soak:
    def __init__(self, system: System, seconds: float) -> None:
        self.system = system
        self.seconds = seconds
        # One stream per job, so the faults drawn do not depend on how many claims were sent.
        self.rng = random.Random(system.config.seed)
        self.chaos_rng = random.Random(system.config.seed + 1)
        self.report = Report(system.config.mode, system.config.seed, seconds)
        self.answers: list[Answer] = []
        self.ledger = Ledger()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self.claiming_bound = 120.0
        self.agents = Agents(system)

    # -- the workload ------------------------------------------------------------------------

    async def _claim(
        self, http: httpx.AsyncClient, kind: str, body: Any, key: str | None = None, label: str = ""
    ) -> None:
        headers = {"Idempotency-Key": key} if key else {}
        answer = Answer(kind, None, key=key, join_url=body.get("joinUrl") if isinstance(body, dict) else None)
        try:
            if isinstance(body, str):
                headers["Content-Type"] = "application/json"
                response = await http.post("/api/pool/claim?wait=2", content=body.encode(), headers=headers)
            else:
                response = await http.post("/api/pool/claim?wait=2", json=body, headers=headers)
            answer.status = response.status_code
            answer.error = f"{label} {response.text[:300]}" if response.status_code >= 400 else label
            if response.status_code == 200:
                answer.instance_id = response.json().get("instanceId")
                if kind != "hostile" and answer.instance_id:
                    # The conversation ends after a while and the operator removes the instance:
                    # the churn that keeps the fleet creating.
                    self._spawn(self._agent_life(http, answer.instance_id))
        except httpx.TimeoutException as exc:
            answer.error = f"timeout: {exc!r}"
        except httpx.HTTPError as exc:
            answer.error = f"no answer: {exc!r}"
        self.answers.append(answer)
        self.report.operations[kind] += 1
        self.report.answers[f"{kind}:{answer.status}"] += 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def workload(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            roll = self.rng.random()
            join = f"https://convos.org/join/{uuid.UUID(int=self.rng.getrandbits(128)).hex}"
            body = {"agentName": "soak", "instructions": "be brief", "joinUrl": join}
            if roll < 0.45:
                self._spawn(self._claim(http, "claim", body))
            elif roll < 0.65:
                key = f"soak-{self.rng.getrandbits(64):x}"
                for attempt in range(self.rng.randint(2, 3)):
                    self._spawn(self._delayed(attempt * self.rng.uniform(0.2, 2.0), http, "retry", body, key))
            elif roll < 0.8:
                for _ in range(self.rng.randint(2, 4)):
                    self._spawn(self._claim(http, "same_join_url", body))
            else:
                # In turn, so even a short run sends each hostile body.
                name, hostile = HOSTILE[self.report.operations["hostile"] % len(HOSTILE)]
                self.report.operations[f"hostile:{name}"] += 1
                self._spawn(self._claim(http, "hostile", hostile, label=name))
            await self._sleep(self.rng.uniform(0.5, 1.5))

    async def _agent_life(self, http: httpx.AsyncClient, instance_id: str) -> None:
        """The agent uses its tools through the proxy; then its conversation ends and the operator
        removes it, or (every fourth agent that could use its tools, the first included, so even a
        short run sees one) it leaves by itself through self-destruct."""
        await self._sleep(self.rng.uniform(1.0, 5.0))
        answers = await self.agents.use_tools(instance_id, self.rng)
        for answer in answers:
            self._note(answer)
        if not answers:  # already gone (an operator kill, a drain): nothing left to end
            return
        leaves_by_itself = self.report.operations["agent_with_tools"] % 4 == 0
        self.report.operations["agent_with_tools"] += 1
        await self._sleep(self.rng.uniform(2.0, 10.0))
        if leaves_by_itself:
            for answer in await self.agents.self_destruct(instance_id):
                self._note(answer)
            return
        with contextlib.suppress(httpx.HTTPError):
            self._record("end_conversation", await http.delete(f"/api/pool/instances/{instance_id}"))

    def _note(self, answer: Answer) -> None:
        self.answers.append(answer)
        self.report.operations[answer.kind] += 1
        self.report.answers[f"{answer.kind}:{answer.status}"] += 1

    async def _delayed(self, delay: float, http: httpx.AsyncClient, kind: str, body: Any, key: str) -> None:
        await asyncio.sleep(delay)
        await self._claim(http, kind, body, key)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    # -- the faults --------------------------------------------------------------------------

    async def inject(self, fault: str) -> None:
        system, rng = self.system, self.chaos_rng
        railway_faults = system.railway.settings.faults
        self.report.faults[fault] += 1
        if fault == "railway_429_storm":
            railway_faults.storm(rng.randint(5, 30))
        elif fault == "railway_http200_errors":
            system.railway.fail_next(rng.randint(3, 12))
        elif fault == "railway_timeouts":
            railway_faults.outage(rng.randint(1, 3), "timeout")
        elif fault == "slow_create":
            latency = system.railway.settings.operation_latency_seconds
            latency["ServiceCreate"] = latency["ProjectCreate"] = rng.uniform(1.0, 2.5)
            self._spawn(self._later(rng.uniform(2.0, 6.0), latency.clear))
        elif fault in ("vendor_5xx", "vendor_429_storm"):
            vendor = rng.choice(sorted(system.vendors.faults))
            outcome = "error" if fault == "vendor_5xx" else "429"
            system.vendors.faults[vendor].outage(rng.randint(2, 10), outcome)  # type: ignore[arg-type]
        elif fault in ("kill_services", "kill_pool"):
            app = system.services if fault == "kill_services" else system.pool
            await system.restart(app, rng.uniform(0.2, 2.0))
        elif fault == "terminate_db_connections":
            await system.terminate_connections()
        elif fault == "operator_kill":
            await self._operator_kill()
        elif fault == "operator_drain_replenish":
            async with system.operator() as http:
                with contextlib.suppress(httpx.HTTPError):
                    self._record("drain", await http.post("/api/pool/drain", json={"count": 1}))
                    await self._sleep(rng.uniform(0.2, 1.0))
                    self._record("replenish", await http.post("/api/pool/replenish", json={"count": 1}))

    def _record(self, kind: str, response: httpx.Response) -> None:
        self.answers.append(Answer(kind, response.status_code, error=response.text[:300]))
        self.report.operations[kind] += 1

    async def _operator_kill(self) -> None:
        """Kill an instance mid-claim when one is claiming (else a claimed one), as an operator may."""
        async with self.system.operator() as http:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                listed = (await http.get("/api/pool/instances")).json()
                claiming = [i["id"] for i in listed if i.get("status") == "claiming"]
                claimed = [i["id"] for i in listed if i.get("status") in ("claimed", "pending_acceptance")]
                target = claiming or claimed
                if target:
                    victim = self.chaos_rng.choice(target)
                    self.report.operations["operator_kill_claiming" if claiming else "operator_kill"] += 1
                    self._record("kill", await http.delete(f"/api/pool/instances/{victim}"))

    async def _later(self, seconds: float, action: Any) -> None:
        await self._sleep(seconds)
        action()

    async def chaos(self) -> None:
        # Every kind in turn, in a seeded order, so even a short run meets each one.
        order: list[str] = []
        while not self._stop.is_set():
            await self._sleep(self.chaos_rng.uniform(0.5, 1.5))
            if self._stop.is_set():
                return
            if not order:
                order = self.chaos_rng.sample(FAULTS, len(FAULTS))
            fault = order.pop()
            try:
                await self.inject(fault)
            except Exception as exc:  # a fault that cannot be injected is reported, not fatal
                self.report.add([("harness_error", f"{fault}: {exc!r}"[:300])])

    async def watch(self) -> None:
        while not self._stop.is_set():
            await self._sleep(2.0)
            with contextlib.suppress(OSError, ConnectionError):
                self.report.add(
                    await check_pool(self.system, self.ledger, claiming_bound=self.claiming_bound)
                )

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> Report:
        started = time.monotonic()
        # The client's own timeout: a claim waits at most `wait` plus two instance tries.
        async with self.system.operator() as http:
            http.timeout = httpx.Timeout(90.0)
            jobs = [self.workload(http), self.chaos(), self.watch()]
            runners = [asyncio.create_task(job) for job in jobs]
            await asyncio.sleep(self.seconds)
            self._stop.set()
            await asyncio.gather(*runners, return_exceptions=True)
            # Every claim request gets its answer (or its timeout) before the answers are judged.
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=120)
            await self.quiesce()
        self.report.add(check_answers(self.answers))
        if self.report.operations["agent_life"] and not (
            self.report.operations["proxy"] and self.report.operations["self_destruct"]
        ):
            self.report.add(
                [("agents_idle", f"claimed agents did not use their tools: {self.report.operations}")]
            )
        self.report.add(await check_pool(self.system, self.ledger, claiming_bound=self.claiming_bound))
        self.report.injected = {
            "railway": dict(self.system.railway.settings.faults.injected)
            | {f"rejected:{k}": v for k, v in self.system.railway.rejected.items()},
            **self.system.vendors.injected(),
        }
        self.report.restarts = {
            "services": self.system.services.starts - 1,
            "pool": self.system.pool.starts - 1,
        }
        self.report.seconds = time.monotonic() - started
        return self.report

    async def quiesce(self, timeout: float = 120.0) -> None:
        """Faults stop: the profile's own dice go quiet, the pool must come back to its target, then a
        sweep, then nothing may be billed that no instance owns."""
        system = self.system
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
                        self.report.converge_seconds = time.monotonic() - calm
                        break
                await asyncio.sleep(0.5)
            else:
                self.report.add([("no_convergence", f"not {target} idle within {timeout}s: {counts}")])
            # Each hostile body once more against a warm pool (mid-run the pool is often empty and
            # refuses with 503 before reading the body), so a refusal that comes too late shows.
            for name, hostile in HOSTILE:
                await self._claim(http, "hostile", hostile, label=name)
        # Past every grace, then the sweep removes what nobody owns.
        await asyncio.sleep(6.0)
        async with httpx.AsyncClient(
            base_url=system.services.url, headers={"Authorization": f"Bearer {SERVICES_KEY}"}, timeout=60
        ) as services:
            for _ in range(2):
                with contextlib.suppress(httpx.HTTPError):
                    swept = await services.post("/sweep")
                    self._record("sweep", swept)
                await asyncio.sleep(1.0)
        self.report.add(await check_leaks(system))
