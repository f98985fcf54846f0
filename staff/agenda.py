"""The live agenda: the page (/staff/agenda) and its JSON API (/api/agenda, /api/appointments).

Every member of staff sees the whole practice's agenda with client names (the front desk
books for everyone); booking still needs the client to be one the caller may see.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from models.accounts import Practice
from models.agenda import Appointment, Attendance, Location, Service, ServiceCategory
from server.access import (
    access_agenda_appointment,
    access_agenda_location,
    access_agenda_service,
    access_client,
    access_practitioner,
    access_sms_template,
    agenda_caseload,
)
from server.actions import agenda
from server.api import Ok
from server.i18n import current_time_zone
from server.queries.agenda import slots_for
from server.queries.agenda_view import (
    appointment_views,
    category_label,
    in_range,
    open_windows,
    practitioners,
    time_off,
    utc_iso,
)
from server.queries.reminders import agenda_sms_config
from server.web import path_id, render, require_staff, validate
from staff.api import api

MAX_DAYS = 31


# --- shapes ----------------------------------------------------------------------------------


class AppointmentOut(BaseModel):
    id: int
    practitioner_id: int
    # None and "" in a private view: a colleague's session with a client the reader may
    # not see (server/queries/agenda_view.private_view).
    client_id: int | None
    client_name: str
    service_id: int | None
    service_name: str
    category_id: int | None
    category: str | None
    category_name: str | None
    color: str
    location_id: int | None
    starts_at: datetime
    ends_at: datetime
    attendance: Attendance
    is_group: bool
    deleted: bool
    # Earlier-slot alerts: on the waiting list; what became of the slot it freed.
    alert_earlier: bool = False
    slot_offer: str | None = None
    private: bool = False


class WindowOut(BaseModel):
    practitioner_id: int
    start: datetime
    end: datetime
    location_id: int | None
    service_ids: list[int]
    is_group: bool
    capacity: int


class TimeOffOut(BaseModel):
    practitioner_id: int
    start: datetime
    end: datetime


class AgendaOut(BaseModel):
    start: date
    days: int
    time_zone: str
    range_start: datetime
    range_end: datetime
    appointments: list[AppointmentOut]
    availability: list[WindowOut]
    time_off: list[TimeOffOut]


class AgendaQuery(BaseModel):
    start: date
    days: int = Field(default=7, ge=1, le=MAX_DAYS)
    practitioner: int | None = Field(default=None, ge=1)
    location: int | None = Field(default=None, ge=1)

    @field_validator("practitioner", "location", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value


class SlotsQuery(BaseModel):
    practitioner: int = Field(ge=1)
    service: int = Field(ge=1)
    start: date
    days: int = Field(default=1, ge=1, le=92)
    location: int | None = Field(default=None, ge=1)

    @field_validator("location", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value


class SlotOut(BaseModel):
    start: datetime
    end: datetime
    location_id: int | None
    is_group: bool
    places_left: int


class BookIn(BaseModel):
    practitioner_id: int = Field(ge=1)
    client_id: int = Field(ge=1)
    service_id: int = Field(ge=1)
    location_id: int | None = Field(default=None, ge=1)
    starts_at: AwareDatetime
    alert_earlier: bool = False
    # "Confirm by SMS": sent after the practice's delay, with this template (None: built-in).
    confirm_sms: bool = False
    sms_template_id: int | None = Field(default=None, ge=1)

    @field_validator("location_id", "sms_template_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value


class AttendanceIn(BaseModel):
    attendance: Attendance


class MoveIn(BaseModel):
    starts_at: AwareDatetime


async def _one(appointment_id: int) -> AppointmentOut:
    views = await appointment_views(Appointment.filter(id=appointment_id))
    return AppointmentOut.model_validate(views[0])


def _local_range(start: date, days: int) -> tuple[datetime, datetime]:
    """The UTC instants of local midnight on ``start`` and ``days`` days later."""
    tz = current_time_zone()
    first = datetime.combine(start, datetime.min.time(), tz).astimezone(UTC)
    last = datetime.combine(start + timedelta(days=days), datetime.min.time(), tz)
    return first, last.astimezone(UTC)


# --- API -------------------------------------------------------------------------------------


@api.route("GET", "/agenda", response=AgendaOut)
async def get_agenda(request: Request) -> Response:
    """Appointments, open hours and time off between start and start + days (local dates;
    practitioner and location narrow it)"""
    caller = require_staff(request)
    q = validate(AgendaQuery, dict(request.query_params))
    if q.practitioner is not None:
        people = [(await access_practitioner(caller, q.practitioner)).id]
    else:
        people = [p.id for p in await practitioners(caller.practice_id)]
    if q.location is not None:
        await access_agenda_location(caller, q.location)
    range_start, range_end = _local_range(q.start, q.days)
    query = in_range(caller.practice_id, range_start, range_end)
    if q.practitioner is not None:
        query = query.filter(practitioner_id=q.practitioner)
    if q.location is not None:
        query = query.filter(location_id=q.location)
    tz = current_time_zone()
    last_day = q.start + timedelta(days=q.days - 1)
    by_person = await open_windows(people, tz, q.start, last_day)
    availability = [
        {
            "practitioner_id": pid,
            "start": utc_iso(w.start),
            "end": utc_iso(w.end),
            "location_id": w.location_id,
            "service_ids": sorted(w.service_ids),
            "is_group": w.is_group,
            "capacity": w.capacity,
        }
        for pid, found in by_person.items()
        for w in found
        if q.location is None or w.location_id in (None, q.location)
    ]
    # Built as plain JSON (the shape is AgendaOut): a busy week is a thousand appointments,
    # and a round trip through pydantic would double the time of the request.
    return JSONResponse(
        {
            "start": q.start.isoformat(),
            "days": q.days,
            "time_zone": tz.key,
            "range_start": utc_iso(range_start),
            "range_end": utc_iso(range_end),
            "appointments": await appointment_views(query, await agenda_caseload(caller)),
            "availability": availability,
            "time_off": await time_off(people, range_start, range_end),
        }
    )


@api.route("GET", "/agenda/slots", response=SlotOut, response_list=True)
async def get_free_slots(request: Request) -> list[SlotOut]:
    """Free slots for a service with a practitioner (practitioner, service, start, days,
    location)"""
    caller = require_staff(request)
    q = validate(SlotsQuery, dict(request.query_params))
    practitioner = await access_practitioner(caller, q.practitioner)
    service = await access_agenda_service(caller, q.service)
    if q.location is not None:
        await access_agenda_location(caller, q.location)
    found = await slots_for(
        practitioner.id,
        service.id,
        timedelta(minutes=service.duration_minutes),
        current_time_zone(),
        q.start,
        q.start + timedelta(days=q.days - 1),
        location_id=q.location,
    )
    return [
        SlotOut(
            start=s.start,
            end=s.end,
            location_id=s.location_id,
            is_group=s.is_group,
            places_left=s.places_left,
        )
        for s in found
    ]


@api.route(
    "POST",
    "/appointments",
    body=BookIn,
    response=AppointmentOut,
    statuses=(401, 404, 409, 422),
)
async def book(request: Request, body: BookIn) -> AppointmentOut:
    """Book an appointment (409 naming the clash when the practitioner is not free)"""
    caller = require_staff(request)
    practitioner = await access_practitioner(caller, body.practitioner_id)
    client = await access_client(caller, body.client_id)
    service = await access_agenda_service(caller, body.service_id)
    location = await access_agenda_location(caller, body.location_id) if body.location_id else None
    template = (
        await access_sms_template(caller, body.sms_template_id)
        if body.confirm_sms and body.sms_template_id
        else None
    )
    appointment = await agenda.do_book_with_options(
        caller,
        alert_earlier=body.alert_earlier,
        confirm_sms=body.confirm_sms,
        sms_template=template,
        practitioner=practitioner,
        client=client,
        service=service,
        starts_at=body.starts_at,
        location=location,
    )
    return await _one(appointment.id)


@api.route(
    "POST",
    "/appointments/{appointment_id}/attendance",
    body=AttendanceIn,
    response=AppointmentOut,
    statuses=(401, 404, 409, 422),
)
async def set_attendance(request: Request, body: AttendanceIn) -> AppointmentOut:
    """Attended, cancelled (by the client or the practitioner), no-show, or back to scheduled"""
    caller = require_staff(request)
    appointment = await access_agenda_appointment(caller, path_id(request, "appointment_id"))
    await agenda.do_set_attendance(caller, appointment, body.attendance)
    return await _one(appointment.id)


@api.route(
    "POST",
    "/appointments/{appointment_id}/move",
    body=MoveIn,
    response=AppointmentOut,
    statuses=(401, 404, 409, 422),
)
async def move(request: Request, body: MoveIn) -> AppointmentOut:
    """Move to another time: the old appointment is marked moved, the new one is returned"""
    caller = require_staff(request)
    appointment = await access_agenda_appointment(caller, path_id(request, "appointment_id"))
    new = await agenda.do_move_appointment(caller, appointment, body.starts_at)
    return await _one(new.id)


@api.route("DELETE", "/appointments/{appointment_id}", response=Ok, statuses=(401, 404, 409, 422))
async def delete(request: Request) -> Ok:
    """Remove an appointment from the agenda (its record and log stay); 409 if it has a
    session note: cancel it instead"""
    caller = require_staff(request)
    appointment = await access_agenda_appointment(caller, path_id(request, "appointment_id"))
    await agenda.do_delete_appointment(caller, appointment)
    return Ok()


# --- the page --------------------------------------------------------------------------------


async def agenda_page(request: Request) -> Response:
    caller = require_staff(request)
    people = await practitioners(caller.practice_id)
    services = (
        await Service.filter(practice_id=caller.practice_id, is_active=True)
        .order_by("name")
        .values("id", "name", "duration_minutes", "category_id")
    )
    categories = await ServiceCategory.filter(practice_id=caller.practice_id).values(
        "id", "name", "builtin", "color"
    )
    locations = (
        await Location.filter(practice_id=caller.practice_id, is_active=True)
        .order_by("name")
        .values("id", "name")
    )
    kinds = {c["id"]: getattr(c["builtin"], "value", c["builtin"]) for c in categories}
    config: dict[str, Any] = {
        "practitioners": [{"id": p.id, "name": p.full_name} for p in people],
        "services": [
            {
                "id": s["id"],
                "name": s["name"],
                "duration": s["duration_minutes"],
                "category": kinds.get(s["category_id"]),
            }
            for s in services
        ],
        "categories": [
            {"id": c["id"], "name": category_label(c["name"], c["builtin"]), "color": c["color"]}
            for c in categories
        ],
        "locations": list(locations),
        "me": caller.staff.id if caller.staff else None,
        "earlier_slot_alerts": (await Practice.get(id=caller.practice_id)).earlier_slot_alerts,
        **await agenda_sms_config(caller.practice_id),
    }
    return render(request, "staff/agenda.html", {"section": "agenda", "agenda": config})
