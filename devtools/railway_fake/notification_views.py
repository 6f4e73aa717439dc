"""Resolvers of the fake's notification rules and deliveries (`notifications.py` keeps them)."""

from __future__ import annotations

from typing import Any

from devtools.railway_fake.context import Context, fail
from devtools.railway_fake.views import PROBLEM, connection, iso


def q_notification_rules(ctx: Context, args: dict[str, Any]) -> Any:
    rules = ctx.fake.notifications.rules.values()
    return [
        _rule_view(rule)
        for rule in rules
        if rule.workspace_id == args["workspaceId"]
        and (not args.get("projectId") or rule.project_id == args["projectId"])
    ]


def _rule_view(rule: Any) -> dict[str, Any]:
    made = iso(rule.created_at)
    return {
        "id": rule.id,
        "workspaceId": rule.workspace_id,
        "projectId": rule.project_id,
        "eventTypes": rule.event_types,
        "severities": [],
        "createdAt": made,
        "updatedAt": made,
        "channels": [
            {
                "id": f"{rule.id}-{n}",
                "config": config,
                "workspaceId": rule.workspace_id,
                "createdAt": made,
                "updatedAt": made,
            }
            for n, config in enumerate(rule.channel_configs)
        ],
    }


def q_notification_deliveries(ctx: Context, args: dict[str, Any]) -> Any:
    wanted = args.get("filter") or {}
    if wanted.get("type") not in (None, "WEBHOOK"):
        deliveries: list[Any] = []
    else:
        deliveries = [
            d
            for d in ctx.fake.notifications.deliveries
            if all(
                not wanted.get(key) or getattr(d, attr) == wanted[key]
                for key, attr in (
                    ("workspaceId", "workspace_id"),
                    ("projectId", "project_id"),
                    ("environmentId", "environment_id"),
                )
            )
        ]
    paging = {k: args.get(k) for k in ("first", "after", "last", "before")}
    return connection(deliveries, _delivery_view, **paging)


def _delivery_view(delivery: Any) -> dict[str, Any]:
    made = iso(delivery.created_at)
    return {
        "id": delivery.id,
        "createdAt": made,
        "updatedAt": made,
        "status": delivery.status,
        "type": "WEBHOOK",
        "notificationInstance": {
            "id": delivery.id,
            "createdAt": made,
            "updatedAt": made,
            "eventType": delivery.event_type,
            "serviceId": delivery.service_id,
            "environmentId": delivery.environment_id,
            "projectId": delivery.project_id,
            "workspaceId": delivery.workspace_id or "",
            "payload": delivery.payload,
        },
    }


def m_notification_rule_create(ctx: Context, args: dict[str, Any]) -> Any:
    spec = args["input"]
    if not spec.get("workspaceId"):
        raise fail(PROBLEM)
    return _rule_view(ctx.fake.notifications.create_rule(spec))


def m_notification_rule_delete(ctx: Context, args: dict[str, Any]) -> bool:
    if ctx.fake.notifications.rules.pop(args["id"], None) is None:
        raise fail("Notification rule not found")
    return True
