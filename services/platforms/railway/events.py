"""Railway's deploy events (specs/railway.md §10): the notification rule that delivers them to
services' webhook, the payloads it delivers, and the delivery list used to catch up.

A delivery is unsigned: the secret in its URL is its only authentication, so it is turned into a
`DeployEvent` (which service, in which environment) and never into a status. The payload fields
read are the original system's: `{type: "Deployment.<word>", resource: {service: {id},
environment: {id}, project: {id}}, details: {status}}`; anything else is ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.platforms.base import DeployEvent
from services.platforms.railway.client import RailwayClient
from services.platforms.railway.settings import RailwaySettings
from shared.errors import PermanentError
from shared.logging import get_logger

log = get_logger("services.platforms.railway.events")

# The original's rule (railway.md §10); only `Deployment.failed` is named in Railway's docs.
EVENT_TYPES = [
    "Deployment.deployed",
    "Deployment.crashed",
    "Deployment.failed",
    "Deployment.oom_killed",
    "Deployment.slept",
    "Deployment.resumed",
]
EVENT_PREFIX = "Deployment."
# The catch-up reads at most this many pages of deliveries (newest first on Railway's side is not
# documented, so every page read is filtered by time); the tick sees whatever is beyond them.
CATCHUP_PAGES = 5
CATCHUP_PAGE_SIZE = 100


def _id(resource: dict[str, Any], key: str) -> str | None:
    part = resource.get(key)
    value = part.get("id") if isinstance(part, dict) else None
    return value if isinstance(value, str) and value else None


def parse_event(body: Any, settings: RailwaySettings) -> DeployEvent | None:
    """The service and environment a delivery names, or None when it cannot concern us."""
    if not isinstance(body, dict):
        return None
    kind = body.get("type")
    resource = body.get("resource")
    if not isinstance(kind, str) or not kind.startswith(EVENT_PREFIX) or not isinstance(resource, dict):
        return None
    return _event(
        kind, _id(resource, "service"), _id(resource, "environment"), _id(resource, "project"), settings
    )


def _event(
    kind: str,
    service_id: str | None,
    environment_id: str | None,
    project_id: str | None,
    settings: RailwaySettings,
) -> DeployEvent | None:
    if not service_id or not environment_id:
        return None
    if settings.mode == "shared" and project_id and project_id != settings.project_id:
        # Another project of the workspace (the rule is the workspace's): not ours, no database read.
        return None
    # Rows record both ids (RailwayRef), so an event of the same service in another environment
    # (a PR environment, staging) matches no row.
    return DeployEvent(match={"service_id": service_id, "environment_id": environment_id}, kind=kind)


class RailwayEvents:
    def __init__(self, client: RailwayClient, settings: RailwaySettings) -> None:
        self.client = client
        self.settings = settings
        self._workspace_id = settings.workspace_id or None

    async def workspace_id(self) -> str:
        if self._workspace_id is None:
            if not self.settings.project_id:
                raise PermanentError("deploy events need RAILWAY_WORKSPACE_ID (or RAILWAY_PROJECT_ID)")
            data = await self.client.execute("ProjectWorkspace", {"projectId": self.settings.project_id})
            found = data["project"].get("workspaceId")
            if not found:
                raise PermanentError("the project has no workspace; set RAILWAY_WORKSPACE_ID")
            self._workspace_id = str(found)
        return self._workspace_id

    async def ensure_rule(self, url: str) -> str:
        """Create the workspace rule delivering our event types to `url`, unless a rule already
        delivers to that URL (the original made duplicates before it checked): "created" | "exists"."""
        workspace_id = await self.workspace_id()
        data = await self.client.execute("NotificationRules", {"workspaceId": workspace_id})
        for rule in data["notificationRules"]:
            for channel in rule.get("channels") or []:
                config = channel.get("config")
                if isinstance(config, dict) and config.get("url") == url:
                    return "exists"
        rule_input = {
            "workspaceId": workspace_id,
            "eventTypes": EVENT_TYPES,
            "channelConfigs": [{"type": "webhook", "url": url}],
        }
        # Not repeated after an answer we did not see: a lost answer would make a duplicate rule,
        # and the next start-up finds the one that was made.
        await self.client.execute("NotificationRuleCreate", {"input": rule_input}, repeatable=False)
        return "created"

    async def missed(self, since: datetime) -> list[DeployEvent]:
        """Deploy events of the workspace's webhook deliveries created since `since` (bounded)."""
        workspace_id = await self.workspace_id()
        found: list[DeployEvent] = []
        after: str | None = None
        for _ in range(CATCHUP_PAGES):
            variables = {
                "filter": {"workspaceId": workspace_id, "type": "WEBHOOK"},
                "first": CATCHUP_PAGE_SIZE,
                "after": after,
            }
            connection = (await self.client.execute("NotificationDeliveries", variables))[
                "notificationDeliveries"
            ]
            for edge in connection["edges"]:
                node = edge["node"]
                if datetime.fromisoformat(str(node["createdAt"]).replace("Z", "+00:00")) < since:
                    continue
                notice = node.get("notificationInstance") or {}
                kind = notice.get("eventType")
                if isinstance(kind, str) and kind.startswith(EVENT_PREFIX):
                    event = _event(
                        kind,
                        notice.get("serviceId"),
                        notice.get("environmentId"),
                        notice.get("projectId"),
                        self.settings,
                    )
                    if event is not None and event not in found:
                        found.append(event)
            if not connection["pageInfo"]["hasNextPage"]:
                break
            after = connection["pageInfo"]["endCursor"]
        return found
