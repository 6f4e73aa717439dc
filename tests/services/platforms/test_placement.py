"""The placement decision as a table (`placement.choose`), and the start-up checks of
`SERVICES_PLATFORMS`: the one-item list of today's settings, unique names, known providers,
known provider settings, no two platforms listing the same place, one Railway budget per tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from services.config import PlatformConfig, Settings
from services.platforms.placement import Health, choose
from services.platforms.railway.provider import RailwayPlatform
from services.platforms.registry import PlatformEntry, build_platforms
from tests.fakes.platform import MemoryPlatform

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=30)


def entry(name: str, capacity: int | None = None) -> PlatformEntry:
    return PlatformEntry(name, "memory", 0, capacity, MemoryPlatform())


SHARED, PROJECTS, LOCAL = entry("railway-shared", 90), entry("railway-projects"), entry("local", 2)
FLEET = [SHARED, PROJECTS]


@pytest.mark.parametrize(
    ("entries", "used", "health", "skip", "chosen", "passed"),
    [
        # Room on the first: it takes the create.
        (FLEET, {"railway-shared": 89}, {}, (), "railway-shared", []),
        # Full: the next one, saying why.
        (FLEET, {"railway-shared": 90}, {}, (), "railway-projects", ["railway-shared: full (90/90)"]),
        # Capacity 0 drains, whatever it holds.
        (
            [entry("railway-shared", 0), PROJECTS],
            {},
            {},
            (),
            "railway-projects",
            ["railway-shared: draining (capacity 0)"],
        ),
        # Backing off: skipped until the pause ends...
        (
            FLEET,
            {},
            {"railway-shared": Health(3, LATER, "ServiceCreate: Problem processing request")},
            (),
            "railway-projects",
            [
                "railway-shared: backing off until 12:00:30 UTC after 3 failures "
                "(last: ServiceCreate: Problem processing request)"
            ],
        ),
        # ...and tried again once it has (failures alone, without a pause, do not skip it).
        (FLEET, {}, {"railway-shared": Health(3, NOW - timedelta(seconds=1), "x")}, (), "railway-shared", []),
        (FLEET, {}, {"railway-shared": Health(2, None, "x")}, (), "railway-shared", []),
        # A platform this create already failed on is not tried twice.
        (FLEET, {}, {}, ("railway-shared",), "railway-projects", []),
        # Nothing left: no choice, every reason.
        (
            [entry("a", 1), entry("b", 0)],
            {"a": 1},
            {},
            (),
            None,
            ["a: full (1/1)", "b: draining (capacity 0)"],
        ),
        # No cap: never full.
        ([PROJECTS], {"railway-projects": 10_000}, {}, (), "railway-projects", []),
    ],
)
def test_placement_takes_the_first_platform_with_room_that_is_not_backing_off(
    entries: list[PlatformEntry],
    used: dict[str, int],
    health: dict[str, Health],
    skip: tuple[str, ...],
    chosen: str | None,
    passed: list[str],
) -> None:
    found, why = choose(entries, used, health, NOW, frozenset(skip))
    assert (found.name if found else None, why) == (chosen, passed)


def settings(**values: Any) -> Settings:
    return Settings(environment="test", **values)


def test_without_services_platforms_the_one_platform_is_named_after_its_provider() -> None:
    assert settings(platform="railway").platform_configs == [
        PlatformConfig(name="railway", provider="railway", settings={}, priority=0, capacity=None)
    ]


def test_platforms_are_ordered_by_priority_then_by_their_place_in_the_list() -> None:
    configs = settings(
        platforms=[
            {"name": "b", "provider": "local", "priority": 2},
            {"name": "c", "provider": "local", "priority": 1},
            {"name": "a", "provider": "local", "priority": 2},
        ]
    ).platform_configs
    assert [c.name for c in configs] == ["c", "b", "a"]


@pytest.mark.parametrize(
    ("platforms", "message"),
    [
        (
            [{"name": "a", "provider": "local"}, {"name": "a", "provider": "railway"}],
            "SERVICES_PLATFORMS names each platform once; repeated: a",
        ),
        ([{"name": "Bad Name", "provider": "local"}], "String should match pattern"),
        ([{"name": "a", "provider": "local", "capacity": -1}], "greater than or equal to 0"),
        ([{"name": "a", "provider": "local", "weight": 3}], "Extra inputs are not permitted"),
    ],
)
def test_bad_platform_lists_are_refused_when_settings_load(
    platforms: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(platforms=platforms)


def test_settings_read_services_platforms_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SERVICES_PLATFORMS",
        '[{"name": "railway-shared", "provider": "railway", "settings": {"mode": "shared"}, '
        '"priority": 1, "capacity": 90}, {"name": "railway-projects", "provider": "railway", '
        '"settings": {"mode": "per-instance"}, "priority": 2, "capacity": null}]',
    )
    configs = Settings(environment="test").platform_configs
    assert [(c.name, c.settings, c.capacity) for c in configs] == [
        ("railway-shared", {"mode": "shared"}, 90),
        ("railway-projects", {"mode": "per-instance"}, None),
    ]


async def build(values: list[dict[str, Any]]) -> list[PlatformEntry]:
    async with httpx.AsyncClient() as http:
        return build_platforms(settings(platforms=values), http).entries


@pytest.mark.parametrize(
    ("platforms", "message"),
    [
        (
            [{"name": "a", "provider": "kubernetes"}],
            "platform 'a': unknown provider 'kubernetes'; choose one of",
        ),
        (
            [{"name": "a", "provider": "local", "settings": {"data_dir": "/tmp/x"}}],
            "platform 'a': unknown local settings data_dir; choose from local_data_dir",
        ),
        (
            [{"name": "a", "provider": "railway", "settings": {"api_token": "t", "modes": "shared"}}],
            "platform 'a': unknown railway settings modes",
        ),
    ],
)
async def test_bad_platforms_stop_the_start_with_their_reason(
    platforms: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await build(platforms)


async def test_two_platforms_listing_the_same_place_are_refused(tmp_path: Path) -> None:
    same = {"local_data_dir": str(tmp_path / "instances")}
    with pytest.raises(ValueError, match="platforms 'a' and 'b' share"):
        await build(
            [
                {"name": "a", "provider": "local", "settings": same},
                {"name": "b", "provider": "local", "settings": same},
            ]
        )
    railway = {"api_token": "t", "project_id": "p1"}
    with pytest.raises(ValueError, match="platforms 'c' and 'd' share"):
        await build(
            [
                {"name": "c", "provider": "railway", "settings": railway},
                {"name": "d", "provider": "railway", "settings": railway},
            ]
        )


async def test_two_railway_platforms_on_the_same_tokens_share_one_rate_budget(tmp_path: Path) -> None:
    shared, projects, other = await build(
        [
            {
                "name": "railway-shared",
                "provider": "railway",
                "settings": {"api_token": "t1", "project_id": "p"},
            },
            {
                "name": "railway-projects",
                "provider": "railway",
                "settings": {"api_token": "t1", "mode": "per-instance"},
            },
            {
                "name": "railway-other",
                "provider": "railway",
                "settings": {"api_token": "t2", "mode": "per-instance", "workspace_id": "w2"},
            },
        ]
    )
    clients = [
        e.platform.client for e in (shared, projects, other) if isinstance(e.platform, RailwayPlatform)
    ]
    assert clients[0].limiter is clients[1].limiter and clients[0].tokens is clients[1].tokens
    assert clients[2].limiter is not clients[0].limiter
    with pytest.raises(ValueError, match="share one rate budget"):
        await build(
            [
                {"name": "a", "provider": "railway", "settings": {"api_token": "t", "project_id": "p"}},
                {
                    "name": "b",
                    "provider": "railway",
                    "settings": {"api_token": "t", "mode": "per-instance", "requests_per_second": 1},
                },
            ]
        )
