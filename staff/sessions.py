"""The sessions tab of a client file: the filtered list, and marking attendance from it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from urllib.parse import urlencode

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.agenda import Appointment, Attendance
from server.access import access_client
from server.actions import agenda
from server.errors import Conflict, NotFound, ValidationFailed
from server.i18n import gettext as _
from server.queries.sessions import SessionFilter, client_sessions, requested_filter
from server.web import label, path_id, require_staff
from staff import client_file
from staff.api import api

# The filters a row's form carries back, so the list looks the same after marking.
FILTER_PARAMS = ("therapist", "status", "service", "amount_min", "amount_max")


async def sessions_tab(request: Request) -> Response:
    """The tab, filtered by the query string (therapist, status, service, amount range)."""
    requested_filter.set(SessionFilter.from_query(request.query_params))
    return await client_file.file_page(request, tab_name="sessions")


async def set_attendance(request: Request) -> Response:
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    # Reached through the client: an appointment of another file is missing here.
    appointment = await Appointment.get_or_none(
        id=path_id(request, "appointment_id"), client_id=client.id, deleted_at=None
    )
    if appointment is None:
        raise NotFound()
    form = await request.form()
    value = str(form.get("attendance", ""))
    if value not in set(Attendance):
        raise ValidationFailed(
            _("Some fields are not valid."), {"attendance": _("Choose one of the options.")}
        )
    kept = {k: str(form[k]) for k in FILTER_PARAMS if form.get(k)}
    before, wanted = appointment.attendance, Attendance(value)
    try:
        await agenda.do_set_attendance(caller, appointment, wanted)
    except Conflict as exc:
        message = exc.message
        if wanted not in agenda.TRANSITIONS[before]:
            # Said with the statuses as the list shows them, not their stored values.
            message = _("A session marked “%(now)s” cannot be marked “%(then)s”.") % {
                "now": label(before),
                "then": label(wanted),
            }
        requested_filter.set(SessionFilter.from_query(kept))
        return await client_file.file_page(
            request, {"error": message}, status=409, tab_name="sessions"
        )
    query = urlencode({**kept, "saved": "1"})
    return RedirectResponse(f"/staff/clients/{client.id}/sessions?{query}", status_code=303)


class SessionOut(BaseModel):
    id: int
    starts_at: datetime
    practitioner_id: int
    practitioner_name: str
    service_name: str
    location_name: str
    # The service price until billing exists; ``billed`` says which it is.
    amount: Decimal
    billed: bool
    attendance: Attendance
    next_attendances: list[Attendance]


@api.route("GET", "/clients/{client_id}/sessions", response=SessionOut, response_list=True)
async def api_sessions(request: Request) -> list[SessionOut]:
    """A client's sessions, newest first (?therapist=&status=&service=&amount_min=&amount_max=)"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    rows = await client_sessions(client, SessionFilter.from_query(request.query_params))
    return [
        SessionOut(
            id=r.appointment.id,
            starts_at=r.starts_at,
            practitioner_id=r.appointment.practitioner_id,  # type: ignore[attr-defined]
            practitioner_name=r.practitioner_name,
            service_name=r.service_name,
            location_name=r.location_name,
            amount=r.amount,
            billed=False,
            attendance=r.attendance,
            next_attendances=r.next_attendances,
        )
        for r in rows
    ]
