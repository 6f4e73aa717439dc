"""Every Railway call states `RAILWAY_TIMEOUT_SECONDS`, whatever the timeout of the client it is given.

Services gives its providers one shared httpx client whose default timeout is the health probes'
(`SERVICES_PROBE_TIMEOUT_SECONDS`, 2 s): a Railway answer slower than that must still arrive.
"""

from __future__ import annotations

import httpx
import pytest

from services.config import Settings
from services.platforms.base import InstanceSpec
from services.platforms.railway.provider import RailwayPlatform
from shared.errors import TransientError
from tests.services.platforms.railway.harness import Harness, recorder

PROBE_TIMEOUT = float(Settings.model_fields["probe_timeout_seconds"].default)


def spec() -> InstanceSpec:
    return InstanceSpec("000000000001", "Agent", {"GATEWAY_TOKEN": "g"}, "img:1")


async def test_a_create_whose_mutation_answers_in_3_s_succeeds_on_the_apps_2_s_client(
    railway: Harness,
) -> None:
    assert PROBE_TIMEOUT < 3.0
    railway.fake.settings.operation_latency_seconds = {"ServiceCreate": 3.0}
    _, on_progress = recorder()
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as shared_client:
        platform = RailwayPlatform(railway.settings("shared"), shared_client)
        await platform.create(spec(), on_progress)
    assert railway.fake.store.leftovers()["services"] == ["agent-000000000001"]
    # Answered once, in time: no second ServiceCreate (a create is never re-sent).
    assert railway.fake.calls["ServiceCreate"] == 1
    assert railway.fake.calls["EnvironmentPatchCommit"] == 1


async def test_an_answer_slower_than_railway_timeout_seconds_is_a_transient_failure(
    railway: Harness,
) -> None:
    railway.fake.settings.operation_latency_seconds = {"ServiceCreate": 3.0}
    _, on_progress = recorder()
    async with httpx.AsyncClient(timeout=30.0) as patient_client:
        platform = RailwayPlatform(railway.settings("shared", timeout_seconds=0.5), patient_client)
        with pytest.raises(TransientError, match="ServiceCreate"):
            await platform.create(spec(), on_progress)
    # The answer we gave up on is not re-sent: Railway may have made the service (the sweep's orphan).
    assert railway.fake.calls["ServiceCreate"] == 1
