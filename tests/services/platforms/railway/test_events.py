"""Railway's deploy events: the payload parser, the notification rule made once per URL, the
catch-up from the delivery list, and the fake delivering (late, or not at all) as a rule says."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI, Request

from devtools.faults import Faults
from services.platforms.railway.events import EVENT_TYPES
from tests.services.platforms.railway.harness import TOKEN, Harness
from tests.support import serve

URL = "https://services.example/webhooks/railway/s3cret-s3cret-s3cret-s3cret"


def delivery(kind: str = "Deployment.deployed", **resource: Any) -> dict[str, Any]:
    ids = {"service": {"id": "svc-1"}, "environment": {"id": "env-1"}, **resource}
    return {"type": kind, "resource": ids, "details": {"status": "SUCCESS"}}


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (delivery(), {"service_id": "svc-1", "environment_id": "env-1"}),
        (delivery("Deployment.crashed"), {"service_id": "svc-1", "environment_id": "env-1"}),
        # Another project of the workspace, in shared mode: not ours without asking the database.
        (delivery(project={"id": "someone-elses"}), None),
        (delivery("Volume.alert"), None),
        (delivery(service=None), None),
        ({"type": "Deployment.deployed"}, None),
        ({"type": 7, "resource": {}}, None),
        ([1, 2], None),
        ("text", None),
    ],
)
def test_a_delivery_names_a_service_in_an_environment_or_nothing(
    railway: Harness, body: Any, match: dict[str, str] | None
) -> None:
    platform = railway.platform("shared", webhook_secret="s" * 24)
    event = platform.parse_event(body)
    assert (event.match if event else None) == match


def test_the_webhook_secret_is_long_and_url_safe(railway: Harness) -> None:
    with pytest.raises(ValueError, match="webhook_secret"):
        railway.settings("shared", webhook_secret="short")
    with pytest.raises(ValueError, match="webhook_secret"):
        railway.settings("shared", webhook_secret="a/b" * 10)


async def test_the_rule_is_created_once_per_url(railway: Harness) -> None:
    platform = railway.platform("per-instance", workspace_id="ws-1")
    assert await platform.subscribe_events(URL) == "created"
    assert await platform.subscribe_events(URL) == "exists"
    rules = list(railway.fake.notifications.rules.values())
    assert len(rules) == 1
    assert (rules[0].workspace_id, rules[0].event_types) == ("ws-1", EVENT_TYPES)
    assert rules[0].channel_configs == [{"type": "webhook", "url": URL}]
    # Another URL (another deployment of services) gets its own rule.
    assert await platform.subscribe_events(URL + "x") == "created"
    assert len(railway.fake.notifications.rules) == 2


async def test_shared_mode_finds_the_workspace_through_the_project(railway: Harness) -> None:
    railway.fake.store.projects[railway.settings("shared").project_id].workspace_id = "ws-9"
    platform = railway.platform("shared")
    assert await platform.subscribe_events(URL) == "created"
    assert [rule.workspace_id for rule in railway.fake.notifications.rules.values()] == ["ws-9"]


async def test_the_fake_delivers_each_status_change_a_rule_lists(railway: Harness) -> None:
    received: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict[str, bool]:
        received.append(await request.json())
        return {"ok": True}

    async with serve(app) as hook_url:
        project = railway.fake.store.create_project("p", "ws-1", TOKEN, "production")
        environment = railway.fake.store.live_environments(project.id)[0]
        railway.fake.notifications.create_rule(
            {
                "workspaceId": "ws-1",
                "eventTypes": EVENT_TYPES,
                "channelConfigs": [{"type": "webhook", "url": f"{hook_url}/hook"}],
            }
        )
        service = railway.fake.store.create_service(project.id, [environment.id], "agent-x")
        instance = railway.fake.store.instances[(service.id, environment.id)]
        instance.image = "img"
        deployment = railway.fake.deploys.start(instance)
        for _ in range(100):
            if deployment.status == "SUCCESS":
                break
            await asyncio.sleep(0.02)
        deployment.move("CRASHED")
        await railway.fake.notifications.settle()
    assert [body["type"] for body in received] == ["Deployment.deployed", "Deployment.crashed"]
    assert received[0]["resource"]["service"]["id"] == service.id
    assert received[0]["resource"]["environment"]["id"] == environment.id
    platform = railway.platform("per-instance", workspace_id="ws-1")
    since = datetime.now(UTC) - timedelta(minutes=5)
    missed = await platform.missed_events(since)
    assert [event.kind for event in missed] == ["Deployment.deployed", "Deployment.crashed"]
    assert missed[0].match == {"service_id": service.id, "environment_id": environment.id}
    # Only what was delivered since `since`.
    assert await platform.missed_events(datetime.now(UTC) + timedelta(seconds=1)) == []


async def test_the_realistic_profile_loses_and_delays_some_events(railway: Harness) -> None:
    faults = Faults.named("realistic", time_scale=0.001, seed=3)
    railway.fake.notifications.faults = faults
    delays = [faults.event_delay() for _ in range(2000)]
    lost = sum(delay is None for delay in delays)
    kept = sorted(delay for delay in delays if delay is not None)
    assert 10 < lost < 90  # about 2 %
    assert 0.0005 < kept[len(kept) // 2] < 0.002  # median 1 s, scaled by 1/1000
    assert faults.injected["event_lost"] == lost
