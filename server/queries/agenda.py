"""Free slots: a practitioner's availability, minus time off and what is already booked.

The computation is a pure function over plain values (``free_slots``) so it can be tested
and measured apart from the database; ``slots_for`` loads those values in four queries.
Availability is in the practice's local time and turned into UTC day by day, so a weekly
9:00 stays 9:00 on both sides of a daylight-saving change.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.queryset import QuerySet

from models.agenda import HOLDS_SLOT, Appointment, Availability, TimeOff


def minute_time(minute: int) -> time:
    """Minutes after midnight as a time (1440, the end of the day, is 23:59:59)."""
    if minute >= 24 * 60:
        return time(23, 59, 59)
    return time(minute // 60, minute % 60)


@dataclass(frozen=True)
class Window:
    """Open hours on one day, in UTC, with what may be booked in them."""

    start: datetime
    end: datetime
    location_id: int | None
    service_ids: frozenset[int]
    is_group: bool = False
    capacity: int = 1


@dataclass(frozen=True)
class Busy:
    """An appointment that holds its time (scheduled or attended, not deleted)."""

    start: datetime
    end: datetime
    service_id: int
    is_group: bool = False


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    location_id: int | None
    is_group: bool
    places_left: int


@dataclass(frozen=True)
class WeeklyHours:
    """An availability row as plain values."""

    weekday: int | None
    on_date: date | None
    start_time: time
    end_time: time
    valid_from: date | None
    valid_until: date | None
    location_id: int | None
    service_ids: frozenset[int]
    is_group: bool
    capacity: int


def windows(hours: Iterable[WeeklyHours], tz: ZoneInfo, first: date, last: date) -> list[Window]:
    """The open windows between ``first`` and ``last`` (inclusive, local dates)."""
    out: list[Window] = []
    hours = list(hours)
    day = first
    while day <= last:
        for h in hours:
            if h.on_date is not None:
                if h.on_date != day:
                    continue
            elif h.weekday != day.weekday():
                continue
            if h.valid_from and day < h.valid_from or h.valid_until and day > h.valid_until:
                continue
            start = datetime.combine(day, h.start_time, tz).astimezone(UTC)
            end = datetime.combine(day, h.end_time, tz).astimezone(UTC)
            if end > start:
                out.append(Window(start, end, h.location_id, h.service_ids, h.is_group, h.capacity))
        day += timedelta(days=1)
    return sorted(out, key=lambda w: w.start)


def _overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    return a_start < b_end and b_start < a_end


def free_slots(
    open_windows: Sequence[Window],
    service_id: int,
    duration: timedelta,
    busy: Sequence[Busy],
    time_off: Sequence[tuple[datetime, datetime]],
    *,
    not_before: datetime,
    location_id: int | None = None,
    exact_location: bool = False,
) -> list[Slot]:
    """Slots of ``duration`` for ``service_id``, back to back from each window's start.

    A slot is free when it is inside a window offering the service (at ``location_id``
    when given; with ``exact_location``, a None ``location_id`` is the remote windows only,
    not any of them), after ``not_before``, outside time off, and overlaps no booking. In a
    group slot, bookings of the same service at the same time share it up to its capacity.
    """
    busy = sorted(busy, key=lambda b: b.start)
    # Only bookings starting after ``slot start - longest booking`` can overlap a slot: a
    # bisection finds the first of them, so each slot looks at its neighbours, not at all.
    starts = [b.start for b in busy]
    longest = max((b.end - b.start for b in busy), default=timedelta(0))
    out: list[Slot] = []
    for w in open_windows:
        if service_id not in w.service_ids:
            continue
        if (location_id is not None or exact_location) and w.location_id != location_id:
            continue
        start = w.start
        while start + duration <= w.end:
            end = start + duration
            places = w.capacity if w.is_group else 1
            ok = start >= not_before and not any(_overlaps(start, end, s, e) for s, e in time_off)
            if ok:
                for i in range(bisect_left(starts, start - longest), len(busy)):
                    b = busy[i]
                    if b.start >= end:
                        break
                    if not _overlaps(start, end, b.start, b.end):
                        continue
                    if (
                        w.is_group
                        and b.is_group
                        and b.service_id == service_id
                        and (
                            b.start,
                            b.end,
                        )
                        == (start, end)
                    ):
                        places -= 1
                    else:
                        ok = False
                        break
            if ok and places > 0:
                out.append(Slot(start, end, w.location_id, w.is_group, places))
            start = end
    return out


async def weekly_hours(practitioner_id: int, first: date, last: date) -> list[WeeklyHours]:
    rows = await Availability.filter(
        practitioner_id=practitioner_id, deleted_at=None
    ).prefetch_related("services")
    return [
        WeeklyHours(
            weekday=a.weekday,
            on_date=a.on_date,
            start_time=minute_time(a.start_minute),
            end_time=minute_time(a.end_minute),
            valid_from=a.valid_from,
            valid_until=a.valid_until,
            location_id=a.location_id,  # type: ignore[attr-defined]
            service_ids=frozenset(s.id for s in a.services),
            is_group=a.is_group_slot,
            capacity=a.capacity,
        )
        for a in rows
        if (a.on_date is None or first <= a.on_date <= last)
        and (a.valid_until is None or a.valid_until >= first)
        and (a.valid_from is None or a.valid_from <= last)
    ]


def holding(start: datetime, end: datetime, **whose: Any) -> QuerySet[Appointment]:
    """Appointments that hold their time (scheduled or attended, not removed) overlapping
    [start, end); ``whose`` narrows them: a practitioner's, a client's."""
    return Appointment.filter(
        deleted_at=None,
        attendance__in=list(HOLDS_SLOT),
        starts_at__lt=end,
        ends_at__gt=start,
        **whose,
    )


async def busy_between(practitioner_id: int, start: datetime, end: datetime) -> list[Busy]:
    rows = await holding(start, end, practitioner_id=practitioner_id).values(
        "starts_at", "ends_at", "service_id", "is_group"
    )
    return [Busy(r["starts_at"], r["ends_at"], r["service_id"], r["is_group"]) for r in rows]


def _time_off_overlapping(
    practitioner_id: int, start: datetime, end: datetime
) -> QuerySet[TimeOff]:
    return TimeOff.filter(practitioner_id=practitioner_id, starts_at__lt=end, ends_at__gt=start)


async def time_off_between(
    practitioner_id: int, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    rows = await _time_off_overlapping(practitioner_id, start, end).values_list(
        "starts_at", "ends_at"
    )
    return [(s, e) for s, e in rows]


async def has_time_off(practitioner_id: int, start: datetime, end: datetime) -> bool:
    """Time off of the practitioner overlaps ``start``-``end``."""
    return bool(await _time_off_overlapping(practitioner_id, start, end).exists())


async def windows_around(
    practitioner_id: int, tz: ZoneInfo, start: datetime, end: datetime
) -> list[Window]:
    """The practitioner's open windows that hold all of ``start``-``end`` (UTC), computed as
    for the free slots (the local day of ``start``, in ``tz``)."""
    day = start.astimezone(tz).date()
    found = windows(await weekly_hours(practitioner_id, day, day), tz, day, day)
    return [w for w in found if w.start <= start and end <= w.end]


async def slots_for(
    practitioner_id: int,
    service_id: int,
    duration: timedelta,
    tz: ZoneInfo,
    first: date,
    last: date,
    *,
    location_id: int | None = None,
    exact_location: bool = False,
    now: datetime | None = None,
) -> list[Slot]:
    """Free slots for a service with a practitioner between two local dates (``location_id``
    and ``exact_location``: see free_slots), none starting before ``now`` (the portal
    passes a later time: booking.earliest_online_start)."""
    open_windows = windows(await weekly_hours(practitioner_id, first, last), tz, first, last)
    if not open_windows:
        return []
    start, end = open_windows[0].start, max(w.end for w in open_windows)
    return free_slots(
        open_windows,
        service_id,
        duration,
        await busy_between(practitioner_id, start, end),
        await time_off_between(practitioner_id, start, end),
        not_before=now or datetime.now(UTC),
        location_id=location_id,
        exact_location=exact_location,
    )


def video_link(template: str, room: str) -> str:
    """A teleconsultation's address: the practice's template with the appointment's room."""
    return template.replace("{room}", room) if room else ""
