"""Forms for staff: the list and the builder (/staff/forms), and the client file's Forms tab
(send a form, what was sent and whether it was submitted, remind, withdraw, the answers).

Answers follow the clinical rule (can_see_clinical): the front desk sees that a form was
submitted, and what it says only if the practice opened clinical details to it.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from tortoise.expressions import Subquery

from models.accounts import Practice
from models.clients import Client
from models.forms import (
    FieldKind,
    FormAssignment,
    FormPurpose,
    FormSchedule,
    FormTemplate,
    FormVersion,
)
from server.access import (
    access_client,
    access_form_assignment,
    access_form_schedule,
    access_form_template,
    can_see_clinical,
    visible_clients,
)
from server.actions import form_schedules, forms, schedules
from server.auth.sessions import Caller
from server.errors import Conflict, NotFound, ValidationFailed
from server.form_fields import FieldIn, shown
from server.i18n import lazy
from server.web import (
    LABELS,
    add_filter,
    label,
    path_id,
    posted_fields,
    render,
    require_staff,
    validate,
)
from staff.client_file import Tab, file_page, register_tab

LABELS.update(
    {
        FormPurpose.INTAKE: lazy("Intake"),
        FormPurpose.CONSENT: lazy("Consent"),
        FormPurpose.OTHER: lazy("Other"),
        FieldKind.SECTION: lazy("Section heading"),
        FieldKind.SHORT_TEXT: lazy("Short text"),
        FieldKind.LONG_TEXT: lazy("Long text"),
        FieldKind.SINGLE_CHOICE: lazy("Single choice"),
        FieldKind.MULTIPLE_CHOICE: lazy("Multiple choice"),
        FieldKind.DATE: lazy("Date"),
        FieldKind.NUMBER: lazy("Number"),
        FieldKind.YES_NO: lazy("Yes / no"),
        FieldKind.SIGNATURE: lazy("Signature (typed name and date)"),
    }
)
# Field kinds are stored as text in a version's fields: {{ f.kind | field_kind }}.
add_filter("field_kind", lambda value: label(FieldKind(value)))

# --- the Forms tab ---------------------------------------------------------------------------


async def _load_tab(caller: Caller, client: Client, practice: Practice) -> dict[str, Any]:
    sent = (
        await FormAssignment.filter(client_id=client.id)
        .prefetch_related("version__template", "sent_by")
        .order_by("-created_at", "-id")
    )
    readable = can_see_clinical(caller, practice)
    return {
        "send_key": secrets.token_urlsafe(16),
        "sent_forms": sent,
        "read_answers": readable,
        "answer_rows": {
            a.id: [(f, shown(f, (a.answers or {}).get(f["key"]))) for f in a.version.fields_spec]
            for a in sent
            if readable and a.answers is not None
        },
        "templates": await FormTemplate.filter(practice_id=practice.id, archived_at=None).order_by(
            "name"
        ),
        "form_schedules": await FormSchedule.filter(client_id=client.id, stopped_at=None)
        .prefetch_related("template")
        .order_by("id"),
    }


register_tab(Tab("forms", lazy("Forms"), "staff/file_forms.html", _load_tab, order=37))


class SendIn(BaseModel):
    form_id: int = Field(ge=1, le=2**31 - 1)
    # As for measures: once, now then every N weeks, or before every session.
    repeat: Literal["once", "weeks", "sessions"] = "once"
    every_weeks: int | None = Field(default=None, ge=1, le=schedules.MAX_EVERY_WEEKS)
    hours_before: int | None = Field(default=None, ge=1, le=schedules.MAX_HOURS_BEFORE)
    # The form's own key, made when the tab is shown: "Send" pressed twice sends one form.
    request_key: str = Field(default="", max_length=64)


def _back_to_file(client_id: int) -> RedirectResponse:
    return RedirectResponse(f"/staff/clients/{client_id}/forms?saved=1", status_code=303)


async def send_form(request: Request) -> Response:
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    posted = await posted_fields(request)
    try:
        body = validate(SendIn, posted)
        template = await access_form_template(caller, body.form_id)
        if body.repeat == "weeks":
            await form_schedules.do_schedule_form(
                caller, client, template, every_weeks=body.every_weeks or 2
            )
        elif body.repeat == "sessions":
            await form_schedules.do_schedule_form(
                caller, client, template, hours_before=body.hours_before or 24
            )
        else:
            await forms.do_send_form(caller, client, template, body.request_key)
    except (ValidationFailed, Conflict) as exc:
        # Shown on the tab, with the schedule a 409 names in its list, and the form as sent.
        return await file_page(
            request,
            {"error": exc.message, "fields": exc.fields, "posted": posted},
            exc.status_code,
            tab_name="forms",
        )
    return _back_to_file(client.id)


async def change_sent_form(request: Request) -> Response:
    change = request.path_params["change"]
    if change not in {"remind", "cancel"}:
        raise NotFound()
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    assignment = await access_form_assignment(caller, path_id(request, "assignment_id"))
    if assignment.client_id != client.id:  # type: ignore[attr-defined]
        raise NotFound()
    if change == "remind":
        await forms.do_remind_form(caller, assignment)
    else:
        await forms.do_cancel_form(caller, assignment)
    return _back_to_file(client.id)


async def stop_schedule(request: Request) -> Response:
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    schedule = await access_form_schedule(caller, path_id(request, "schedule_id"))
    if schedule.client_id != client.id:  # type: ignore[attr-defined]
        raise NotFound()
    await form_schedules.do_stop_form_schedule(caller, schedule)
    return _back_to_file(client.id)


# --- the list and the builder ----------------------------------------------------------------


class NewFormIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    purpose: FormPurpose = FormPurpose.OTHER


async def forms_page(request: Request) -> Response:
    caller = require_staff(request)
    ctx: dict[str, Any] = {"section": "forms", "purposes": list(FormPurpose)}
    if request.method == "POST":
        posted = await posted_fields(request)
        try:
            body = validate(NewFormIn, posted)
            template = await forms.do_create_form(caller, body.name, body.purpose)
        except ValidationFailed as exc:
            ctx.update(error=exc.message, fields=exc.fields, posted=posted)
            ctx["templates"] = await _templates(caller)
            return render(request, "staff/forms.html", ctx, status=422)
        return RedirectResponse(f"/staff/forms/{template.id}", status_code=303)
    ctx["templates"] = await _templates(caller)
    return render(request, "staff/forms.html", ctx)


async def _templates(caller: Caller) -> list[dict[str, Any]]:
    rows = []
    # Counted among the clients the caller may see: a therapist's count says nothing of how
    # many of a colleague's clients had the form (a count is about people too).
    mine = Subquery((await visible_clients(caller)).values("id"))
    for t in await FormTemplate.filter(practice_id=caller.practice_id).order_by(
        "archived_at", "name"
    ):
        latest = await forms.latest_version(t)
        sent = FormAssignment.filter(version__template_id=t.id, client_id__in=mine)
        rows.append({"t": t, "version": latest.number, "sent": await sent.count()})
    return rows


def _field_from_form(data: dict[str, Any]) -> FieldIn:
    return validate(
        FieldIn,
        {
            "kind": data.get("kind", ""),
            "label": data.get("label", ""),
            "help": data.get("help", ""),
            "required": data.get("required") in ("1", "on", "true"),
            "choices": str(data.get("choices", "")).splitlines(),
        },
    )


async def builder_page(
    request: Request, ctx: dict[str, Any] | None = None, status: int = 200
) -> Response:
    caller = require_staff(request)
    template = await access_form_template(caller, path_id(request, "form_id"))
    version = await forms.latest_version(template)
    context: dict[str, Any] = {
        "section": "forms",
        "template": template,
        "version": version,
        "specs": version.fields_spec,
        "kinds": list(FieldKind),
        "purposes": list(FormPurpose),
        "used": await FormAssignment.filter(version_id=version.id).exists(),
        "versions": await FormVersion.filter(template_id=template.id).count(),
    }
    context.update(ctx or {})
    return render(request, "staff/form_builder.html", context, status=status)


async def _builder_action(request: Request, work: Any) -> Response:
    caller = require_staff(request)
    template = await access_form_template(caller, path_id(request, "form_id"))
    data = await posted_fields(request)
    try:
        await work(caller, template, data)
    except ValidationFailed as exc:
        return await builder_page(
            request, {"error": exc.message, "fields": exc.fields, "posted": data}, 422
        )
    return RedirectResponse(f"/staff/forms/{template.id}?saved=1", status_code=303)


async def rename_form(request: Request) -> Response:
    async def work(caller: Caller, template: FormTemplate, data: dict[str, Any]) -> None:
        body = validate(NewFormIn, data)
        await forms.do_rename_form(caller, template, body.name, body.purpose)

    return await _builder_action(request, work)


async def archive_form(request: Request) -> Response:
    async def work(caller: Caller, template: FormTemplate, data: dict[str, Any]) -> None:
        await forms.do_archive_form(caller, template, data.get("archived") == "1")

    return await _builder_action(request, work)


async def add_field(request: Request) -> Response:
    async def work(caller: Caller, template: FormTemplate, data: dict[str, Any]) -> None:
        await forms.do_edit_form(caller, template, add=_field_from_form(data))

    return await _builder_action(request, work)


async def change_field(request: Request) -> Response:
    key, op = request.path_params["key"], request.path_params["op"]
    if op not in {"update", "remove", "up", "down"}:
        raise NotFound()

    async def work(caller: Caller, template: FormTemplate, data: dict[str, Any]) -> None:
        if op == "update":
            await forms.do_edit_form(caller, template, update=(key, _field_from_form(data)))
        elif op == "remove":
            await forms.do_edit_form(caller, template, remove=key)
        else:
            await forms.do_edit_form(caller, template, move=(key, op))

    return await _builder_action(request, work)


routes = [
    Route("/forms", forms_page, methods=["GET", "POST"]),
    Route("/forms/{form_id:int}", builder_page),
    Route("/forms/{form_id:int}", rename_form, methods=["POST"]),
    Route("/forms/{form_id:int}/archive", archive_form, methods=["POST"]),
    Route("/forms/{form_id:int}/fields", add_field, methods=["POST"]),
    Route("/forms/{form_id:int}/fields/{key:str}/{op:str}", change_field, methods=["POST"]),
    Route("/clients/{client_id:int}/forms", send_form, methods=["POST"]),
    Route(
        "/clients/{client_id:int}/forms/schedules/{schedule_id:int}/stop",
        stop_schedule,
        methods=["POST"],
    ),
    Route(
        "/clients/{client_id:int}/forms/{assignment_id:int}/{change:str}",
        change_sent_form,
        methods=["POST"],
    ),
]
