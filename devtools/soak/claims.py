"""Claims as resources under the chaos (DESIGN §10): `POST /api/pool/claims`, then the claim followed
by polling `GET /api/pool/claims/{id}` or its server-sent events, some cancelled while queued
(`DELETE`), some retried with their Idempotency-Key, some with a short `timeoutSeconds` so they time
out in the queue, some with a priority. What each claim showed is kept in a `ClaimTrace` for
devtools/soak/invariants.py; a claim that succeeded lives its agent's life as the other claims do.

Each claim draws its dice from its own seeded stream, so they do not depend on the interleaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from devtools.soak.invariants import Answer, ClaimTrace, Sighting

if TYPE_CHECKING:
    from devtools.soak.chaos import Soak

# Each kind first (one whose claim was not created, the pool being down, comes again), then in
# turn, with extra dice: so even a short run sends each kind.
VARIANTS = ("sse", "cancel", "keyed_retry", "short_timeout", "priority", "plain")
ENDED = ("succeeded", "failed", "cancelled")
POLL_SECONDS = (0.2, 0.6)


def end_bound(soak: Soak) -> float:
    """How long past its deadline a claim may still be unended: one assigned at its last moment
    provisions for up to the pool's stale bound (pool/config.py claim_stale_seconds, with the soak's
    timeouts and the defaults of the rest), then the tick ends or requeues it; plus a restart."""
    provision = soak.system.config.client_timeout
    return 2 * 3 * provision + 45.0 + 30.0 + 15.0


class ClaimResources:
    def __init__(self, soak: Soak) -> None:
        self.soak = soak
        self.traces: dict[str, ClaimTrace] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, http: httpx.AsyncClient, rng: random.Random, template: str | None = None) -> None:
        ops = self.soak.report.operations
        missing = [v for v in VARIANTS if not ops[f"claims:{v}"]]
        variant = missing[0] if missing else VARIANTS[ops["claims"] % len(VARIANTS)]
        ops["claims"] += 1
        dice = random.Random(rng.getrandbits(64))
        task = asyncio.create_task(self._one(http, variant, dice, template))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def settle(self) -> None:
        """Every claim followed to its end (each follow ends by its own bound)."""
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=end_bound(self.soak) + 60)

    # -- one claim ---------------------------------------------------------------------------

    async def _one(
        self, http: httpx.AsyncClient, variant: str, dice: random.Random, template: str | None
    ) -> None:
        join = f"https://convos.org/join/{uuid.UUID(int=dice.getrandbits(128)).hex}"
        body: dict[str, Any] = {"agentName": "soak", "instructions": "be brief", "joinUrl": join}
        if template is not None:
            body["templateId"] = template
        short = variant == "short_timeout" or dice.random() < 0.15
        body["timeoutSeconds"] = dice.randint(1, 2) if short else dice.randint(5, 20)
        if variant == "priority" or dice.random() < 0.2:
            body["priority"] = dice.choice([-1, 1, 5])
        key = (
            f"soak-claim-{dice.getrandbits(64):x}"
            if variant == "keyed_retry" or dice.random() < 0.2
            else None
        )
        trace = await self._create(http, body, key)
        if trace is None:
            return
        self.soak.report.operations[f"claims:{variant}"] += 1
        if key is not None:
            await asyncio.sleep(dice.uniform(0.1, 1.5))
            again = await self._create(http, body, key, retry_of=trace)
            self.soak.report.operations["claims:retried"] += 1
            if again is not None and again is not trace:
                await self._follow(http, again, dice, cancel=False, sse=False)
        cancel = variant == "cancel" or dice.random() < 0.15
        sse = variant == "sse" or dice.random() < 0.15
        await self._follow(http, trace, dice, cancel=cancel, sse=sse)

    async def _create(
        self,
        http: httpx.AsyncClient,
        body: dict[str, Any],
        key: str | None,
        retry_of: ClaimTrace | None = None,
    ) -> ClaimTrace | None:
        headers = {"Idempotency-Key": key} if key else {}
        data = await self._ask(http, "claims_create", "POST", "/api/pool/claims", json=body, headers=headers)
        if data is None or "id" not in data:
            return None
        known = self.traces.get(data["id"])
        trace = known or ClaimTrace(
            id=data["id"], answered_at=time.monotonic(), timeout_seconds=body["timeoutSeconds"],
            priority=int(body.get("priority", 0)), key=key, template=body.get("templateId", "default"),
        )  # fmt: skip
        self.traces[trace.id] = trace
        if retry_of is not None and trace is not retry_of:
            trace.retry_of = retry_of.id
        trace.sightings.append(_sighting("post", data))
        return trace

    async def _follow(
        self, http: httpx.AsyncClient, trace: ClaimTrace, dice: random.Random, *, cancel: bool, sse: bool
    ) -> None:
        end_by = trace.answered_at + trace.timeout_seconds + end_bound(self.soak)
        cancel_at = (
            time.monotonic() + dice.uniform(0.0, min(1.0, trace.timeout_seconds / 2)) if cancel else None
        )
        if sse:  # an ended claim's stream is its final event
            await self._stream(http, trace, end_by)
        while trace.last not in ENDED and time.monotonic() < end_by:
            if cancel_at is not None and time.monotonic() >= cancel_at and trace.last == "queued":
                cancel_at = None
                await self._cancel(http, trace)
                continue
            data = await self._ask(http, "claims_get", "GET", f"/api/pool/claims/{trace.id}")
            if data is not None and "status" in data:
                trace.sightings.append(_sighting("get", data))
            if trace.last not in ENDED:
                await asyncio.sleep(dice.uniform(*POLL_SECONDS))
        trace.ended = trace.last in ENDED
        if not trace.ended:
            return
        self.soak.report.operations[f"claims_ended:{trace.last}"] += 1
        await self._look_again(http, trace)
        if trace.last == "succeeded" and trace.instance_id:
            # The agent's life (tools, then released); then the claim must still read as it ended.
            await self.soak._agent_life(http, trace.instance_id)
            await self._look_again(http, trace)

    async def _look_again(self, http: httpx.AsyncClient, trace: ClaimTrace) -> None:
        data = await self._ask(http, "claims_get", "GET", f"/api/pool/claims/{trace.id}")
        if data is not None and "status" in data:
            trace.sightings.append(_sighting("get", data))

    async def _cancel(self, http: httpx.AsyncClient, trace: ClaimTrace) -> None:
        data = await self._ask(http, "claims_cancel", "DELETE", f"/api/pool/claims/{trace.id}")
        if data is not None and data.get("status") == "cancelled":
            trace.cancelled = True
            self.soak.report.operations["claims_cancelled"] += 1
        if data is not None and "status" in data and data.get("id") == trace.id:
            trace.sightings.append(_sighting("delete", data))

    async def _stream(self, http: httpx.AsyncClient, trace: ClaimTrace, end_by: float) -> None:
        """Follow the claim's events until its final one (or the stream breaks: polling takes over)."""
        self.soak.report.operations["claims_sse"] += 1
        answer = Answer("claims_events", None)
        name = ""
        try:
            async with asyncio.timeout(max(0.0, end_by - time.monotonic())):
                async with http.stream("GET", f"/api/pool/claims/{trace.id}/events") as stream:
                    answer.status = stream.status_code
                    if stream.status_code != 200:
                        body = await stream.aread()
                        answer.error, answer.json_body = body.decode(errors="replace")[:300], _is_json(body)
                        return
                    async for line in stream.aiter_lines():
                        if line.startswith("event: "):
                            name = line.removeprefix("event: ")
                        elif line.startswith("data: "):
                            data = json.loads(line.removeprefix("data: "))
                            trace.sightings.append(_sighting("sse", data, event=name))
                            self.soak.report.operations[f"claims_sse_event:{name}"] += 1
        except TimeoutError:
            answer.error = "timeout: the event stream outlived the claim's bound"
        except (httpx.HTTPError, ValueError) as exc:
            answer.error = f"stream broken: {exc!r}"[:300]
        finally:
            self.soak._note(answer)

    async def _ask(
        self, http: httpx.AsyncClient, kind: str, method: str, path: str, **kwargs: Any
    ) -> dict[str, Any] | None:
        """One request, noted as an answer; its JSON object when it answered 2xx, else None."""
        data = await ask(self.soak._note, http, kind, method, path, **kwargs)
        return data if isinstance(data, dict) else None


async def ask(
    note: Callable[[Answer], None],
    http: httpx.AsyncClient,
    kind: str,
    method: str,
    path: str,
    *,
    lists: bool = False,
    **kwargs: Any,
) -> Any:
    """One request, noted as an answer (a JSON body is an object, or also a list with `lists`);
    its parsed JSON when it answered 2xx, else None. The soak's claim and operator workloads share it."""
    answer = Answer(kind, None)
    data: Any = None
    try:
        response = await http.request(method, path, **kwargs)
        answer.status, answer.error = response.status_code, f"{method} {path} {response.text[:300]}"
        with contextlib.suppress(ValueError):
            data = response.json()
        answer.json_body = isinstance(data, dict | list) if lists else isinstance(data, dict)
    except httpx.TimeoutException as exc:
        answer.error = f"timeout: {method} {path} {exc!r}"
    except httpx.HTTPError as exc:
        answer.error = f"no answer: {method} {path} {exc!r}"
    note(answer)
    ok = answer.status is not None and 200 <= answer.status < 300
    return data if ok else None


def _sighting(via: str, data: dict[str, Any], event: str = "") -> Sighting:
    claim = data.get("claim") or {}
    error = data.get("error") or {}
    return Sighting(
        at=time.monotonic(),
        via=f"{via}:{event}" if event else via,
        status=str(data.get("status")),
        instance_id=claim.get("instanceId"),
        error=str(error.get("error", "")) if isinstance(error, dict) else "",
    )


def _is_json(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False
