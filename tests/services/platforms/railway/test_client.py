"""The Railway client: documents checked against the published schema before sending, one retry
policy (Retry-After honoured, creations never re-sent after a lost answer)."""

from __future__ import annotations

import time

import pytest

from services.platforms.railway.errors import RailwayRejected, RailwayRetryable
from tests.services.platforms.railway.harness import Harness


async def test_a_document_the_published_schema_refuses_is_never_sent(railway: Harness) -> None:
    client = railway.platform("shared").client
    with pytest.raises(RailwayRejected, match="invalid document"):
        await client.execute("Bogus", {}, document="query Bogus { noSuchField { id } }")
    assert railway.fake.calls == {}


async def test_a_429_is_waited_out_for_its_retry_after_even_for_a_creation(railway: Harness) -> None:
    railway.fake.settings.retry_after_seconds = 1
    platform = railway.platform("shared", max_retry_after_seconds=5)
    railway.fake.fail_next(1, status=429)
    started = time.monotonic()
    project, environment = railway.shared_project_id, railway.shared_environment_id
    created = await platform.client.service_create(project, environment, "agent-x")
    assert created.name == "agent-x"
    assert time.monotonic() - started >= 1.0
    assert railway.fake.calls["ServiceCreate"] == 2


async def test_a_creation_is_not_re_sent_after_a_generic_failure(railway: Harness) -> None:
    platform = railway.platform("shared")
    railway.fake.fail_next(1)
    project, environment = railway.shared_project_id, railway.shared_environment_id
    with pytest.raises(RailwayRetryable, match="Problem processing request"):
        await platform.client.service_create(project, environment, "agent-x")
    assert railway.fake.calls["ServiceCreate"] == 1


async def test_a_read_is_retried_after_a_generic_failure(railway: Harness) -> None:
    platform = railway.platform("shared")
    railway.fake.fail_next(2)
    await platform.client.project_environment_id(railway.shared_project_id)
    assert railway.fake.calls["ProjectEnvironments"] == 3
