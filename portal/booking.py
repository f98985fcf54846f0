"""Online booking and "my appointments" on the portal.

Pages are plain forms (a slot is a button), so booking works on any phone without script.
A client books only for themselves, only a free slot as computed at the moment of booking:
two clients racing for the last place get one appointment and one "this slot is gone".
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from tortoise.expressions import Q

from models.accounts import Practice, StaffRole, StaffUser
from models.agenda import Appointment, Attendance, Availability, Location, Service
from models.clients import PhoneNumber
from portal.offers import offers_context
from server.access import access_appointment
from server.actions import agenda, booking, client_file, offers
from server.actions.booking import HORIZON_DAYS
from server.auth.sessions import Caller
from server.errors import Conflict, NotFound, ValidationFailed
from server.i18n import gettext as _
from server.queries.agenda import Slot, slots_for, video_link
from server.web import parse_body, path_id, render, require_client


class BookIn(BaseModel):
    service_id: int
    location_id: int | None = None
    starts_at: datetime
    # "Alert me of an earlier slot" (earlier-slot alerts, server/actions/offers.py).
    alert_earlier: bool = False


async def _practice(caller: Caller) -> Practice:
    practice = await Practice.get(id=caller.practice_id)
    if not practice.online_booking:
        raise NotFound()
    return practice


async def bookable_practitioners(practice_id: int) -> list[StaffUser]:
    """Clinicians of the practice with something a client can book online, in name order:
    not those whose only hours have ended, are at a closed location, or offer nothing that
    can be booked there (the client chose them and found nothing)."""
    ids = await Availability.filter(
        deleted_at=None, practitioner__practice_id=practice_id
    ).values_list("practitioner_id", flat=True)
    candidates = await StaffUser.filter(
        id__in=set(ids),
        is_active=True,
        role__in=[StaffRole.THERAPIST, StaffRole.OWNER],
    ).order_by("last_name", "first_name")
    open_ids = set(
        await Location.filter(practice_id=practice_id, is_active=True).values_list("id", flat=True)
    )
    return [p for p in candidates if any(loc is None or loc in open_ids for loc in await offer(p))]


async def _practitioner(caller: Caller, practitioner_id: int) -> StaffUser:
    for p in await bookable_practitioners(caller.practice_id):
        if p.id == practitioner_id:
            return p
    raise NotFound()


async def offer(practitioner: StaffUser) -> dict[int | None, list[Service]]:
    """The services a practitioner offers online, per location (None: remote only). Not, in
    hours without a location, those booked only at one (saved before that was required):
    their slots showed, and every booking of them was refused."""
    practice = await Practice.get(id=practitioner.practice_id)  # type: ignore[attr-defined]
    today = datetime.now(ZoneInfo(practice.time_zone)).date()
    rows = (
        await Availability.filter(practitioner_id=practitioner.id, deleted_at=None)
        # Hours that have ended offer nothing any more.
        .filter(Q(valid_until=None) | Q(valid_until__gte=today))
        .filter(Q(on_date=None) | Q(on_date__gte=today))
        .prefetch_related("services")
    )
    out: dict[int | None, dict[int, Service]] = {}
    for a in rows:
        vain = (
            {s.id for s in await agenda.needing_a_location(list(a.services))}
            if a.location_id is None  # type: ignore[attr-defined]
            else set()
        )
        for s in a.services:
            if s.is_active and s.id not in vain:
                out.setdefault(a.location_id, {})[s.id] = s  # type: ignore[attr-defined]
    return {loc: sorted(svcs.values(), key=lambda s: s.name) for loc, svcs in out.items()}


async def practitioner_page(request: Request, error: str = "", status: int = 200) -> Response:
    caller = require_client(request)
    practice = await _practice(caller)
    practitioner = await _practitioner(caller, path_id(request, "practitioner_id"))
    offered = await offer(practitioner)
    locations = {
        loc.id: loc
        for loc in await Location.filter(
            id__in=[i for i in offered if i is not None], is_active=True
        )
    }
    location_ids: list[int | None] = [i for i in offered if i is None or i in locations]
    chosen_location = _pick(request.query_params.get("location"), location_ids)
    services = offered.get(chosen_location, [])
    chosen_service = next(
        (s for s in services if str(s.id) == request.query_params.get("service")), None
    )
    slots: list[Slot] = []
    if chosen_service is not None:
        tz = ZoneInfo(practice.time_zone)
        today = datetime.now(tz).date()
        slots = await slots_for(
            practitioner.id,
            chosen_service.id,
            timedelta(minutes=chosen_service.duration_minutes),
            tz,
            today,
            today + timedelta(days=HORIZON_DAYS),
            location_id=chosen_location,
            exact_location=True,  # None is the remote choice here, not "anywhere"
            now=booking.earliest_online_start(practice, datetime.now(UTC)),
        )
    return render(
        request,
        "portal/book.html",
        {
            "section": "appointments",
            "practitioner": practitioner,
            "locations": [(i, locations.get(i) if i is not None else None) for i in location_ids],
            "location_id": chosen_location,
            "services": services,
            "service": chosen_service,
            "days": _by_day(slots, ZoneInfo(practice.time_zone)),
            "error": error,
            "alerts_on": practice.earlier_slot_alerts,
            "alert_min_days": practice.earlier_slot_min_days,
            "alert_earlier": request.query_params.get("alert") == "1",
        },
        status=status,
    )


def _pick(raw: str | None, choices: list[int | None]) -> int | None:
    """The location asked for: its id, or "" for remote (the form's value for None); the
    first one offered when none is asked for or it is not offered."""
    for choice in choices:
        if raw == ("" if choice is None else str(choice)):
            return choice
    return choices[0] if choices else None


def _by_day(slots: list[Slot], tz: ZoneInfo) -> list[tuple[date, list[Slot]]]:
    days: dict[date, list[Slot]] = {}
    for slot in slots:
        days.setdefault(slot.start.astimezone(tz).date(), []).append(slot)
    return sorted(days.items())


async def book(request: Request) -> Response:
    caller = require_client(request)
    await _practice(caller)
    practitioner = await _practitioner(caller, path_id(request, "practitioner_id"))
    data = await parse_body(request, BookIn)
    offered = await offer(practitioner)
    service = next((s for s in offered.get(data.location_id, []) if s.id == data.service_id), None)
    if service is None:
        raise NotFound()
    assert caller.client is not None and caller.account is not None
    try:
        appointment = await booking.do_book_online(
            caller,
            practitioner,
            caller.client,
            service,
            starts_at=data.starts_at,
            location_id=data.location_id,
            alert_earlier=data.alert_earlier,
        )
    except Conflict as exc:
        # Someone else was quicker, the slot closed meanwhile, or the client is elsewhere
        # then (the action's message says which, for the client): show the fresh slots.
        return await practitioner_page(request, exc.message, 409)
    asked = "&alert=1" if data.alert_earlier else ""
    return RedirectResponse(f"/portal/appointments?booked={appointment.id}{asked}", status_code=303)


# --- my appointments -------------------------------------------------------------------------


def can_cancel(appointment: Appointment, practice: Practice, now: datetime) -> bool:
    notice = timedelta(hours=practice.cancellation_notice_hours)
    return appointment.attendance is Attendance.SCHEDULED and appointment.starts_at - now >= notice


async def appointments_page(
    request: Request,
    error: str = "",
    status: int = 200,
    reminders: client_file.OwnRemindersIn | None = None,
    reminder_errors: dict[str, str] | None = None,
) -> Response:
    caller = require_client(request)
    assert caller.client is not None
    practice = await Practice.get(id=caller.practice_id)
    now = datetime.now(UTC)
    rows = (
        await Appointment.filter(client_id=caller.client.id, deleted_at=None)
        .prefetch_related("service", "practitioner", "location")
        .order_by("starts_at")
    )
    upcoming = [a for a in rows if a.ends_at >= now]
    past = [a for a in rows if a.ends_at < now][::-1][:20]
    ctx: dict[str, Any] = {
        "section": "appointments",
        "upcoming": [(a, can_cancel(a, practice, now)) for a in upcoming],
        "where": {a.id: booking.where(a, practice, a.location, caller.client) for a in upcoming},
        "video": {
            a.id: video_link(practice.video_url_template, a.video_room)
            for a in upcoming
            if a.video_room and a.attendance is Attendance.SCHEDULED
        },
        "past": past,
        "notice_hours": practice.cancellation_notice_hours,
        "practitioners": await bookable_practitioners(practice.id)
        if practice.online_booking
        else [],
        "booked": request.query_params.get("booked", ""),
        "error": error,
        "reminders": reminders
        or client_file.OwnRemindersIn(
            reminder_email_hours=caller.client.reminder_email_hours,
            reminder_sms_hours=caller.client.reminder_sms_hours,
        ),
        "reminder_errors": reminder_errors or {},
        "reminder_hours": list(range(client_file.REMINDER_MIN, client_file.REMINDER_MAX + 1)),
        "has_sms_number": await PhoneNumber.filter(
            client_id=caller.client.id, for_sms=True
        ).exists(),
    }
    ctx.update(await offers_context(practice, caller.client.id))
    ctx["no_alert"] = _no_alert(request, practice, upcoming, ctx["flagged"], now)
    return render(request, "portal/appointments.html", ctx, status=status)


def _no_alert(
    request: Request,
    practice: Practice,
    upcoming: list[Appointment],
    flagged: set[int],
    now: datetime,
) -> str:
    """After a booking that asked for an earlier-slot alert which could not be set (the
    session is already soon, or a group): why, next to "booked"."""
    if request.query_params.get("alert") != "1":
        return ""
    booked = next((a for a in upcoming if str(a.id) == request.query_params.get("booked")), None)
    if booked is None or booked.id in flagged:
        return ""
    reason = offers.join_refusal(practice, booked, now)
    return _("No earlier-slot alert was set: %(reason)s") % {
        "reason": reason or _("this appointment cannot wait for one.")
    }


async def cancel(request: Request) -> Response:
    caller = require_client(request)
    assert caller.client is not None
    appointment = await access_appointment(caller, path_id(request, "appointment_id"))
    practice = await Practice.get(id=caller.practice_id)
    if not can_cancel(appointment, practice, datetime.now(UTC)):
        return await appointments_page(
            request,
            _("This appointment can no longer be cancelled online: please contact the practice."),
            409,
        )
    await agenda.do_set_attendance(caller, appointment, Attendance.CANCELLED_BY_CLIENT)
    return RedirectResponse("/portal/appointments?cancelled=1", status_code=303)


async def set_reminders(request: Request) -> Response:
    """The client's own reminders (email and SMS, off or hours before)."""
    caller = require_client(request)
    assert caller.client is not None
    data = await parse_body(request, client_file.OwnRemindersIn)
    try:
        await client_file.do_set_own_reminders(caller, caller.client, data)
    except ValidationFailed as e:
        return await appointments_page(
            request, e.message, 422, reminders=data, reminder_errors=e.fields
        )
    return RedirectResponse("/portal/appointments?reminders=1#reminders", status_code=303)
