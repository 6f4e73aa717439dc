"""Schedules: windows of the week during which a template keeps at least N idle instances.

One schedule is one line, `<days> <from>-<to> [<time zone>] >= <count>`:

    weekdays 09-18 >= 10
    mon,wed,fri 08:30-12:00 Europe/Paris >= 4
    sat-sun 22-06 >= 2          (22:00 on Saturday and Sunday until 06:00 the next morning)
    daily 00-24 >= 1

Days: `daily`, `weekdays`, `weekends`, `mon`…`sun`, ranges (`mon-thu`, `fri-mon` wraps) and
comma lists of these. Times: `HH` or `HH:MM`, 00:00 to 24:00, `from` inclusive and `to`
exclusive; `to` before `from` runs past midnight into the next day. The zone is an IANA name
(default UTC). A window belongs to the day it starts on.

Why not cron (`croniter`): cron names instants, and a floor holds over a window, so each
schedule would be two cron expressions (`0 9 * * 1-5` and `0 18 * * 1-5`) and "is now inside"
a search backwards through both; the line above says the same thing and reads as what it means.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALIASES = {"daily": DAYS, "weekdays": DAYS[:5], "weekends": DAYS[5:]}
# Most idle instances a schedule may ask for: a typo (`>= 1000`) must not be a valid schedule.
MAX_COUNT = 10_000

_LINE = re.compile(
    r"^\s*(?P<days>[a-z,\-]+)\s+(?P<start>\d{1,2}(?::\d{2})?)\s*-\s*(?P<end>\d{1,2}(?::\d{2})?)"
    r"(?:\s+(?P<zone>[A-Za-z_]+(?:/[A-Za-z0-9_+\-]+)*))?\s*>=\s*(?P<count>\d+)\s*$",
    re.IGNORECASE,
)


class ScheduleError(ValueError):
    """A schedule line that does not parse; the message names the line and the part at fault."""


@dataclass(frozen=True)
class Schedule:
    text: str
    days: frozenset[int]  # 0 = Monday
    start_minute: int
    end_minute: int  # may be below start_minute: the window runs past midnight
    zone: str
    count: int

    def __str__(self) -> str:
        return self.text

    def active(self, now: datetime) -> bool:
        """True when `now` (timezone-aware) falls inside one of this schedule's windows."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        local = now.astimezone(ZoneInfo(self.zone))
        minute = local.hour * 60 + local.minute
        today = local.weekday()
        if self.start_minute < self.end_minute:
            return today in self.days and self.start_minute <= minute < self.end_minute
        yesterday = (local - timedelta(days=1)).weekday()
        return (today in self.days and minute >= self.start_minute) or (
            yesterday in self.days and minute < self.end_minute
        )


def parse(line: str) -> Schedule:
    """One schedule from its line; ScheduleError says what is wrong with it."""
    match = _LINE.match(line)
    if match is None:
        raise ScheduleError(
            f"schedule {line!r}: expected '<days> <HH[:MM]>-<HH[:MM]> [zone] >= <count>', "
            "e.g. 'weekdays 09-18 >= 10'"
        )
    days = _days(line, match["days"].lower())
    start, end = _minute(line, match["start"]), _minute(line, match["end"])
    if start == end:
        raise ScheduleError(f"schedule {line!r}: the window {match['start']}-{match['end']} is empty")
    zone = match["zone"] or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"schedule {line!r}: unknown time zone {zone!r}") from None
    count = int(match["count"])
    if count > MAX_COUNT:
        raise ScheduleError(f"schedule {line!r}: {count} idle instances is more than {MAX_COUNT}")
    return Schedule(" ".join(line.split()), days, start, end % (24 * 60), zone, count)


def parse_all(lines: Iterable[str]) -> tuple[Schedule, ...]:
    return tuple(parse(line) for line in lines if line.strip())


def floor_at(schedules: Sequence[Schedule], now: datetime) -> tuple[int, Schedule | None]:
    """The highest count among the schedules active at `now`, and the schedule that sets it."""
    best: Schedule | None = None
    for schedule in schedules:
        if schedule.active(now) and (best is None or schedule.count > best.count):
            best = schedule
    return (best.count, best) if best is not None else (0, None)


def _days(line: str, text: str) -> frozenset[int]:
    found: set[int] = set()
    for part in text.split(","):
        if part in ALIASES:
            found.update(DAYS.index(day) for day in ALIASES[part])
            continue
        first, _, last = part.partition("-")
        for day in (first, last) if last else (first,):
            if day not in DAYS:
                raise ScheduleError(
                    f"schedule {line!r}: unknown day {day!r} (use mon..sun, daily, weekdays, weekends)"
                )
        start, stop = DAYS.index(first), DAYS.index(last or first)
        found.update((start + offset) % 7 for offset in range((stop - start) % 7 + 1))
    return frozenset(found)


def _minute(line: str, text: str) -> int:
    hours, _, minutes = text.partition(":")
    hour, minute = int(hours), int(minutes or 0)
    if hour > 24 or minute > 59 or (hour == 24 and minute):
        raise ScheduleError(f"schedule {line!r}: {text!r} is not a time from 00:00 to 24:00")
    return hour * 60 + minute
