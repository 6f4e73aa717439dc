"""Schemathesis against a served app's own OpenAPI schema, with valid credentials.

Schemathesis calls the API with a blocking HTTP client, and the apps under test are served by
uvicorn in the test's event loop, so the examples run in a worker thread (`fuzz_in_thread`).
"""

from __future__ import annotations

import asyncio
import traceback
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@dataclass
class FuzzReport:
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _fuzz(schema_dict: dict[str, Any], base_url: str, headers: dict[str, str], examples: int) -> FuzzReport:
    report = FuzzReport()
    schema = schemathesis.openapi.from_dict(schema_dict)
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
            report.calls += 1
            report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
            # A documented 502/503 is an answer (empty pool, failed provision), not a crash; a 500 never is.
            documented = case.operation.definition.raw.get("responses", {})
            expected = response.status_code in (502, 503) and str(response.status_code) in documented
            checks = [c for c in CHECKS if not (expected and c is not_a_server_error)]
            case.validate_response(response, checks=checks, headers=headers)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - one report names every failure
            detail = "".join(traceback.format_exception_only(type(exc), exc))[-3000:]
            report.failures.append(f"{operation.label}: {detail}")
    session.close()
    return report


async def fuzz_in_thread(app: FastAPI, base_url: str, headers: dict[str, str], examples: int) -> FuzzReport:
    return await asyncio.to_thread(_fuzz, app.openapi(), base_url, headers, examples)
