"""Notification rules and their webhook deliveries on the fake (specs/railway.md §10).

`notificationRuleCreate` stores a rule; each status change of a deployment whose word a rule's
`eventTypes` lists is POSTed to the rule's webhook URLs as the original system read them:
`{type: "Deployment.<word>", resource: {workspace, project, environment, service, deployment},
details: {status}}`, unsigned. With a faults profile each delivery waits the profile's event delay
or is lost (`event_loss_rate`), so consumers see late and missing events; every delivery tried is
listed by `notificationDeliveries` (SENT, or FAILED when lost or refused).
A project made without a workspace (tests) is delivered to every rule.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from devtools.faults import Faults
from devtools.railway_fake.store import Deployment, Store, new_id, utcnow

# Deployment status → the event type a rule subscribes to (the original's names).
EVENT_OF_STATUS = {
    "SUCCESS": "Deployment.deployed",
    "CRASHED": "Deployment.crashed",
    "FAILED": "Deployment.failed",
    "SLEEPING": "Deployment.slept",
}
DELIVERY_TIMEOUT_SECONDS = 10.0


@dataclass
class Rule:
    id: str
    workspace_id: str
    event_types: list[str]
    channel_configs: list[dict[str, Any]]
    project_id: str | None = None
    created_at: datetime = field(default_factory=utcnow)


@dataclass
class Delivery:
    id: str
    rule_id: str
    url: str
    event_type: str
    payload: dict[str, Any]
    project_id: str
    environment_id: str
    service_id: str
    workspace_id: str | None
    status: str = "PENDING"
    created_at: datetime = field(default_factory=utcnow)


class Notifications:
    def __init__(self, store: Store, faults: Faults) -> None:
        self.store = store
        self.faults = faults
        self.rules: dict[str, Rule] = {}
        self.deliveries: list[Delivery] = []
        # What each webhook answered, by status code ("lost" for the ones never sent).
        self.outcomes: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        store.on_deployment_move = self.deployment_moved

    def create_rule(self, spec: dict[str, Any]) -> Rule:
        rule = Rule(
            new_id(),
            spec["workspaceId"],
            list(spec["eventTypes"]),
            [dict(c) for c in spec["channelConfigs"] if isinstance(c, dict)],
            spec.get("projectId"),
        )
        self.rules[rule.id] = rule
        return rule

    def deployment_moved(self, deployment: Deployment) -> None:
        event_type = EVENT_OF_STATUS.get(deployment.status)
        if event_type is None:
            return
        project = self.store.projects.get(deployment.project_id)
        workspace_id = project.workspace_id if project else None
        for rule in list(self.rules.values()):
            if event_type not in rule.event_types:
                continue
            if workspace_id is not None and rule.workspace_id != workspace_id:
                continue
            if rule.project_id and rule.project_id != deployment.project_id:
                continue
            for config in rule.channel_configs:
                if config.get("type") == "webhook" and isinstance(config.get("url"), str):
                    self._send(rule, config["url"], event_type, deployment, workspace_id)

    def payload(self, event_type: str, deployment: Deployment, workspace_id: str | None) -> dict[str, Any]:
        service = self.store.services.get(deployment.service_id)
        return {
            "type": event_type,
            "severity": "INFO" if event_type == "Deployment.deployed" else "WARNING",
            "timestamp": deployment.updated_at.isoformat().replace("+00:00", "Z"),
            "resource": {
                "workspace": {"id": workspace_id},
                "project": {"id": deployment.project_id},
                "environment": {"id": deployment.environment_id},
                "service": {"id": deployment.service_id, "name": service.name if service else None},
                "deployment": {"id": deployment.id},
            },
            "details": {"status": deployment.status, "id": deployment.id},
        }

    def _send(
        self, rule: Rule, url: str, event_type: str, deployment: Deployment, workspace_id: str | None
    ) -> None:
        delivery = Delivery(
            new_id(),
            rule.id,
            url,
            event_type,
            self.payload(event_type, deployment, workspace_id),
            deployment.project_id,
            deployment.environment_id,
            deployment.service_id,
            workspace_id,
        )
        self.deliveries.append(delivery)
        delay = self.faults.event_delay() if self.faults.active else 0.0
        if delay is None:
            delivery.status = "FAILED"
            self.outcomes["lost"] = self.outcomes.get("lost", 0) + 1
            return
        task = asyncio.get_running_loop().create_task(self._deliver(delivery, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if self._http is None:
            self._http = httpx.AsyncClient()
        try:
            response = await self._http.post(
                delivery.url, json=delivery.payload, timeout=DELIVERY_TIMEOUT_SECONDS
            )
            code = response.status_code
        except httpx.HTTPError:
            code = 0
        delivery.status = "SENT" if 200 <= code < 300 else "FAILED"
        key = str(code)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait for the deliveries in flight (tests), at most `timeout` seconds."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._http is not None:
            await self._http.aclose()
            self._http = None
