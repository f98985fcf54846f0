"""The sessions tab of a client file: the client's appointments, newest first, with filters,
and the attendance totals the clinical tab shows.

Billing does not exist yet, so the amount of a session is its service's price, marked as
not billed; the amount filter works on that price.
"""

from __future__ import annotations

from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from models.accounts import Practice, StaffUser
from models.agenda import Appointment, Attendance
from models.clients import Client
from server.actions.agenda import TRANSITIONS
from server.auth.sessions import Caller


@dataclass(frozen=True)
class SessionFilter:
    therapist_id: int | None = None
    attendance: Attendance | None = None
    service_name: str | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None

    @classmethod
    def from_query(cls, params: Any) -> SessionFilter:
        """From a query string; a value that cannot be read is ignored, not an error."""

        def text(name: str) -> str:
            return str(params.get(name) or "").strip()

        def amount(name: str) -> Decimal | None:
            try:
                value = Decimal(text(name).replace(",", "."))
            except InvalidOperation:
                return None
            return value if value.is_finite() else None

        therapist = text("therapist")
        status = text("status")
        return cls(
            therapist_id=(
                int(therapist)
                if therapist.isascii() and therapist.isdigit() and len(therapist) < 10
                else None
            ),
            attendance=Attendance(status) if status in set(Attendance) else None,
            service_name=text("service")[:120] or None,
            amount_min=amount("amount_min"),
            amount_max=amount("amount_max"),
        )

    @property
    def active(self) -> bool:
        return any(v is not None for v in vars(self).values())


@dataclass
class SessionRow:
    appointment: Appointment
    starts_at: datetime
    practitioner_name: str
    service_name: str
    location_name: str
    amount: Decimal
    attendance: Attendance
    is_past: bool
    # The attendances this one may change to (empty when it is final, e.g. moved).
    next_attendances: list[Attendance] = field(default_factory=list)


# The filters of the request being served. The tab registry's loaders see no request, so
# the staff route for the sessions tab sets them here before rendering the tab.
requested_filter: ContextVar[SessionFilter | None] = ContextVar(
    "cabinet_session_filter", default=None
)


async def client_sessions(client: Client, flt: SessionFilter) -> list[SessionRow]:
    """The client's appointments (not deleted) matching ``flt``, newest first."""
    query = Appointment.filter(client_id=client.id, deleted_at=None)
    if flt.therapist_id is not None:
        query = query.filter(practitioner_id=flt.therapist_id)
    if flt.attendance is not None:
        query = query.filter(attendance=flt.attendance)
    if flt.service_name is not None:
        query = query.filter(service__name=flt.service_name)
    if flt.amount_min is not None:
        query = query.filter(service__price__gte=flt.amount_min)
    if flt.amount_max is not None:
        query = query.filter(service__price__lte=flt.amount_max)
    rows = await query.order_by("-starts_at", "-id").prefetch_related(
        "practitioner", "service", "location"
    )
    now = datetime.now(UTC)
    return [
        SessionRow(
            appointment=a,
            starts_at=a.starts_at,
            practitioner_name=a.practitioner.full_name,
            service_name=a.service.name,
            location_name=a.location.name if a.location else "",
            amount=a.service.price,
            attendance=a.attendance,
            is_past=a.starts_at < now,
            next_attendances=[s for s in Attendance if s in TRANSITIONS[a.attendance]],
        )
        for a in rows
    ]


async def session_filter_options(client: Client) -> dict[str, Any]:
    """What the filters offer: the therapists and services found on this client's sessions."""
    rows = await Appointment.filter(client_id=client.id, deleted_at=None).values(
        "practitioner_id", "service__name"
    )
    therapists = await StaffUser.filter(id__in={r["practitioner_id"] for r in rows}).order_by(
        "last_name", "first_name"
    )
    return {
        "session_therapists": therapists,
        "session_services": sorted({r["service__name"] for r in rows}, key=str.casefold),
        "attendances": list(Attendance),
    }


async def load_sessions(caller: Caller, client: Client, practice: Practice) -> dict[str, Any]:
    """The sessions tab's context (the client-file registry's loader)."""
    flt = requested_filter.get() or SessionFilter()
    return {
        "sessions": await client_sessions(client, flt),
        "session_filter": flt,
        **(await session_filter_options(client)),
    }


async def attendance_totals(client: Client) -> dict[str, int]:
    """Attended, cancelled (by the client or the practitioner) and no-show appointments."""
    rows = await Appointment.filter(client_id=client.id, deleted_at=None).values_list(
        "attendance", flat=True
    )
    counts: Counter[str] = Counter(str(r) for r in rows)
    return {
        "attended": counts[Attendance.ATTENDED],
        "cancelled": counts[Attendance.CANCELLED_BY_CLIENT]
        + counts[Attendance.CANCELLED_BY_PRACTITIONER],
        "no_show": counts[Attendance.NO_SHOW],
    }
