"""The agenda as screens show it: appointments with the names a block needs, and the open
hours of many practitioners at once, each in a fixed number of queries.

``appointment_views`` is shared by the agenda API and the ``appointment.changed`` event, so
a block drawn from a fetch and one patched from an event are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.queryset import QuerySet

from models.accounts import StaffRole, StaffUser
from models.agenda import Appointment, Availability, TimeOff
from server.db import connection, placeholders
from server.i18n import gettext
from server.queries import offers
from server.queries.agenda import WeeklyHours, Window, minute_time, windows

_FIELDS = (
    "id",
    "practitioner_id",
    "client_id",
    "client__first_name",
    "client__last_name",
    "client__therapist_id",
    "service_id",
    "service__name",
    "service__category_id",
    "service__category__builtin",
    "service__category__name",
    "service__category__color",
    "location_id",
    "starts_at",
    "ends_at",
    "attendance",
    "is_group",
    "deleted_at",
)
DEFAULT_COLOR = "#64748b"


def utc_iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a "Z", as the API's JSON writes it (so events and fetches agree)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def category_label(name: str | None, builtin: object) -> str | None:
    """A category as the reader says it: the built-in ones (stored under their English
    name, and not renamable) in the reader's language, the practice's own as typed."""
    return gettext(name) if builtin and name else name


def _view(row: dict[str, Any]) -> dict[str, Any]:
    builtin = row["service__category__builtin"]
    starts_at, ends_at = _moment(row["starts_at"]), _moment(row["ends_at"])
    assert starts_at is not None and ends_at is not None
    return {
        "id": row["id"],
        "practitioner_id": row["practitioner_id"],
        "client_id": row["client_id"],
        "client_name": f"{row['client__first_name']} {row['client__last_name']}",
        "service_id": row["service_id"],
        "service_name": row["service__name"],
        "category_id": row["service__category_id"],
        "category": getattr(builtin, "value", builtin),
        "category_name": category_label(row["service__category__name"], builtin),
        "color": row["service__category__color"] or DEFAULT_COLOR,
        "location_id": row["location_id"],
        "starts_at": utc_iso(starts_at),
        "ends_at": utc_iso(ends_at),
        "attendance": getattr(row["attendance"], "value", row["attendance"]),
        "is_group": bool(row["is_group"]),
        "deleted": row["deleted_at"] is not None,
        "private": False,
        # Whose caseload the client is in (for_reader), never sent as such.
        THERAPIST_KEY: row["client__therapist_id"],
    }


THERAPIST_KEY = "_client_therapist_id"
PRIVATE_COLOR = "#94a3b8"


def private_view(view: dict[str, Any]) -> dict[str, Any]:
    """What a therapist sees of a colleague's session with a client not in their caseload:
    that the time is taken, and where. Not who, and not what for: a name in the practice's
    agenda told a therapist that their neighbour, or a child's parent, was in therapy with a
    colleague, as the client file and the circle of care never do (server/access.py)."""
    return {
        **view,
        "client_id": None,
        "client_name": "",
        "service_id": None,
        "service_name": "",
        "category_id": None,
        "category": None,
        "category_name": None,
        "color": PRIVATE_COLOR,
        "alert_earlier": False,
        "slot_offer": None,
        "private": True,
    }


def sees_in_full(view: dict[str, Any], caseload: set[int] | None) -> bool:
    """``caseload``: None for who runs the whole agenda (owners, the front desk); else the
    therapists whose clients the reader may see (``access.agenda_caseload``)."""
    return (
        caseload is None
        or view["practitioner_id"] in caseload
        or view.get(THERAPIST_KEY) in caseload
    )


def for_reader(views: list[dict[str, Any]], caseload: set[int] | None) -> list[dict[str, Any]]:
    """The views as one reader may see them: in full, or private (``private_view``)."""
    out = []
    for view in views:
        shown = view if sees_in_full(view, caseload) else private_view(view)
        out.append({k: v for k, v in shown.items() if k != THERAPIST_KEY})
    return out


async def appointment_views(
    query: QuerySet[Appointment], caseload: set[int] | None = None
) -> list[dict[str, Any]]:
    """Appointments as the agenda shows them to staff: with the client's name, or private
    for a therapist reading a colleague's session (``caseload``: see ``sees_in_full``)."""
    return for_reader(await _raw_views(query), caseload)


async def _raw_views(query: QuerySet[Appointment]) -> list[dict[str, Any]]:
    values = query.order_by("starts_at", "id").values(*_FIELDS)
    # Tortoise builds the query; the rows are converted here rather than by Tortoise, which
    # parses each SQLite date with iso8601 one value at a time: that was two thirds of the
    # time of a busy week (bench/agenda.py), fromisoformat is a C call.
    values._choose_db_if_not_chosen()
    values._make_query()
    rows = await values._db.execute_query_dict(*values.query.get_parameterized_sql())
    views = [_view(r) for r in rows]
    await offers.annotate(views)  # the waiting-list flag and the freed slot's state
    return views


async def staff_audiences(
    query: QuerySet[Appointment], practice_id: int
) -> list[tuple[list[int], dict[str, Any]]]:
    """For ``appointment.changed``: the practice's active staff, grouped by the view of the
    (one) appointment each may see, in full or private."""
    (view,) = await _raw_views(query)
    staff = await StaffUser.filter(practice_id=practice_id, is_active=True).values_list(
        "id", "role", "supervisor_id"
    )
    # The practitioner and the client's therapist, and their supervisors (who see their
    # supervisees' caseload: access.caseload_therapist_ids).
    theirs = {view["practitioner_id"], view.get(THERAPIST_KEY)}
    theirs |= {sup for staff_id, _role, sup in staff if staff_id in theirs and sup is not None}
    full: list[int] = []
    private: list[int] = []
    for staff_id, role, _sup in staff:
        therapist = getattr(role, "value", role) == StaffRole.THERAPIST.value
        (private if therapist and staff_id not in theirs else full).append(int(staff_id))
    (shown,) = for_reader([view], None)
    (hidden,) = for_reader([private_view(view)], None)
    return [(ids, v) for ids, v in ((full, shown), (private, hidden)) if ids]


def _moment(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def client_view(view: dict[str, Any]) -> dict[str, Any]:
    """What a client may see of their own appointment: no colours or names of the office."""
    keep = (
        "id",
        "practitioner_id",
        "service_name",
        "category",
        "location_id",
        "starts_at",
        "ends_at",
        "attendance",
        "is_group",
        "deleted",
    )
    return {k: view[k] for k in keep}


def in_range(practice_id: int, start: datetime, end: datetime) -> QuerySet[Appointment]:
    """The practice's appointments overlapping [start, end), deleted ones left out."""
    return Appointment.filter(
        practice_id=practice_id, deleted_at=None, starts_at__lt=end, ends_at__gt=start
    )


# --- practitioners and their open hours ------------------------------------------------------


async def practitioners(practice_id: int) -> list[StaffUser]:
    """Whose columns the agenda has: active clinicians and owners (not the front desk)."""
    return (
        await StaffUser.filter(practice_id=practice_id, is_active=True)
        .exclude(role=StaffRole.OFFICE_ADMIN)
        .order_by("last_name", "first_name")
    )


async def open_windows(
    practitioner_ids: Sequence[int], tz: ZoneInfo, first: date, last: date
) -> dict[int, list[Window]]:
    """Each practitioner's open windows between two local dates, in two queries."""
    rows = await Availability.filter(
        practitioner_id__in=list(practitioner_ids), deleted_at=None
    ).values(
        "id",
        "practitioner_id",
        "location_id",
        "weekday",
        "on_date",
        "start_minute",
        "end_minute",
        "valid_from",
        "valid_until",
        "is_group_slot",
        "capacity",
    )
    links = await _service_links([r["id"] for r in rows])
    services: dict[int, set[int]] = {}
    for availability_id, service_id in links:
        services.setdefault(availability_id, set()).add(service_id)
    hours: dict[int, list[WeeklyHours]] = {pid: [] for pid in practitioner_ids}
    for r in rows:
        if r["on_date"] is not None and not first <= r["on_date"] <= last:
            continue
        if r["valid_until"] is not None and r["valid_until"] < first:
            continue
        if r["valid_from"] is not None and r["valid_from"] > last:
            continue
        hours.setdefault(r["practitioner_id"], []).append(
            WeeklyHours(
                weekday=r["weekday"],
                on_date=r["on_date"],
                start_time=minute_time(r["start_minute"]),
                end_time=minute_time(r["end_minute"]),
                valid_from=r["valid_from"],
                valid_until=r["valid_until"],
                location_id=r["location_id"],
                service_ids=frozenset(services.get(r["id"], ())),
                is_group=r["is_group_slot"],
                capacity=r["capacity"],
            )
        )
    return {pid: windows(h, tz, first, last) for pid, h in hours.items()}


async def _service_links(availability_ids: list[int]) -> list[tuple[int, int]]:
    """(availability id, service id) pairs: the M2M table read in one query."""
    if not availability_ids:
        return []
    marks = ", ".join(placeholders(len(availability_ids)))
    rows = await connection().execute_query_dict(
        "SELECT availability_id, service_id FROM availability_service "
        f"WHERE availability_id IN ({marks})",
        availability_ids,
    )
    return [(r["availability_id"], r["service_id"]) for r in rows]


async def time_off(
    practitioner_ids: Sequence[int], start: datetime, end: datetime
) -> list[dict[str, Any]]:
    rows = await TimeOff.filter(
        practitioner_id__in=list(practitioner_ids), starts_at__lt=end, ends_at__gt=start
    ).values("practitioner_id", "starts_at", "ends_at", "reason")
    return [
        {
            "practitioner_id": r["practitioner_id"],
            "start": utc_iso(r["starts_at"]),
            "end": utc_iso(r["ends_at"]),
        }
        for r in rows
    ]
