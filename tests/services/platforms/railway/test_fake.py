"""The fake behaves like Railway where the provider depends on it (specs/railway.md §3-7)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.railway_fake.server import SCHEMA_PATH
from services.platforms.railway.operations import operation
from tests.services.platforms.railway.harness import TOKEN, Harness

SHARED_SCHEMA = Path(__file__).resolve().parents[5] / "shared" / "specs" / "railway" / "schema.graphql"


async def post(
    h: Harness,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str = TOKEN,
    name: str | None = None,
) -> httpx.Response:
    body = {"query": query, "variables": variables or {}, "operationName": name}
    return await h.http.post(f"{h.url}/graphql/v2", json=body, headers={"Authorization": f"Bearer {token}"})


async def create_project(h: Harness, name: str = "agent-p", token: str = TOKEN) -> httpx.Response:
    return await post(
        h, operation("ProjectCreate"), {"input": {"name": name}}, token=token, name="ProjectCreate"
    )


def test_vendored_schema_is_the_published_one() -> None:
    if not SHARED_SCHEMA.exists():
        pytest.skip("../shared/specs/railway/schema.graphql is not present")
    lines = SCHEMA_PATH.read_text().splitlines(keepends=True)
    body = "".join(lines[next(i for i, line in enumerate(lines) if not line.startswith("#")) + 1 :])
    assert body == SHARED_SCHEMA.read_text()


async def test_invalid_document_is_http_400(railway: Harness) -> None:
    response = await post(railway, "query Q { project(id: 1) { nope } }", name="Q")
    assert response.status_code == 400
    assert response.json()["errors"]


async def test_resolver_error_is_http_200_with_errors_and_null_data(railway: Harness) -> None:
    response = await post(railway, operation("ProjectEnvironments"), {"projectId": "missing"})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["message"] == "Project not found"
    assert body["errors"][0]["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}


async def test_unimplemented_field_answers_problem_processing_request(railway: Harness) -> None:
    response = await post(railway, "query { regions { name } }")
    assert response.status_code == 200
    assert response.json()["errors"][0]["message"] == "Problem processing request"


async def test_bad_token_is_not_authorized(railway: Harness) -> None:
    response = await post(railway, operation("ProjectEnvironments"), {"projectId": "x"}, token="wrong")
    assert response.json() == {
        "data": None,
        "errors": [{"message": "Not Authorized", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}],
    }


async def test_over_rate_is_429_with_retry_after(railway: Harness) -> None:
    railway.fake.settings.requests_per_second = 2
    statuses = [
        (await post(railway, "query { projects { edges { node { id } } } }")).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    response = await post(railway, "query { projects { edges { node { id } } } }")
    assert response.headers["Retry-After"] == "1"
    assert response.json() == {"data": None}


async def test_project_creation_is_throttled_per_token(railway: Harness) -> None:
    railway.fake.settings.project_create_interval = 0.3
    assert "errors" not in (await create_project(railway, "agent-a")).json()
    second = (await create_project(railway, "agent-b")).json()
    assert second["errors"][0]["message"] == "You are creating projects too quickly"
    assert "errors" not in (await create_project(railway, "agent-c", token="rw-test-token-2")).json()
    await asyncio.sleep(0.3)
    assert "errors" not in (await create_project(railway, "agent-d")).json()


async def test_project_delete_is_soft_and_a_second_delete_is_not_found(railway: Harness) -> None:
    project_id = (await create_project(railway)).json()["data"]["projectCreate"]["id"]
    deleted = await post(railway, operation("ProjectDelete"), {"id": project_id})
    assert deleted.json() == {"data": {"projectDelete": True}}
    assert railway.fake.store.projects[project_id].deleted_at is not None
    listed = await post(railway, operation("Projects"), {})
    assert listed.json()["data"]["projects"]["edges"] == []
    again = await post(railway, operation("ProjectDelete"), {"id": project_id})
    assert again.json()["errors"][0]["message"] == "Project not found"


async def _service(railway: Harness, *, source: bool = False) -> tuple[str, str, str]:
    data = (await create_project(railway)).json()["data"]["projectCreate"]
    project_id, env_id = data["id"], data["environments"]["edges"][0]["node"]["id"]
    service_input: dict[str, Any] = {"projectId": project_id, "environmentId": env_id, "name": "agent"}
    if source:
        service_input["source"] = {"image": "img:1"}
    created = await post(railway, operation("ServiceCreate"), {"input": service_input})
    return project_id, env_id, created.json()["data"]["serviceCreate"]["id"]


async def test_service_without_source_does_not_deploy_but_with_source_does(railway: Harness) -> None:
    _, env_id, bare = await _service(railway)
    assert railway.fake.store.latest_deployment(bare, env_id) is None
    _, env_id, sourced = await _service(railway, source=True)
    assert railway.fake.store.latest_deployment(sourced, env_id) is not None


async def test_deploy_moves_queued_building_deploying_success(railway: Harness) -> None:
    _, env_id, service_id = await _service(railway, source=True)
    deployment = railway.fake.store.latest_deployment(service_id, env_id)
    assert deployment is not None
    seen = [deployment.status]
    for _ in range(100):
        await asyncio.sleep(0.005)
        if deployment.status != seen[-1]:
            seen.append(deployment.status)
    assert seen == ["QUEUED", "BUILDING", "DEPLOYING", "SUCCESS"]


@pytest.mark.parametrize(
    ("outcome", "final"), [("fail", "FAILED"), ("crash", "CRASHED"), ("hang", "BUILDING")]
)
async def test_deploys_can_be_told_to_fail_crash_or_hang(railway: Harness, outcome: str, final: str) -> None:
    railway.fake.deploys.settings.crash_after_seconds = 0.05
    railway.fake.deploys.plan(outcome)
    _, env_id, service_id = await _service(railway, source=True)
    await asyncio.sleep(0.5)
    deployment = railway.fake.store.latest_deployment(service_id, env_id)
    assert deployment is not None and deployment.status == final


async def test_variable_upsert_redeploys_unless_skip_deploys(railway: Harness) -> None:
    project_id, env_id, service_id = await _service(railway, source=True)
    upsert = {
        "projectId": project_id,
        "environmentId": env_id,
        "serviceId": service_id,
        "variables": {"A": "1"},
    }
    await post(railway, operation("VariableCollectionUpsert"), {"input": {**upsert, "skipDeploys": True}})
    assert len(railway.fake.store.history[(service_id, env_id)]) == 1
    await post(railway, operation("VariableCollectionUpsert"), {"input": upsert})
    assert len(railway.fake.store.history[(service_id, env_id)]) == 2
    assert railway.fake.store.instances[(service_id, env_id)].variables == {"A": "1"}


async def test_volume_delete_is_soft_with_pending_deletion(railway: Harness) -> None:
    project_id, env_id, service_id = await _service(railway)
    volume_input = {
        "projectId": project_id,
        "environmentId": env_id,
        "serviceId": service_id,
        "mountPath": "/data",
    }
    volume_id = (await post(railway, operation("VolumeCreate"), {"input": volume_input})).json()["data"][
        "volumeCreate"
    ]["id"]
    assert (await post(railway, operation("VolumeDelete"), {"volumeId": volume_id})).json()["data"] == {
        "volumeDelete": True
    }
    (instance,) = [v for v in railway.fake.store.volume_instances.values() if v.volume_id == volume_id]
    assert instance.pending_deletion and instance.deleted_at is not None
    assert volume_id in railway.fake.store.volumes


async def test_paging_stops_on_has_next_page_while_last_page_keeps_a_cursor(railway: Harness) -> None:
    for index in range(3):
        await create_project(railway, f"agent-{index}")
    first = (await post(railway, operation("Projects"), {"first": 2})).json()["data"]["projects"]
    assert first["pageInfo"]["hasNextPage"] is True
    variables = {"first": 2, "after": first["pageInfo"]["endCursor"]}
    last = (await post(railway, operation("Projects"), variables)).json()["data"]["projects"]
    assert [edge["node"]["name"] for edge in last["edges"]] == ["agent-2"]
    assert last["pageInfo"] == {"hasNextPage": False, "endCursor": last["edges"][0]["node"]["id"]}


async def test_calls_are_counted_per_operation(railway: Harness) -> None:
    await create_project(railway)
    await create_project(railway, "agent-q")
    assert railway.fake.calls["ProjectCreate"] == 2
