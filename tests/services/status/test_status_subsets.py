"""The status batch a tick that costs O(changes) asks for (issue 14): a subset whose platform is
asked only about `platformIds` (the rest carry the deploy status last observed), and the
safety-net listing (`changesOnly`) that reports only what is not running, with the fleet's ids."""

from __future__ import annotations

from collections.abc import Callable

from services.config import Settings
from tests.fakes.platform import MemoryPlatform
from tests.services.conftest import AUTH, AppClient
from tests.services.status.test_status_batch import ASLEEP, HEALTHY, HUNG, create


async def test_only_the_platform_ids_are_asked_of_the_platform_the_rest_keep_their_last_word(
    make_settings: Callable[..., Settings], app_client: AppClient, memory_platform: MemoryPlatform
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        for instance_id in (HEALTHY, HUNG, ASLEEP):
            await create(api, instance_id)
        # Everything observed once: services records `running` for each.
        first = await api.post("/status/batch", json={"probe": False}, headers=AUTH)
        assert {o["deployStatus"] for o in first.json()["instances"].values()} == {"running"}
        calls = memory_platform.status_calls
        memory_platform.statuses = {HEALTHY: "crashed", ASLEEP: "sleeping"}
        response = await api.post(
            "/status/batch",
            json={"instanceIds": [HEALTHY, ASLEEP], "platformIds": [ASLEEP], "probe": False},
            headers=AUTH,
        )
        batch = response.json()
        assert set(batch["instances"]) == {HEALTHY, ASLEEP}
        # Not asked of the platform: the last observation; asked: the platform's word.
        assert batch["instances"][HEALTHY]["deployStatus"] == "running"
        assert batch["instances"][ASLEEP]["deployStatus"] == "sleeping"
        assert memory_platform.status_calls == calls + 1
        # No platform id at all: the platform is not asked.
        none = await api.post(
            "/status/batch", json={"instanceIds": [HEALTHY], "platformIds": [], "probe": False}, headers=AUTH
        )
        assert none.json()["platformOk"] is True and memory_platform.status_calls == calls + 1


async def test_the_listing_reports_only_what_is_not_running_and_every_id_services_holds(
    make_settings: Callable[..., Settings], app_client: AppClient, memory_platform: MemoryPlatform
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        for instance_id in (HEALTHY, HUNG, ASLEEP):
            await create(api, instance_id)
        memory_platform.statuses = {ASLEEP: "sleeping", HUNG: "crashed"}
        response = await api.post("/status/batch", json={"changesOnly": True}, headers=AUTH)
    batch = response.json()
    assert response.status_code == 200
    assert set(batch["instances"]) == {ASLEEP, HUNG}
    assert batch["instances"][HUNG]["deployStatus"] == "crashed"
    # A listing probes nothing: it only tells the pool what to observe.
    assert all(o["health"] is None for o in batch["instances"].values())
    assert sorted(batch["fleet"]) == sorted([HEALTHY, HUNG, ASLEEP])
    assert batch["platformCalls"] == 1
