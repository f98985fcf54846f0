"""Portal pages."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from models.accounts import Practice
from models.agenda import Appointment, Attendance
from models.forms import FormAssignment, FormStatus
from models.measures import AdministrationStatus, MeasureAdministration
from server.actions.messaging import who_hears_a_client
from server.web import render, require_client


async def home(request: Request) -> Response:
    caller = require_client(request)
    assert caller.client is not None
    practice = await Practice.get(id=caller.practice_id)
    me = caller.client.id
    # What waits for the client, on the tiles: a phone's first screen says it all.
    ctx = {
        "practice": practice,
        "section": "home",
        "next_appointment": await Appointment.filter(
            client_id=me,
            deleted_at=None,
            attendance=Attendance.SCHEDULED,
            starts_at__gte=datetime.now(UTC),
        )
        .order_by("starts_at")
        .first(),
        "measures_waiting": await MeasureAdministration.filter(
            client_id=me, status=AdministrationStatus.SENT
        ).count(),
        "forms_waiting": await FormAssignment.filter(client_id=me, status=FormStatus.SENT).count(),
    }
    return render(request, "portal/home.html", ctx)


async def messages(request: Request) -> Response:
    caller = require_client(request)
    assert caller.client is not None
    return render(
        request,
        "portal/messages.html",
        {
            "section": "messages",
            "open_id": request.query_params.get("c", ""),
            # Whom "New message" writes to; no button when nobody may receive it.
            "write_to": await who_hears_a_client(caller.client),
        },
    )
