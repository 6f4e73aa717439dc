"""The soak's long runs are `slow`: `make soak` (pytest -m slow) runs them, `make test` skips them."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with `make soak` (pytest -m slow)")
    for item in items:
        if "tests/soak" in item.nodeid and item.get_closest_marker("slow") is not None:
            item.add_marker(skip)
