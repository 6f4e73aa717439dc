"""A tick costs O(pages), not O(instances) (DESIGN.md §7): call budgets for 1,000 instances."""

from __future__ import annotations

from graphql import parse, validate

from devtools.railway_fake.server import SCHEMA
from services.platforms.base import PlatformRef
from services.platforms.railway.batch import SERVICE_INSTANCES, batch_document
from services.platforms.railway.ref import RailwayRef
from tests.services.platforms.railway.harness import TOKEN, Harness

FLEET = 1000


def instance_id(index: int) -> str:
    return f"{index:012d}"


def seed_shared(railway: Harness, count: int) -> dict[str, PlatformRef]:
    railway.shared_project()
    store = railway.fake.store
    project = store.projects[railway.shared_project_id]
    refs = {}
    for index in range(count):
        service = store.seed(project, railway.shared_environment_id, f"agent-{instance_id(index)}")
        refs[instance_id(index)] = RailwayRef(
            mode="shared",
            project_id=project.id,
            environment_id=railway.shared_environment_id,
            service_id=service.id,
        ).write(PlatformRef(provider="railway"))
    return refs


def seed_per_instance(railway: Harness, count: int) -> dict[str, PlatformRef]:
    store = railway.fake.store
    refs = {}
    for index in range(count):
        name = f"agent-{instance_id(index)}"
        project = store.create_project(name, None, TOKEN, "production")
        environment = store.live_environments(project.id)[0]
        service = store.seed(project, environment.id, name)
        refs[instance_id(index)] = RailwayRef(
            mode="per-instance", project_id=project.id, environment_id=environment.id, service_id=service.id
        ).write(PlatformRef(provider="railway"))
    return refs


async def test_shared_mode_observes_1000_instances_in_two_calls(railway: Harness) -> None:
    refs = seed_shared(railway, FLEET)
    platform = railway.platform("shared", environment_id=railway.shared_environment_id)
    snapshot = await platform.status_many(refs)
    assert snapshot.api_calls == 2
    assert sum(railway.fake.calls.values()) == 2
    assert {state.deploy_status for state in snapshot.states.values()} == {"running"}
    assert len(snapshot.states) == FLEET


async def test_shared_mode_pages_past_any_fixed_first(railway: Harness) -> None:
    refs = seed_shared(railway, 25)
    platform = railway.platform("shared", environment_id=railway.shared_environment_id, page_size=10)
    snapshot = await platform.status_many(refs)
    assert snapshot.api_calls == 3
    assert {state.deploy_status for state in snapshot.states.values()} == {"running"}


async def test_per_instance_mode_observes_1000_projects_in_at_most_25_calls(railway: Harness) -> None:
    refs = seed_per_instance(railway, FLEET)
    platform = railway.platform("per-instance")
    snapshot = await platform.status_many(refs)
    # 2 pages of the project listing (500 each) + 20 aliased batches of 50 projects.
    assert snapshot.api_calls == 22
    assert railway.fake.calls == {"Projects": 2, "EnvironmentStatusBatch": 20}
    assert {state.deploy_status for state in snapshot.states.values()} == {"running"}
    assert snapshot.orphans == []


async def test_a_project_deleted_between_listing_and_batch_costs_one_extra_call(railway: Harness) -> None:
    refs = seed_per_instance(railway, 5)
    store = railway.fake.store
    victim = refs[instance_id(2)]
    # Hidden from nothing: deleted only in what `environment(...)` sees, as if it vanished mid-tick.
    store.environments[RailwayRef.of(victim).environment_id or ""].deleted_at = store.projects[
        RailwayRef.of(victim).project_id or ""
    ].created_at
    snapshot = await railway.platform("per-instance").status_many(refs)
    # Absent from what the batch saw: one failed observation (finding 9), never proof of removal.
    assert snapshot.states[instance_id(2)].deploy_status == "missing"
    assert snapshot.states[instance_id(1)].deploy_status == "running"
    assert railway.fake.calls["EnvironmentStatusBatch"] == 2


def test_generated_batch_documents_validate_against_the_published_schema() -> None:
    for size in (1, 2, 50):
        assert validate(SCHEMA, parse(batch_document(size))) == []


async def test_shared_mode_observes_100_of_1000_instances_in_two_calls_without_listing(
    railway: Harness,
) -> None:
    refs = seed_shared(railway, FLEET)
    platform = railway.platform("shared", environment_id=railway.shared_environment_id)
    some = dict(list(refs.items())[:100])
    gone = instance_id(3)
    view = RailwayRef.of(some[gone])
    store = railway.fake.store
    store.instances[(view.service_id or "", view.environment_id or "")].deleted_at = store.projects[
        view.project_id or ""
    ].created_at
    snapshot = await platform.status_many(some, listing=False)
    # Two batches of 50 `serviceInstance` aliases (one asked again without the deleted service).
    assert railway.fake.calls == {"ServiceInstanceStatusBatch": 3}
    assert snapshot.states[gone].deploy_status == "missing" and snapshot.orphans == []
    assert {s.deploy_status for i, s in snapshot.states.items() if i != gone} == {"running"}


async def test_per_instance_mode_observes_100_projects_in_two_calls_without_listing(railway: Harness) -> None:
    refs = seed_per_instance(railway, 300)
    snapshot = await railway.platform("per-instance").status_many(
        dict(list(refs.items())[:100]), listing=False
    )
    assert railway.fake.calls == {"EnvironmentStatusBatch": 2}
    assert len(snapshot.states) == 100 and {s.deploy_status for s in snapshot.states.values()} == {"running"}


def test_generated_service_instance_batches_validate_against_the_published_schema() -> None:
    for size in (1, 2, 50):
        assert validate(SCHEMA, parse(SERVICE_INSTANCES.document(size))) == []
