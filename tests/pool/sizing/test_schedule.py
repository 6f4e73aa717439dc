"""Schedules: the syntax, its errors, and when a window is active."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pool.sizing.schedule import ScheduleError, floor_at, parse, parse_all


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """2024-01-01 is a Monday: day 1 = Monday … 7 = Sunday."""
    return datetime(2024, 1, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "when", "active"),
    [
        ("weekdays 09-18 >= 10", at(1, 9), True),
        ("weekdays 09-18 >= 10", at(1, 17, 59), True),
        ("weekdays 09-18 >= 10", at(1, 18), False),  # the end is exclusive
        ("weekdays 09-18 >= 10", at(1, 8, 59), False),
        ("weekdays 09-18 >= 10", at(6, 12), False),  # Saturday
        ("weekends 10-16 >= 3", at(7, 12), True),
        ("mon,wed,fri 08:30-12:00 >= 4", at(3, 8, 30), True),
        ("mon,wed,fri 08:30-12:00 >= 4", at(2, 9), False),  # Tuesday
        ("fri-mon 00-24 >= 1", at(1, 23, 59), True),  # a range that wraps the week
        ("fri-mon 00-24 >= 1", at(2, 0), False),
        # Past midnight: belongs to the day it starts on.
        ("sat 22-06 >= 2", at(6, 23), True),
        ("sat 22-06 >= 2", at(7, 5, 59), True),
        ("sat 22-06 >= 2", at(7, 22), False),  # Sunday night is not Saturday's window
        ("daily 00-24 >= 1", at(4, 3), True),
        # 09-18 in Paris is 08-17 UTC in winter.
        ("weekdays 09-18 Europe/Paris >= 5", at(1, 8), True),
        ("weekdays 09-18 Europe/Paris >= 5", at(1, 17), False),
        ("WEEKDAYS 9-18 >= 1", at(1, 9), True),
    ],
)
def test_active(line: str, when: datetime, active: bool) -> None:
    assert parse(line).active(when) is active


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("weekdays 9-18", "expected '<days> <HH[:MM]>-<HH[:MM]> [zone] >= <count>'"),
        ("weekdays 09-18 > 3", "expected"),
        ("someday 09-18 >= 3", "unknown day 'someday'"),
        ("mon-funday 09-18 >= 3", "unknown day 'funday'"),
        ("daily 09-25 >= 3", "'25' is not a time from 00:00 to 24:00"),
        ("daily 09:60-10 >= 3", "'09:60' is not a time"),
        ("daily 24:30-10 >= 3", "'24:30' is not a time"),
        ("daily 09-09 >= 3", "is empty"),
        ("daily 09-18 Mars/Olympus >= 3", "unknown time zone 'Mars/Olympus'"),
        ("daily 09-18 >= 100000", "more than 10000"),
    ],
)
def test_bad_lines_say_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message.replace("[", r"\[").replace("]", r"\]")) as raised:
        parse(line)
    assert repr(line) in str(raised.value)


def test_the_highest_active_schedule_sets_the_floor() -> None:
    schedules = parse_all(["weekdays 09-18 >= 10", "daily 12-13 >= 15", "", "weekends 00-24 >= 2"])
    assert floor_at(schedules, at(1, 12, 30)) == (15, schedules[1])
    assert floor_at(schedules, at(1, 10))[0] == 10
    assert floor_at(schedules, at(1, 20)) == (0, None)
    assert str(schedules[0]) == "weekdays 09-18 >= 10"


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("daily 00-24 >= 1").active(datetime(2024, 1, 1))  # noqa: DTZ001 - the case under test
