"""The chaos soak: a claim workload and a fault schedule, both drawn from one seeded RNG, against the
real processes of devtools/soak/system.py, with DESIGN §14's invariants checked every couple of
seconds, then again after the faults stop, the pool converges and services sweeps.

Workload: claims with fresh joinUrls, retries of one Idempotency-Key, bursts on one joinUrl, hostile
bodies, claims as resources (devtools/soak/claims.py: queued, followed, cancelled, timed out); with
`SoakConfig(templates=True)`, two more templates that part of those claims name, a canary and a
recreate rollout and an archive during the run (devtools/soak/templates.py).
Faults: Railway 429 storms, HTTP-200 errors, lost answers (timeouts), slow creates; vendor 5xx and
429 storms; SIGKILL and restart of services or of the pool; pg_terminate_backend of every app
connection; operator kill of a claiming or claimed instance, drain, replenish.

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
from collections import defaultdict
from typing import Any

import httpx

from devtools.soak.agents import Agents
from devtools.soak.claims import ClaimResources, end_bound
from devtools.soak.hostile import HOSTILE
from devtools.soak.invariants import (
    Answer,
    Ledger,
    check_answers,
    check_claim_rows,
    check_claims,
    check_pool,
    check_templates,
)
from devtools.soak.quiesce import quiesce
from devtools.soak.report import Report
from devtools.soak.system import System
from devtools.soak.templates import Templates

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
        self.claims = ClaimResources(self)
        # Templates and rollouts (devtools/soak/templates.py), when the config asks for them.
        self.templates = Templates(self) if system.config.templates else None
        # When each instance was let go (conversation ended, self-destruct, operator kill).
        self.releases: dict[str, list[float]] = defaultdict(list)

    # -- the workload ------------------------------------------------------------------------

    async def _claim(
        self, http: httpx.AsyncClient, kind: str, body: Any, key: str | None = None, label: str = ""
    ) -> None:
        headers = {"Idempotency-Key": key} if key else {}
        answer = Answer(kind, None, key=key, join_url=body.get("joinUrl") if isinstance(body, dict) else None)
        if isinstance(body, dict) and body.get("templateId"):
            answer.template = str(body["templateId"])
        try:
            if isinstance(body, str):
                headers["Content-Type"] = "application/json"
                response = await http.post("/api/pool/claim?wait=2", content=body.encode(), headers=headers)
            else:
                response = await http.post("/api/pool/claim?wait=2", json=body, headers=headers)
            answer.status = response.status_code
            answer.json_body = response.headers.get("content-type", "").startswith("application/json")
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
            template = self.templates.choose() if self.templates is not None else None
            if template is not None:
                body["templateId"] = template
            if roll < 0.3:
                self._spawn(self._claim(http, "claim", body))
            elif roll < 0.45:
                key = f"soak-{self.rng.getrandbits(64):x}"
                for attempt in range(self.rng.randint(2, 3)):
                    self._spawn(self._delayed(attempt * self.rng.uniform(0.2, 2.0), http, "retry", body, key))
            elif roll < 0.55:
                for _ in range(self.rng.randint(2, 4)):
                    self._spawn(self._claim(http, "same_join_url", body))
            elif roll < 0.85:
                self.claims.start(http, self.rng, template)
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
                self._released(instance_id, answer.status)
            return
        with contextlib.suppress(httpx.HTTPError):
            ended = await http.delete(f"/api/pool/instances/{instance_id}")
            self._record("end_conversation", ended)
            self._released(instance_id, ended.status_code)

    def _released(self, instance_id: str, status: int | None) -> None:
        if status is not None and status < 300:
            self.releases[instance_id].append(time.monotonic())

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
                    killed = await http.delete(f"/api/pool/instances/{victim}")
                    self._record("kill", killed)
                    self._released(victim, killed.status_code)

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
                    await check_pool(
                        self.system,
                        self.ledger,
                        claiming_bound=self.claiming_bound,
                        claim_end_bound=end_bound(self),
                    )
                )

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> Report:
        started = time.monotonic()
        # The client's own timeout: a claim waits at most `wait` plus two instance tries.
        async with self.system.operator() as http:
            http.timeout = httpx.Timeout(90.0)
            jobs = [self.workload(http), self.chaos(), self.watch()]
            if self.templates is not None:
                # Made before the faults start; their steps run with them.
                await self.templates.setup(http)
                jobs.append(self.templates.steps(http))
            runners = [asyncio.create_task(job) for job in jobs]
            await asyncio.sleep(self.seconds)
            self._stop.set()
            await asyncio.gather(*runners, return_exceptions=True)
            # Every claim request gets its answer (or its timeout) before the answers are judged; the
            # claim resources are followed on through the quiesce.
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=120)
            await quiesce(self)
        self.report.add(check_answers(self.answers))
        if self.report.operations["agent_life"] and not (
            self.report.operations["proxy"] and self.report.operations["self_destruct"]
        ):
            self.report.add(
                [("agents_idle", f"claimed agents did not use their tools: {self.report.operations}")]
            )
        self.report.add(await check_pool(self.system, self.ledger, claiming_bound=self.claiming_bound))
        traces = list(self.claims.traces.values())
        self.report.add(check_claims(traces, self.answers, self.releases, end_bound=end_bound(self)))
        self.report.add(await check_claim_rows(self.system.pool_db, traces, end_bound=end_bound(self)))
        if self.templates is not None:
            self.report.add(
                await check_templates(self.system.pool_db, self.templates.run, traces, self.answers)
            )
            self.report.templates = await self.templates.summary()
        if not (any(t.ended for t in traces) and self.report.operations["claims_sse"]):
            self.report.add(
                [("claims_idle", f"no claim resource followed to its end: {self.report.operations}")]
            )
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
