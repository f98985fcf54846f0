"""Staff: the practice's contacts (/staff/contacts), people who are not clients, and their API.

Any staff member may read and keep contacts: they hold no clinical detail, and a therapist
needs the family doctor's number as much as the front desk does.
"""

from __future__ import annotations

from urllib.parse import urlencode

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from models.clients import Contact, ContactKind
from server.access import access_contact
from server.actions import contacts as actions
from server.actions.client_file import DetailsChanged
from server.api import Ok
from server.errors import ValidationFailed
from server.i18n import gettext as _
from server.i18n import lazy
from server.queries.contacts import ContactFilters, circles_of, contact_page
from server.web import parse_body, path_id, posted_fields, render, require_staff, validate
from staff.api import api

KIND_LABELS = {
    ContactKind.PARENT: lazy("Parent"),
    ContactKind.GUARDIAN: lazy("Guardian"),
    ContactKind.TEACHER: lazy("Teacher"),
    ContactKind.LAWYER: lazy("Lawyer"),
    ContactKind.SOCIAL_WORKER: lazy("Social worker"),
    ContactKind.DOCTOR: lazy("Doctor"),
    ContactKind.REFERRER: lazy("Referring practitioner"),
    ContactKind.OTHER: lazy("Other"),
}


def kind_labels() -> dict[str, str]:
    return {k.value: _(label) for k, label in KIND_LABELS.items()}


FORM_FIELDS = ("first_name", "last_name", "organisation", "email", "phone", "address", "notes")


def form_values(contact: Contact | None) -> dict[str, str]:
    """What the contact form shows: the contact's details, or blanks for a new one."""
    if contact is None:
        return {"kind": ContactKind.OTHER.value}
    return {"kind": contact.kind.value, **{k: getattr(contact, k) for k in FORM_FIELDS}}


def _common() -> dict[str, object]:
    return {"section": "contacts", "kinds": list(ContactKind), "kind_labels": kind_labels()}


async def contacts_page(request: Request) -> Response:
    """The list (GET, with name search and kind filter) and the new-contact form (POST)."""
    caller = require_staff(request)
    filters = validate(ContactFilters, dict(request.query_params))
    ctx: dict[str, object] = {**_common(), "values": form_values(None)}
    if request.method == "POST":
        try:
            body = await parse_body(request, actions.PracticeContactIn)
            await actions.do_create_contact(caller, caller.practice_id, body)
        except ValidationFailed as exc:
            ctx.update(
                error=exc.message,
                fields=exc.fields,
                show_new=True,
                values=await posted_fields(request),
            )
        else:
            return RedirectResponse("/staff/contacts?saved=1", status_code=303)
    ctx.update(
        result=await contact_page(caller, filters),
        filters=filters,
        query_without_page=urlencode(
            {k: v for k, v in request.query_params.items() if k not in {"page", "saved"} and v}
        ),
    )
    return render(request, "staff/contacts.html", ctx, status=422 if "error" in ctx else 200)


async def contact_edit_page(request: Request) -> Response:
    """One contact: its form (GET, POST to save) and the circles of care that copied it."""
    caller = require_staff(request)
    contact = await access_contact(caller, path_id(request, "contact_id"))
    ctx: dict[str, object] = {**_common(), "values": form_values(contact)}
    status = 200
    if request.method == "POST":
        try:
            body = await parse_body(request, actions.PracticeContactIn)
            await actions.do_update_contact(caller, contact, body)
        except ValidationFailed as exc:
            status = 422
            ctx.update(error=exc.message, fields=exc.fields, values=await posted_fields(request))
        except DetailsChanged as exc:
            # A colleague saved the contact since this page showed it: the form holds the
            # contact as it is now, what was typed is shown beside it, to compare.
            status = 409
            contact = await access_contact(caller, contact.id)
            ctx.update(
                error=exc.message, mine=await posted_fields(request), values=form_values(contact)
            )
        else:
            return RedirectResponse(f"/staff/contacts/{contact.id}?saved=1", status_code=303)
    ctx.update(
        contact=contact,
        version=actions.contact_version(contact),
        circles=await circles_of(caller, contact),
    )
    return render(request, "staff/contact.html", ctx, status=status)


async def remove_contact(request: Request) -> Response:
    caller = require_staff(request)
    contact = await access_contact(caller, path_id(request, "contact_id"))
    await actions.do_remove_contact(caller, contact)
    return RedirectResponse("/staff/contacts?removed=1", status_code=303)


routes = [
    Route("/contacts", contacts_page, methods=["GET", "POST"]),
    Route("/contacts/{contact_id:int}", contact_edit_page, methods=["GET", "POST"]),
    Route("/contacts/{contact_id:int}/remove", remove_contact, methods=["POST"]),
]


# --- API -------------------------------------------------------------------------------------


class PracticeContactOut(BaseModel):
    id: int
    kind: ContactKind
    first_name: str
    last_name: str
    organisation: str
    email: str
    phone: str
    address: str
    notes: str
    # What to send back as ``based_on``, to be refused what someone else changed since.
    version: str


class ContactListOut(BaseModel):
    contacts: list[PracticeContactOut]
    total: int
    page: int
    pages: int


def contact_out(contact: Contact) -> PracticeContactOut:
    return PracticeContactOut(
        id=contact.id,
        kind=contact.kind,
        first_name=contact.first_name,
        last_name=contact.last_name,
        organisation=contact.organisation,
        email=contact.email,
        phone=contact.phone,
        address=contact.address,
        notes=contact.notes,
        version=actions.contact_version(contact),
    )


@api.route("GET", "/contacts", response=ContactListOut)
async def list_practice_contacts(request: Request) -> ContactListOut:
    """The practice's contacts: q (accent- and case-free name search), kind, page"""
    caller = require_staff(request)
    result = await contact_page(caller, validate(ContactFilters, dict(request.query_params)))
    return ContactListOut(
        contacts=[contact_out(c) for c in result.rows],
        total=result.total,
        page=result.page,
        pages=result.pages,
    )


@api.route("POST", "/contacts", body=actions.PracticeContactIn, response=PracticeContactOut)
async def create_practice_contact(
    request: Request, body: actions.PracticeContactIn
) -> PracticeContactOut:
    """Add a contact (someone around clients who is not a client)"""
    caller = require_staff(request)
    return contact_out(await actions.do_create_contact(caller, caller.practice_id, body))


@api.route("GET", "/contacts/{contact_id}", response=PracticeContactOut)
async def get_practice_contact(request: Request) -> PracticeContactOut:
    """One contact"""
    caller = require_staff(request)
    return contact_out(await access_contact(caller, path_id(request, "contact_id")))


@api.route(
    "PUT", "/contacts/{contact_id}", body=actions.PracticeContactIn, response=PracticeContactOut
)
async def put_practice_contact(
    request: Request, body: actions.PracticeContactIn
) -> PracticeContactOut:
    """Replace a contact's details"""
    caller = require_staff(request)
    contact = await access_contact(caller, path_id(request, "contact_id"))
    return contact_out(await actions.do_update_contact(caller, contact, body))


@api.route("DELETE", "/contacts/{contact_id}", response=Ok)
async def delete_practice_contact(request: Request) -> Ok:
    """Remove a contact (alternate contacts copied from it stay in their circles)"""
    caller = require_staff(request)
    await actions.do_remove_contact(
        caller, await access_contact(caller, path_id(request, "contact_id"))
    )
    return Ok()
