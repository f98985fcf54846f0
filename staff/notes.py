"""Session notes: the note page of an appointment, and its API."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.accounts import StaffUser
from models.agenda import Appointment
from models.notes import TEMPLATE_SECTIONS, NoteAddendum, NoteTemplate, SessionNote
from server.access import access_note
from server.actions import notes
from server.actions.audit import record_read
from server.auth.sessions import Caller
from server.errors import CabinetError, NotFound
from server.i18n import lazy
from server.web import client_address, path_id, render, require_staff, validate
from staff.api import api

SECTION_LABELS = {
    "note": lazy("Note"),
    "subjective": lazy("Subjective"),
    "objective": lazy("Objective"),
    "assessment": lazy("Assessment"),
    "plan": lazy("Plan"),
    "data": lazy("Data"),
}
TEMPLATE_LABELS = {
    NoteTemplate.BLANK: lazy("Blank note"),
    NoteTemplate.SOAP: lazy("SOAP (subjective, objective, assessment, plan)"),
    NoteTemplate.DAP: lazy("DAP (data, assessment, plan)"),
}


class NoteIn(BaseModel):
    template: NoteTemplate = NoteTemplate.BLANK
    sections: dict[str, str] = Field(default_factory=dict)
    # The ``version`` of the note this text was written from ("" for a new note): a note
    # saved from another window since is a 409 instead of being written over. Absent: the
    # save writes whatever is there.
    based_on: str | None = Field(default=None, max_length=64)


class SignIn(BaseModel):
    # The ``version`` of the note the signer read: a note saved from another window since is
    # a 409, not a signature on text they never saw. Absent: signs what was saved last.
    based_on: str | None = Field(default=None, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _no_body(cls, data: Any) -> Any:
        # An empty JSON body (``null``) is no ``based_on``, as a request without one is.
        return {} if data is None else data


class AddendumIn(BaseModel):
    text: str = Field(max_length=20_000)
    # The form's own key: an addendum cannot be removed, so sent twice it is added once.
    request_key: str = Field(default="", max_length=64)


class NoteOut(BaseModel):
    appointment_id: int
    exists: bool
    template: NoteTemplate | None
    sections: dict[str, str]
    # Someone else's draft: its template, text and version are left out (the page shows
    # others only who is writing it), until its author signs it.
    withheld: bool = False
    author_id: int | None
    signed_at: datetime | None
    cosigned_by_id: int | None
    cosigned_at: datetime | None
    addenda: list[dict[str, Any]]
    version: str  # what to send back as ``based_on``


async def _note(appointment: Appointment) -> SessionNote | None:
    return await SessionNote.get_or_none(appointment_id=appointment.id)


def _withheld(caller: Caller, note: SessionNote | None) -> bool:
    """Whether the note is a draft of someone other than the caller: a draft is its author's
    work in progress, read by others only once signed."""
    assert caller.staff is not None
    return (
        note is not None and note.signed_at is None and note.author_id != caller.staff.id  # type: ignore[attr-defined]
    )


async def note_out(caller: Caller, appointment: Appointment) -> NoteOut:
    note = await _note(appointment)
    if _withheld(caller, note):
        assert note is not None
        return NoteOut(
            appointment_id=appointment.id,
            exists=True,
            template=None,
            sections={},
            withheld=True,
            author_id=note.author_id,  # type: ignore[attr-defined]
            signed_at=None,
            cosigned_by_id=None,
            cosigned_at=None,
            addenda=[],
            # A hash of the text would let a reader check a guess of it.
            version="",
        )
    addenda = (
        await NoteAddendum.filter(note_id=note.id).order_by("id").prefetch_related("author")
        if note
        else []
    )
    return NoteOut(
        appointment_id=appointment.id,
        exists=note is not None,
        template=note.template if note else None,
        sections=note.sections if note else {},
        author_id=note.author_id if note else None,  # type: ignore[attr-defined]
        signed_at=note.signed_at if note else None,
        cosigned_by_id=note.cosigned_by_id if note else None,  # type: ignore[attr-defined]
        cosigned_at=note.cosigned_at if note else None,
        addenda=[
            {"author": a.author.full_name, "text": a.text, "created_at": a.created_at.isoformat()}
            for a in addenda
        ],
        version=notes.note_version(note),
    )


async def _signed_note(appointment: Appointment) -> SessionNote:
    note = await _note(appointment)
    if note is None:
        raise NotFound()
    return note


# --- API -------------------------------------------------------------------------------------


@api.route("GET", "/appointments/{appointment_id}/note", response=NoteOut)
async def get_note(request: Request) -> NoteOut:
    """A session's note with its addenda (staff who may see clinical content); of someone
    else's draft, only who writes it (``withheld``)"""
    caller = require_staff(request)
    appointment, _practice = await access_note(caller, path_id(request, "appointment_id"))
    await record_read(caller, appointment.client_id, "note", ip=client_address(request))  # type: ignore[attr-defined]
    return await note_out(caller, appointment)


@api.route("PUT", "/appointments/{appointment_id}/note", body=NoteIn, response=NoteOut)
async def put_note(request: Request, body: NoteIn) -> NoteOut:
    """Write the draft (409 once signed: add an addendum instead)"""
    caller = require_staff(request)
    appointment, _practice = await access_note(caller, path_id(request, "appointment_id"))
    await notes.do_save_draft(
        caller, appointment, body.template, body.sections, based_on=body.based_on
    )
    return await note_out(caller, appointment)


@api.route(
    "POST",
    "/appointments/{appointment_id}/note/sign",
    body=SignIn,
    response=NoteOut,
    statuses=(401, 404, 409, 422),
)
async def sign_note(request: Request, body: SignIn) -> NoteOut:
    """Sign the note: from then on it cannot change (409 if saved since ``based_on``)"""
    caller = require_staff(request)
    appointment, _practice = await access_note(caller, path_id(request, "appointment_id"))
    await notes.do_sign(caller, await _signed_note(appointment), based_on=body.based_on)
    return await note_out(caller, appointment)


@api.route("POST", "/appointments/{appointment_id}/note/addenda", body=AddendumIn, response=NoteOut)
async def add_addendum(request: Request, body: AddendumIn) -> NoteOut:
    """Add a dated addendum to a signed note (its author only)"""
    caller = require_staff(request)
    appointment, _practice = await access_note(caller, path_id(request, "appointment_id"))
    await notes.do_add_addendum(
        caller, await _signed_note(appointment), body.text, body.request_key
    )
    return await note_out(caller, appointment)


@api.route("POST", "/appointments/{appointment_id}/note/cosign", response=NoteOut)
async def cosign_note(request: Request) -> NoteOut:
    """Countersign a supervisee's signed note"""
    caller = require_staff(request)
    appointment, _practice = await access_note(caller, path_id(request, "appointment_id"))
    await notes.do_cosign(caller, await _signed_note(appointment))
    return await note_out(caller, appointment)


# --- the page --------------------------------------------------------------------------------


async def note_page(
    request: Request,
    error: str = "",
    status: int = 200,
    posted: dict[str, str] | None = None,
    addendum: str = "",
    fields: dict[str, str] | None = None,
) -> Response:
    """The note, or its form. ``posted``: the text of a save that failed, shown in the form
    again, or read-only beside the note where the form cannot take it (an error must never
    cost the writer their text); ``addendum``: that of an addendum refused, back in its box
    with its error (``fields``) beside it."""
    caller = require_staff(request)
    appointment, _practice = await access_note(caller, path_id(request, "appointment_id"))
    await record_read(caller, appointment.client_id, "note", ip=client_address(request))  # type: ignore[attr-defined]
    await appointment.fetch_related("client", "service", "practitioner")
    note = await _note(appointment)
    author = await StaffUser.get(id=note.author_id) if note else None  # type: ignore[attr-defined]
    cosigner = (
        await StaffUser.get(id=note.cosigned_by_id)  # type: ignore[attr-defined]
        if note and note.cosigned_by_id  # type: ignore[attr-defined]
        else None
    )
    assert caller.staff is not None
    template = note.template if note else _template(request)
    # Who may write here: the note's author, or before there is a note, the practitioner who
    # held the session (do_save_draft refuses anyone else).
    is_author = (
        author.id == caller.staff.id
        if author is not None
        else appointment.practitioner_id == caller.staff.id  # type: ignore[attr-defined]
    )
    form_shown = is_author and not (note and note.signed_at)
    return render(
        request,
        "staff/note.html",
        {
            "section": "clients",
            "appointment": appointment,
            "client": appointment.client,
            "note": note,
            "author": author,
            "cosigner": cosigner,
            "template": template,
            "sections": [(name, SECTION_LABELS[name]) for name in TEMPLATE_SECTIONS[template]],
            "templates": TEMPLATE_LABELS,
            "addenda": await NoteAddendum.filter(note_id=note.id)
            .order_by("id")
            .prefetch_related("author")
            if note
            else [],
            "is_author": is_author,
            "may_cosign": bool(
                note
                and note.signed_at
                and not note.cosigned_at
                and author
                and author.supervisor_id == caller.staff.id  # type: ignore[attr-defined]
            ),
            "addendum_key": secrets.token_urlsafe(16),
            "addendum_text": addendum,
            "fields": fields or {},
            "error": error,
            "posted": posted if form_shown else None,
            "unsaved": _unsaved(posted, TEMPLATE_SECTIONS[template] if form_shown else ()),
            "version": notes.note_version(note),
        },
        status=status,
    )


def _unsaved(posted: dict[str, str] | None, boxes: tuple[str, ...]) -> list[tuple[str, str]]:
    """The text of a refused save that the page's form cannot take back (the note was
    signed meanwhile, started under another template, or is not the caller's to write), as
    (label, text) pairs to show read-only: all of it, so the writer can copy it whole."""
    if not posted or all(name in boxes for name, text in posted.items() if text.strip()):
        return []
    return [(SECTION_LABELS.get(name, name), text) for name, text in posted.items() if text]


def _template(request: Request) -> NoteTemplate:
    try:
        return NoteTemplate(request.query_params.get("template", "blank"))
    except ValueError:
        return NoteTemplate.BLANK


async def _form_action(request: Request, act: str) -> Response:
    caller = require_staff(request)
    appointment, _practice = await access_note(caller, path_id(request, "appointment_id"))
    form = {k: str(v) for k, v in (await request.form()).items()}
    try:
        await _run(caller, appointment, act, form)
    except CabinetError as exc:
        if isinstance(exc, NotFound):
            raise
        message = exc.message + " " + " ".join(exc.fields.values())
        posted = _sections(form) if act == "save" else None
        addendum = form.get("text", "") if act == "addendum" else ""
        return await note_page(
            request, message.strip(), exc.status_code, posted, addendum, exc.fields
        )
    return RedirectResponse(f"/staff/appointments/{appointment.id}/note", status_code=303)


async def _run(caller: Caller, appointment: Appointment, act: str, form: dict[str, str]) -> None:
    if act == "save":
        body = validate(
            NoteIn,
            {
                "template": form.get("template", "blank"),
                "sections": _sections(form),
                "based_on": form.get("based_on"),
            },
        )
        note = await notes.do_save_draft(
            caller, appointment, body.template, body.sections, based_on=body.based_on
        )
        if form.get("sign") == "1":
            # Signs what was just saved, or nothing: a save from another window between the
            # two is a 409, not a signature on text the signer never saw.
            await notes.do_sign(caller, note, based_on=notes.note_version(note))
    elif act == "addendum":
        addendum = validate(AddendumIn, form)
        await notes.do_add_addendum(
            caller, await _signed_note(appointment), addendum.text, addendum.request_key
        )
    elif act == "cosign":
        await notes.do_cosign(caller, await _signed_note(appointment))
    else:
        raise NotFound()


def _sections(form: dict[str, str]) -> dict[str, str]:
    return {k.removeprefix("section_"): v for k, v in form.items() if k.startswith("section_")}


async def save_form(request: Request) -> Response:
    return await _form_action(request, "save")


async def addendum_form(request: Request) -> Response:
    return await _form_action(request, "addendum")


async def cosign_form(request: Request) -> Response:
    return await _form_action(request, "cosign")
