"""The Measures tab of the client file: send a measure (once or on a schedule), fill one in
with the client, remind, withdraw, stop a schedule; the chart and answers; the JSON API.

Anyone who may open the file sees what was sent and whether it was answered; scores,
charts and answers only those who may read clinical details (can_see_clinical: the front
desk only if the practice allows it, the same rule as the clinical tab).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from models.accounts import PortalAccount, Practice
from models.clients import Client
from models.measures import AdministrationStatus, MeasureAdministration, MeasureKind
from server.access import (
    access_administration,
    access_client,
    access_measure_schedule,
    can_see_clinical,
)
from server.actions import measures, schedules
from server.actions.audit import record_read
from server.auth.sessions import Caller
from server.errors import Conflict, NotFound, ValidationFailed
from server.i18n import lazy
from server.instruments import INSTRUMENTS, instrument
from server.queries.measures import administrations, answer_rows, charts, running_schedules
from server.web import client_address, path_id, render, require_staff, validate
from staff.api import api
from staff.client_file import Tab, file_page, register_tab


async def _load(caller: Caller, client: Client, practice: Practice) -> dict[str, Any]:
    clinical = can_see_clinical(caller, practice)
    sent = await administrations(client.id)
    return {
        "clinical": clinical,
        "charts": await charts(client.id) if clinical else [],
        "administrations": sent,
        "answers": {a.id: answer_rows(a) for a in sent if clinical and a.answers},
        "schedules": await running_schedules(client.id),
        "instruments": list(INSTRUMENTS.values()),
        "can_send": await PortalAccount.filter(client_id=client.id, is_active=True).exists(),
        # One key per page shown: the "Send" form sent twice sends once.
        "send_key": secrets.token_urlsafe(16),
    }


register_tab(Tab("measures", lazy("Measures"), "staff/file_measures.html", _load, order=35))


class SendIn(BaseModel):
    measure: MeasureKind
    repeat: Literal["once", "weeks", "sessions"] = "once"
    every_weeks: int | None = Field(default=None, ge=1, le=schedules.MAX_EVERY_WEEKS)
    hours_before: int | None = Field(default=None, ge=1, le=schedules.MAX_HOURS_BEFORE)
    # The form's own key: "Send" pressed twice sends one (server/actions/retries.py).
    request_key: str = Field(default="", max_length=64)

    def schedule(self) -> tuple[int | None, int | None]:
        if self.repeat == "weeks":
            return self.every_weeks or 2, None
        if self.repeat == "sessions":
            return None, self.hours_before or 24
        return None, None


def _back(client_id: int) -> RedirectResponse:
    return RedirectResponse(f"/staff/clients/{client_id}/measures?saved=1", status_code=303)


async def _form(request: Request) -> dict[str, Any]:
    form = await request.form()
    return {k: v for k, v in form.items() if k != "csrf_token" and v != ""}


async def send_form(request: Request) -> Response:
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    data = await _form(request)
    try:
        body = validate(SendIn, data)
        every_weeks, hours_before = body.schedule()
        await measures.do_send_measure(
            caller,
            client,
            body.measure,
            every_weeks=every_weeks,
            hours_before=hours_before,
            request_key=body.request_key,
        )
    except (ValidationFailed, Conflict) as exc:
        # Shown on the tab, with the schedule a 409 names in its list, and the form as sent.
        return await file_page(
            request,
            {"error": exc.message, "fields": exc.fields, "posted": data},
            exc.status_code,
            tab_name="measures",
        )
    return _back(client.id)


async def _clinical(caller: Caller) -> None:
    if not can_see_clinical(caller, await Practice.get(id=caller.practice_id)):
        raise NotFound()


async def fill_page(request: Request) -> Response:
    """Fill a measure in with the client (GET shows it, POST records it)."""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    await _clinical(caller)
    try:
        kind = MeasureKind(request.path_params["measure"])
    except ValueError:
        raise NotFound() from None
    inst = instrument(kind)
    ctx: dict[str, Any] = {
        "client": client,
        "inst": inst,
        "section": "clients",
        "values": {},
        # One key per page shown: the answers sent twice are recorded once.
        "request_key": secrets.token_urlsafe(16),
    }
    if request.method == "POST":
        values = await _form(request)
        key = str(values.pop("request_key", ""))[:64]
        try:
            await measures.do_record_in_session(caller, client, kind, values, request_key=key)
        except ValidationFailed as exc:
            ctx.update(error=exc.message, fields=exc.fields, values=values)
            return render(request, "staff/measure_fill.html", ctx, status=422)
        return _back(client.id)
    return render(request, "staff/measure_fill.html", ctx)


async def _on_file(request: Request) -> tuple[Caller, Client, MeasureAdministration]:
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    administration = await access_administration(caller, path_id(request, "administration_id"))
    if administration.client_id != client.id:  # type: ignore[attr-defined]
        raise NotFound()
    return caller, client, administration


async def change_form(request: Request) -> Response:
    """/remind and /cancel on one administration."""
    change = request.path_params["change"]
    if change not in {"remind", "cancel"}:
        raise NotFound()
    caller, client, administration = await _on_file(request)
    if change == "remind":
        await measures.do_remind(caller, administration)
    else:
        await measures.do_cancel_administration(caller, administration)
    return _back(client.id)


async def stop_schedule_form(request: Request) -> Response:
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    schedule = await access_measure_schedule(caller, path_id(request, "schedule_id"))
    if schedule.client_id != client.id:  # type: ignore[attr-defined]
        raise NotFound()
    await measures.do_stop_schedule(caller, schedule)
    return _back(client.id)


# --- API -------------------------------------------------------------------------------------


class AnswerOut(BaseModel):
    number: int
    text: str
    value: int
    choice: str
    flagged: bool


class AdministrationOut(BaseModel):
    id: int
    measure: MeasureKind
    status: AdministrationStatus
    sent_at: datetime
    completed_at: datetime | None
    reminded_at: datetime | None
    in_session: bool
    # Only for callers who may read clinical details; null otherwise.
    score: int | None
    band: str | None
    safety_alert: bool | None
    answers: list[AnswerOut] | None


def administration_out(a: MeasureAdministration, clinical: bool) -> AdministrationOut:
    return AdministrationOut(
        id=a.id,
        measure=a.measure,
        status=a.status,
        sent_at=a.created_at,
        completed_at=a.completed_at,
        reminded_at=a.reminded_at,
        in_session=a.filled_by_id is not None,  # type: ignore[attr-defined]
        score=a.score if clinical else None,
        band=a.band or None if clinical else None,
        safety_alert=a.safety_alert if clinical else None,
        answers=[AnswerOut(**vars(r)) for r in answer_rows(a)] if clinical and a.answers else None,
    )


class ChartPointOut(BaseModel):
    id: int
    score: int
    band: str
    completed_at: datetime
    x: float
    y: float


class ChartOut(BaseModel):
    measure: MeasureKind
    max_score: int
    bands: list[dict[str, Any]]
    points: list[ChartPointOut]


class MeasuresOut(BaseModel):
    administrations: list[AdministrationOut]
    # Empty for callers who may not read clinical details.
    charts: list[ChartOut]


class ScheduleOut(BaseModel):
    id: int
    measure: MeasureKind
    # One of the two: every N weeks (next_due_at the next send), or N hours before each
    # of the client's sessions.
    every_weeks: int | None
    hours_before: int | None
    next_due_at: datetime | None


class SentMeasureOut(BaseModel):
    # What went to the portal now: nothing yet for "before each session" until a session
    # is that close.
    administration: AdministrationOut | None
    # The schedule that sends it again, when one was asked for.
    schedule: ScheduleOut | None


class SendApiIn(BaseModel):
    measure: MeasureKind
    every_weeks: int | None = Field(default=None, ge=1, le=schedules.MAX_EVERY_WEEKS)
    hours_before: int | None = Field(default=None, ge=1, le=schedules.MAX_HOURS_BEFORE)
    # Sent once: the same key again gives back the measure it sent.
    request_key: str = Field(default="", max_length=64)


@api.route("GET", "/clients/{client_id}/measures", response=MeasuresOut)
async def get_measures(request: Request) -> MeasuresOut:
    """What was sent to the client and whether it was answered; the scores, answers and
    charts only for those who may read clinical details"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    practice = await Practice.get(id=caller.practice_id)
    clinical = can_see_clinical(caller, practice)
    await record_read(caller, client.id, "measures", ip=client_address(request))
    out_charts = []
    if clinical:
        for c in await charts(client.id):
            out_charts.append(
                ChartOut(
                    measure=c.measure,
                    max_score=c.max_score,
                    bands=[
                        {"key": b.key, "low": b.low, "high": b.high, "y": b.y, "height": b.height}
                        for b in c.bands
                    ],
                    points=[
                        ChartPointOut(
                            id=p.id, score=p.score, band=p.band, completed_at=p.when, x=p.x, y=p.y
                        )
                        for p in c.points
                    ],
                )
            )
    return MeasuresOut(
        administrations=[administration_out(a, clinical) for a in await administrations(client.id)],
        charts=out_charts,
    )


@api.route("POST", "/clients/{client_id}/measures", body=SendApiIn, response=SentMeasureOut)
async def post_measure(request: Request, body: SendApiIn) -> SentMeasureOut:
    """Send a measure to the client's portal, once or on a schedule (every N weeks, or N
    hours before each session): what was sent now (none yet before each session) and the
    schedule"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    administration, schedule = await measures.do_send_measure(
        caller,
        client,
        body.measure,
        every_weeks=body.every_weeks,
        hours_before=body.hours_before,
        request_key=body.request_key,
    )
    practice = await Practice.get(id=caller.practice_id)
    return SentMeasureOut(
        administration=administration_out(administration, can_see_clinical(caller, practice))
        if administration is not None
        else None,
        schedule=ScheduleOut(
            id=schedule.id,
            measure=schedule.measure,
            every_weeks=schedule.every_weeks,
            hours_before=schedule.hours_before,
            next_due_at=schedule.next_due_at,
        )
        if schedule is not None
        else None,
    )


@api.route("GET", "/measures/{administration_id}", response=AdministrationOut)
async def get_administration(request: Request) -> AdministrationOut:
    """One administration (answers only for those who may read clinical details)"""
    caller = require_staff(request)
    administration = await access_administration(caller, path_id(request, "administration_id"))
    practice = await Practice.get(id=caller.practice_id)
    clinical = can_see_clinical(caller, practice)
    if clinical:
        await record_read(
            caller,
            administration.client_id,  # type: ignore[attr-defined]
            "measures",
            ip=client_address(request),
        )
    return administration_out(administration, clinical)


routes = [
    Route("/clients/{client_id:int}/measures", send_form, methods=["POST"]),
    Route(
        "/clients/{client_id:int}/measures/fill/{measure:str}", fill_page, methods=["GET", "POST"]
    ),
    Route(
        "/clients/{client_id:int}/measures/schedules/{schedule_id:int}/stop",
        stop_schedule_form,
        methods=["POST"],
    ),
    Route(
        "/clients/{client_id:int}/measures/{administration_id:int}/{change:str}",
        change_form,
        methods=["POST"],
    ),
]
