"""The client's questionnaires on the portal: what is waiting, answering one, and their own
scores over time when the practice shows them (Practice.clients_see_measure_trend).

A client reaches only what was sent to them (access_administration); a withdrawn one is a
404. The emailed link leads here, through the sign-in page when they are signed out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.accounts import Practice
from models.measures import AdministrationStatus, MeasureAdministration, MeasureKind
from portal.api import api
from server.access import access_administration
from server.actions import measures
from server.auth.sessions import Caller
from server.errors import ValidationFailed
from server.instruments import instrument
from server.queries.measures import charts
from server.web import path_id, posted_fields, render, require_client


async def _mine(caller: Caller) -> list[MeasureAdministration]:
    assert caller.client is not None
    return (
        await MeasureAdministration.filter(client_id=caller.client.id)
        .exclude(status=AdministrationStatus.CANCELLED)
        .order_by("-created_at", "-id")
    )


async def measures_page(request: Request) -> Response:
    caller = require_client(request)
    assert caller.client is not None
    practice = await Practice.get(id=caller.practice_id)
    mine = await _mine(caller)
    return render(
        request,
        "portal/measures.html",
        {
            "section": "measures",
            "waiting": [a for a in mine if a.status is AdministrationStatus.SENT],
            "answered": [a for a in mine if a.status is AdministrationStatus.COMPLETED],
            "names": {a.id: instrument(a.measure).name for a in mine},
            "show_trend": practice.clients_see_measure_trend,
            "charts": await charts(caller.client.id) if practice.clients_see_measure_trend else [],
        },
    )


async def measure_page(request: Request) -> Response:
    """One questionnaire: the form while it waits (POST answers it), then what was answered."""
    caller = require_client(request)
    administration = await access_administration(caller, path_id(request, "administration_id"))
    practice = await Practice.get(id=caller.practice_id)
    inst = instrument(administration.measure)
    ctx: dict[str, Any] = {
        "section": "measures",
        "a": administration,
        "inst": inst,
        "practice": practice,
        "values": {},
    }
    if request.method == "POST":
        values = await posted_fields(request)
        try:
            await measures.do_complete_measure(caller, administration, values)
        except ValidationFailed as exc:
            ctx.update(error=exc.message, fields=exc.fields, values=values)
            return render(request, "portal/measure.html", ctx, status=422)
        return RedirectResponse(f"/portal/measures/{administration.id}?done=1", status_code=303)
    return render(request, "portal/measure.html", ctx)


# --- API -------------------------------------------------------------------------------------


class PortalMeasureOut(BaseModel):
    id: int
    measure: MeasureKind
    name: str
    status: AdministrationStatus
    sent_at: datetime
    completed_at: datetime | None
    # Shown only when the practice lets clients see their scores.
    score: int | None
    # True when the answers call for the practice's crisis message.
    show_crisis_message: bool


def _out(a: MeasureAdministration, practice: Practice) -> PortalMeasureOut:
    return PortalMeasureOut(
        id=a.id,
        measure=a.measure,
        name=instrument(a.measure).name,
        status=a.status,
        sent_at=a.created_at,
        completed_at=a.completed_at,
        score=a.score if practice.clients_see_measure_trend else None,
        show_crisis_message=a.safety_alert,
    )


@api.route("GET", "/measures", response=PortalMeasureOut, response_list=True)
async def list_measures(request: Request) -> list[PortalMeasureOut]:
    """The questionnaires your practice sent you, newest first"""
    caller = require_client(request)
    practice = await Practice.get(id=caller.practice_id)
    return [_out(a, practice) for a in await _mine(caller)]


class AnswersIn(BaseModel):
    # "item_1".."item_9" (and "extra" for the PHQ-9's closing question): the chosen value.
    answers: dict[str, int]


@api.route(
    "POST", "/measures/{administration_id}/answers", body=AnswersIn, response=PortalMeasureOut
)
async def answer_measure(request: Request, body: AnswersIn) -> PortalMeasureOut:
    """Answer a questionnaire waiting for you (once; every scored question is required)"""
    caller = require_client(request)
    administration = await access_administration(caller, path_id(request, "administration_id"))
    done = await measures.do_complete_measure(caller, administration, dict(body.answers))
    return _out(done, await Practice.get(id=caller.practice_id))
