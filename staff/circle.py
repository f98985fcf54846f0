"""The client file's circle-of-care tab: alternate contacts and linked accounts, and its API.

The tab works without script: name searches (contacts to copy from, clients to link) are GET
forms that re-render the tab with results; adding, editing, removing and linking post to
their own routes and come back to the tab, or show it again with the errors and a 422.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from models.accounts import Practice
from models.clients import AlternateContact, Client, Contact, Relationship
from server.access import access_client, access_contact
from server.actions import circle as actions
from server.actions.audit import record_read
from server.actions.client_file import REMINDER_MAX, REMINDER_MIN, DetailsChanged
from server.actions.clients import do_link_clients
from server.api import Ok
from server.auth.sessions import Caller
from server.errors import NotFound, ValidationFailed
from server.i18n import gettext as _
from server.i18n import lazy
from server.queries.circle import (
    CircleMember,
    access_circle_contact,
    access_linked_account,
    circle_contacts,
    linkable_clients,
    linked_accounts,
)
from server.queries.contacts import find_contacts
from server.web import client_address, parse_id, path_id, posted_fields, require_staff, validate
from staff.api import api
from staff.client_file import Tab, file_page, register_tab
from staff.contacts import kind_labels

RELATIONSHIP_LABELS = {
    Relationship.PARENT: lazy("Parent"),
    Relationship.CHILD: lazy("Child"),
    Relationship.SPOUSE: lazy("Spouse or partner"),
    Relationship.SIBLING: lazy("Sibling"),
    Relationship.GUARDIAN: lazy("Guardian"),
    Relationship.WARD: lazy("Ward"),
    Relationship.OTHER: lazy("Other"),
}
# Offered as the relationship of an alternate contact is typed; any other text is fine too.
RELATIONSHIP_SUGGESTIONS = (
    lazy("Mother"),
    lazy("Father"),
    lazy("Parent"),
    lazy("Stepparent"),
    lazy("Grandparent"),
    lazy("Guardian"),
    lazy("Spouse or partner"),
    lazy("Sibling"),
    lazy("Child"),
    lazy("Friend"),
    lazy("Neighbour"),
    lazy("Teacher"),
    lazy("Doctor"),
    lazy("Social worker"),
    lazy("Lawyer"),
)
# Empty phone rows offered by the form, so a number can be added without script.
SPARE_PHONES = 2
MAX_PHONE_ROWS = 12
EMPTY_FORM: dict[str, Any] = {"phones": [], "is_emergency": False}


def relationship_labels() -> dict[str, str]:
    return {r.value: _(label) for r, label in RELATIONSHIP_LABELS.items()}


# --- the tab ---------------------------------------------------------------------------------


def member_form(member: CircleMember) -> dict[str, Any]:
    """An alternate contact as its edit form shows it (the shape of a CircleContactIn)."""
    alternate = member.alternate
    values = {k: getattr(alternate, k) for k in actions.PLAIN_FIELDS}
    values.update(
        # A contact record removed since is let go of at the next save.
        contact_id=member.contact.id if member.contact else None,
        email=alternate.email,
        phones=[
            {"number": p.number, "label": p.label, "is_primary": p.is_primary, "for_sms": p.for_sms}
            for p in member.phones
        ],
        # Sent back by the form: a save from this page after someone else's is refused.
        based_on=actions.circle_version(alternate, member.phones),
    )
    return values


async def _load_circle(caller: Caller, client: Client, practice: Practice) -> dict[str, Any]:
    members = await circle_contacts(client)
    return {
        "members": members,
        "member_forms": {m.alternate.id: member_form(m) for m in members},
        "links": await linked_accounts(caller, client),
        # A key of its own per page: the same form sent twice adds the person once.
        "new_form": {**EMPTY_FORM, "request_key": secrets.token_urlsafe(16)},
        "relationships": list(Relationship),
        "relationship_labels": relationship_labels(),
        "relationship_suggestions": [_(s) for s in RELATIONSHIP_SUGGESTIONS],
        "kind_labels": kind_labels(),
        "reminder_hours": list(range(REMINDER_MIN, REMINDER_MAX + 1)),
        "spare_phones": SPARE_PHONES,
    }


register_tab(
    Tab("circle", lazy("Circle of care"), "staff/file_circle.html", _load_circle, order=40)
)


async def circle_tab(request: Request) -> Response:
    """The tab, with the results of its name searches and a form prefilled from a contact."""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    params = request.query_params
    ctx: dict[str, Any] = {
        "open_add": params.get("add") == "1",
        "open_link": params.get("link") == "1" or "client_q" in params,
    }
    if "contact_q" in params:
        ctx["contact_q"] = params["contact_q"].strip()[:100]
        ctx["contact_results"] = await find_contacts(caller, ctx["contact_q"])
        ctx["open_add"] = True
    if "from_contact" in params:
        contact = await access_contact(caller, parse_id(params["from_contact"]))
        ctx["new_form"] = {
            **EMPTY_FORM,
            **actions.prefill_from_contact(contact),
            "request_key": secrets.token_urlsafe(16),
        }
        ctx["picked_contact"] = contact
        ctx["open_add"] = True
    if "client_q" in params:
        ctx["client_q"] = params["client_q"].strip()[:100]
        ctx["client_results"] = await linkable_clients(caller, client, ctx["client_q"])
    return await file_page(request, ctx, tab_name="circle")


# --- forms -----------------------------------------------------------------------------------


def circle_form(data: Mapping[str, Any]) -> dict[str, Any]:
    """The form's flat fields (phone_number_0, primary_phone=0...) as a CircleContactIn body."""
    phones = [
        {
            "number": data[f"phone_number_{i}"],
            "label": data.get(f"phone_label_{i}", ""),
            "is_primary": data.get("primary_phone") == str(i),
            "for_sms": data.get("sms_phone") == str(i),
        }
        for i in range(MAX_PHONE_ROWS)
        if f"phone_number_{i}" in data
    ]
    body = {k: v for k, v in data.items() if k in actions.CircleContactIn.model_fields}
    body.update(phones=phones, is_emergency=data.get("is_emergency") in {"1", "on", "true"})
    return body


Work = Callable[[Caller, Client, dict[str, Any]], Awaitable[object]]


async def _post(request: Request, work: Work, draft_for: str | int | None = None) -> Response:
    """Run a form's action and come back to the tab; on a validation error show the tab again
    with the errors, and the form that failed open with what was typed."""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    data = await posted_fields(request)
    try:
        await work(caller, client, data)
    except ValidationFailed as exc:
        ctx: dict[str, Any] = {"error": exc.message, "fields": exc.fields, "draft_for": draft_for}
        if draft_for == "new":
            ctx.update(new_form=circle_form(data), open_add=True)
        elif isinstance(draft_for, int):  # an alternate contact's edit form
            ctx["draft"] = circle_form(data)
        return await file_page(request, ctx, 422, tab_name="circle")
    except DetailsChanged as exc:
        # Someone saved this person since the page showed them: the card shows them as they
        # are now, the form what was typed, to be compared and saved again (from now on).
        assert isinstance(draft_for, int)
        alternate = await access_circle_contact(caller, draft_for, client)
        phones = await actions.phones_of(alternate)
        draft = {**circle_form(data), "based_on": actions.circle_version(alternate, phones)}
        ctx = {"error": exc.message, "draft_for": draft_for, "draft": draft}
        return await file_page(request, ctx, 409, tab_name="circle")
    return RedirectResponse(f"/staff/clients/{client.id}/circle?saved=1", status_code=303)


async def _contact_of(caller: Caller, body: actions.CircleContactIn) -> Contact | None:
    return await access_contact(caller, body.contact_id) if body.contact_id else None


async def _contact_kept(
    caller: Caller, body: actions.CircleContactIn, alternate: AlternateContact
) -> Contact | None:
    """The contact record an edit points to. The one the person already points to, removed
    since the page was read, is let go of (as the page would have done had it known)
    rather than lose the edit to a 404; any other must be reachable."""
    try:
        return await _contact_of(caller, body)
    except NotFound:
        if body.contact_id == alternate.contact_id:  # type: ignore[attr-defined]
            return None
        raise


async def add_contact_form(request: Request) -> Response:
    async def work(caller: Caller, client: Client, data: dict[str, Any]) -> None:
        body = validate(actions.CircleContactIn, circle_form(data))
        # The form came filled from the record: what is blank was cleared, not forgotten.
        contact = await _contact_of(caller, body)
        await actions.do_add_circle_contact(caller, client, body, contact, fill_blanks=False)

    return await _post(request, work, "new")


async def edit_contact_form(request: Request) -> Response:
    alternate_id = path_id(request, "alternate_id")

    async def work(caller: Caller, client: Client, data: dict[str, Any]) -> None:
        alternate = await access_circle_contact(caller, alternate_id, client)
        body = validate(actions.CircleContactIn, circle_form(data))
        await actions.do_update_circle_contact(
            caller, alternate, body, await _contact_kept(caller, body, alternate)
        )

    return await _post(request, work, alternate_id)


async def remove_contact_form(request: Request) -> Response:
    async def work(caller: Caller, client: Client, data: dict[str, Any]) -> None:
        alternate = await access_circle_contact(caller, path_id(request, "alternate_id"), client)
        await actions.do_remove_circle_contact(caller, alternate)

    return await _post(request, work)


class LinkIn(BaseModel):
    linked_client_id: int = Field(ge=1, le=actions.MAX_ID)
    relationship: Relationship


async def link_form(request: Request) -> Response:
    async def work(caller: Caller, client: Client, data: dict[str, Any]) -> None:
        body = validate(LinkIn, data)
        other = await access_client(caller, body.linked_client_id)
        await do_link_clients(caller, client, other, body.relationship)

    return await _post(request, work, "link")


async def unlink_form(request: Request) -> Response:
    async def work(caller: Caller, client: Client, data: dict[str, Any]) -> None:
        _link, other = await access_linked_account(
            caller, client, path_id(request, "linked_client_id")
        )
        await actions.do_unlink_clients(caller, client, other)

    return await _post(request, work)


routes = [
    Route("/clients/{client_id:int}/circle", circle_tab),
    Route("/clients/{client_id:int}/circle/contacts", add_contact_form, methods=["POST"]),
    Route(
        "/clients/{client_id:int}/circle/contacts/{alternate_id:int}",
        edit_contact_form,
        methods=["POST"],
    ),
    Route(
        "/clients/{client_id:int}/circle/contacts/{alternate_id:int}/remove",
        remove_contact_form,
        methods=["POST"],
    ),
    Route("/clients/{client_id:int}/circle/links", link_form, methods=["POST"]),
    Route(
        "/clients/{client_id:int}/circle/links/{linked_client_id:int}/remove",
        unlink_form,
        methods=["POST"],
    ),
]


# --- API -------------------------------------------------------------------------------------


class PhoneOut(BaseModel):
    number: str
    label: str
    is_primary: bool
    for_sms: bool


class CircleContactOut(BaseModel):
    id: int
    contact_id: int | None
    first_name: str
    middle_name: str
    last_name: str
    relationship: str
    date_of_birth: date | None
    email: str
    phones: list[PhoneOut]
    reminder_email_hours: int | None
    reminder_sms_hours: int | None
    is_emergency: bool
    address_line1: str
    address_line2: str
    postal_code: str
    city: str
    country: str
    # What to send back as ``based_on``, to be refused what someone else changed since.
    version: str


class LinkedAccountOut(BaseModel):
    linked_client_id: int
    first_name: str
    last_name: str
    # What the linked client is to this client ("parent": they are this client's parent).
    relationship: Relationship


class CircleOut(BaseModel):
    contacts: list[CircleContactOut]
    linked_accounts: list[LinkedAccountOut]


async def contact_out(alternate: AlternateContact) -> CircleContactOut:
    phones = await actions.phones_of(alternate)
    return _member_out(CircleMember(alternate=alternate, phones=phones, contact=None))


def _member_out(member: CircleMember) -> CircleContactOut:
    values = member_form(member)
    values["contact_id"] = member.alternate.contact_id  # type: ignore[attr-defined]
    values["version"] = values.pop("based_on")
    return CircleContactOut(id=member.alternate.id, **values)


async def circle_out(caller: Caller, client: Client) -> CircleOut:
    return CircleOut(
        contacts=[_member_out(m) for m in await circle_contacts(client)],
        linked_accounts=[
            LinkedAccountOut(
                linked_client_id=x.other.id,
                first_name=x.other.first_name,
                last_name=x.other.last_name,
                relationship=x.link.relationship,
            )
            for x in await linked_accounts(caller, client)
        ],
    )


@api.route("GET", "/clients/{client_id}/circle", response=CircleOut)
async def get_circle(request: Request) -> CircleOut:
    """A client's circle of care: alternate contacts and the linked accounts I may see"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    await record_read(caller, client.id, "file", ip=client_address(request))
    return await circle_out(caller, client)


@api.route(
    "POST",
    "/clients/{client_id}/circle/contacts",
    body=actions.CircleContactIn,
    response=CircleContactOut,
)
async def post_circle_contact(request: Request, body: actions.CircleContactIn) -> CircleContactOut:
    """Add an alternate contact; with contact_id, blanks are filled from that contact record"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    contact = await _contact_of(caller, body)
    return await contact_out(await actions.do_add_circle_contact(caller, client, body, contact))


@api.route(
    "PUT",
    "/clients/{client_id}/circle/contacts/{alternate_id}",
    body=actions.CircleContactIn,
    response=CircleContactOut,
)
async def put_circle_contact(request: Request, body: actions.CircleContactIn) -> CircleContactOut:
    """Replace an alternate contact's details (phones as a whole list)"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    alternate = await access_circle_contact(caller, path_id(request, "alternate_id"), client)
    contact = await _contact_kept(caller, body, alternate)
    await actions.do_update_circle_contact(caller, alternate, body, contact)
    return await contact_out(alternate)


@api.route("DELETE", "/clients/{client_id}/circle/contacts/{alternate_id}", response=Ok)
async def delete_circle_contact(request: Request) -> Ok:
    """Remove an alternate contact from the circle of care"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    alternate = await access_circle_contact(caller, path_id(request, "alternate_id"), client)
    await actions.do_remove_circle_contact(caller, alternate)
    return Ok()


@api.route("POST", "/clients/{client_id}/circle/links", body=LinkIn, response=LinkedAccountOut)
async def post_linked_account(request: Request, body: LinkIn) -> LinkedAccountOut:
    """Link another client (relationship: what they are to this client); shown in both files"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    other = await access_client(caller, body.linked_client_id)
    link = await do_link_clients(caller, client, other, body.relationship)
    return LinkedAccountOut(
        linked_client_id=other.id,
        first_name=other.first_name,
        last_name=other.last_name,
        relationship=link.relationship,
    )


@api.route("DELETE", "/clients/{client_id}/circle/links/{linked_client_id}", response=Ok)
async def delete_linked_account(request: Request) -> Ok:
    """Unlink another client, from both files"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    _link, other = await access_linked_account(caller, client, path_id(request, "linked_client_id"))
    await actions.do_unlink_clients(caller, client, other)
    return Ok()
