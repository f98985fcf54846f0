"""Earlier-slot alerts for staff: the flag on an appointment, to whom a freed slot was
offered (/api/appointments/{id}/offers), and the owner's fill rate (/staff/practice/fill-rate).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from models.accounts import Practice
from server.access import access_agenda_appointment, visible_clients
from server.actions import offers
from server.queries import offers as offer_views
from server.queries.agenda_view import appointment_views
from server.web import path_id, render, require_staff
from staff.api import api
from staff.pages import OWNER

PERIODS = (30, 90, 365)


class AlertIn(BaseModel):
    on: bool


class AlertOut(BaseModel):
    id: int
    alert_earlier: bool


class OfferLineOut(BaseModel):
    # None and "" when the caller may not see that client's file (another caseload).
    client_id: int | None
    client_name: str
    status: str
    sent_at: datetime
    answered_at: datetime | None
    expires_at: datetime


class SlotHistoryOut(BaseModel):
    appointment_id: int
    client_name: str
    attendance: str
    offers: list[OfferLineOut]


@api.route(
    "POST",
    "/appointments/{appointment_id}/earlier-alert",
    body=AlertIn,
    response=AlertOut,
    statuses=(401, 404, 422),
)
async def set_alert(request: Request, body: AlertIn) -> AlertOut:
    """Put an appointment on the waiting list for an earlier slot, or take it off (422 unless
    the practice offers it and the appointment is later than now plus the minimum delay)"""
    caller = require_staff(request)
    appointment = await access_agenda_appointment(caller, path_id(request, "appointment_id"))
    await offers.do_set_earlier_alert(caller, appointment, body.on)
    view = (await appointment_views(type(appointment).filter(id=appointment.id)))[0]
    return AlertOut(id=appointment.id, alert_earlier=view["alert_earlier"])


@api.route(
    "GET",
    "/appointments/{appointment_id}/offers",
    response=SlotHistoryOut,
    response_list=True,
)
async def offered_to(request: Request) -> list[SlotHistoryOut]:
    """To whom this slot was offered: for each appointment ever made at this time with this
    practitioner, the offers its cancellation caused"""
    caller = require_staff(request)
    appointment = await access_agenda_appointment(caller, path_id(request, "appointment_id"))
    ids = await (await visible_clients(caller)).values_list("id", flat=True)
    visible = {int(i) for i in ids}  # type: ignore[call-overload]
    rows = await offer_views.offered_to(appointment, visible)
    return [
        SlotHistoryOut(
            appointment_id=r.appointment_id,
            client_name=r.client_name,
            attendance=r.attendance,
            offers=[OfferLineOut(**line.__dict__) for line in r.lines],
        )
        for r in rows
    ]


async def fill_rate_page(request: Request) -> Response:
    caller = require_staff(request, OWNER)
    practice = await Practice.get(id=caller.practice_id)
    try:
        days = int(request.query_params.get("days", "90"))
    except ValueError:
        days = 90
    days = days if days in PERIODS else 90
    tz = ZoneInfo(practice.time_zone)
    figures = await offer_views.fill_rate(practice.id, tz, days, datetime.now(tz).date())
    peak = max([w.freed for w in figures.weeks] + [1])
    return render(
        request,
        "staff/fill_rate.html",
        {
            "section": "practice",
            "practice": practice,
            "figures": figures,
            "days": days,
            "periods": PERIODS,
            "peak": peak,
        },
    )
