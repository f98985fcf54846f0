"""The client's forms on the portal: what is waiting, filling one in (save a draft and come
back, or submit), and what they submitted (with its PDF under Documents).

A client reaches only the forms sent to them (access_form_assignment); a withdrawn one is a
404. A submitted form cannot change: the page then shows the answers, read-only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.forms import FormAssignment, FormStatus, FormVersion
from portal.api import api
from server.access import access_form_assignment
from server.actions import forms
from server.auth.sessions import Caller
from server.errors import ValidationFailed
from server.form_fields import Values
from server.web import path_id, render, require_client


async def _mine(caller: Caller) -> list[FormAssignment]:
    assert caller.client is not None
    return (
        await FormAssignment.filter(client_id=caller.client.id)
        .exclude(status=FormStatus.CANCELLED)
        .prefetch_related("version__template")
        .order_by("-created_at", "-id")
    )


async def forms_page(request: Request) -> Response:
    caller = require_client(request)
    mine = await _mine(caller)
    return render(
        request,
        "portal/forms.html",
        {
            "section": "forms",
            "waiting": [a for a in mine if a.status is FormStatus.SENT],
            "submitted": [a for a in mine if a.status is FormStatus.COMPLETED],
        },
    )


async def _values(request: Request) -> tuple[Values, str]:
    form = await request.form()
    values: Values = {}
    for key in form:
        if key in ("csrf_token", "action"):
            continue
        items = [str(v) for v in form.getlist(key)]
        values[key] = items if len(items) > 1 else items[0]
    return values, str(form.get("action") or "submit")


async def form_page(request: Request) -> Response:
    caller = require_client(request)
    assignment = await access_form_assignment(caller, path_id(request, "assignment_id"))
    version = await FormVersion.get(id=assignment.version_id).prefetch_related("template")  # type: ignore[attr-defined]
    ctx: dict[str, Any] = {
        "section": "forms",
        "a": assignment,
        "version": version,
        "values": assignment.answers
        if assignment.answers is not None
        else (assignment.draft or {}),
    }
    if request.method == "POST":
        values, action = await _values(request)
        try:
            if action == "draft":
                await forms.do_save_draft(caller, assignment, values)
            else:
                await forms.do_submit_form(caller, assignment, values)
        except ValidationFailed as exc:
            ctx.update(error=exc.message, fields=exc.fields, values=values)
            return render(request, "portal/form.html", ctx, status=422)
        flag = "draft=1" if action == "draft" else "done=1"
        return RedirectResponse(f"/portal/forms/{assignment.id}?{flag}", status_code=303)
    return render(request, "portal/form.html", ctx)


# --- API -------------------------------------------------------------------------------------


class PortalFormOut(BaseModel):
    id: int
    name: str
    version: int
    status: FormStatus
    sent_at: datetime
    draft_saved_at: datetime | None
    completed_at: datetime | None
    document_id: int | None
    fields: list[dict[str, Any]]
    # The submitted answers, or the draft while it waits.
    answers: dict[str, Any]


def _out(a: FormAssignment) -> PortalFormOut:
    return PortalFormOut(
        id=a.id,
        name=a.version.template.name,
        version=a.version.number,
        status=a.status,
        sent_at=a.created_at,
        draft_saved_at=a.draft_saved_at,
        completed_at=a.completed_at,
        document_id=a.document_id,  # type: ignore[attr-defined]
        fields=a.version.fields_spec,
        answers=a.answers if a.answers is not None else (a.draft or {}),
    )


@api.route("GET", "/forms", response=PortalFormOut, response_list=True)
async def list_forms(request: Request) -> list[PortalFormOut]:
    """The forms your practice sent you, newest first, with their fields and your answers"""
    caller = require_client(request)
    return [_out(a) for a in await _mine(caller)]


class FormAnswersIn(BaseModel):
    answers: dict[str, str | list[str]]
    # false: keep as a draft (nothing required yet); true: submit (final).
    submit: bool = False


@api.route("POST", "/forms/{assignment_id}", body=FormAnswersIn, response=PortalFormOut)
async def answer_form(request: Request, body: FormAnswersIn) -> PortalFormOut:
    """Save a draft of a form sent to you, or submit it (once; required fields enforced)"""
    caller = require_client(request)
    assignment = await access_form_assignment(caller, path_id(request, "assignment_id"))
    if body.submit:
        await forms.do_submit_form(caller, assignment, body.answers)
    else:
        await forms.do_save_draft(caller, assignment, body.answers)
    fresh = await FormAssignment.get(id=assignment.id).prefetch_related("version__template")
    return _out(fresh)
