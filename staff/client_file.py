"""The client file: one page per tab under /staff/clients/{id}/{tab}.

Each tab is registered here with what it needs (a context loader and a template), so a
domain adds its tab without touching the others. Forms post to their own routes and, on
a validation error, re-render their tab with the errors and a 422.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, field_validator
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.accounts import PortalAccount, Practice, StaffRole, StaffUser
from models.agenda import Service, ServiceDiscount
from models.clients import Client, ClientStatus, EmailAddress, PaymentMethod, PhoneNumber
from server.access import (
    access_client,
    access_payment_method,
    access_practitioner,
    can_see_clinical,
    staff_seeing,
)
from server.actions import client_file
from server.actions.audit import record_read
from server.auth.sessions import Caller
from server.errors import NotFound, PermissionDenied, ValidationFailed
from server.i18n import gettext as _
from server.i18n import lazy
from server.queries.client_file import (
    account_details,
    booked_while_inactive,
    clinical_details,
    contact_details,
)
from server.queries.clients import clinicians
from server.queries.sessions import load_sessions
from server.queries.tasks import client_tasks
from server.web import client_address, id_or_none, path_id, render, require_staff, validate
from staff.api import api

Loader = Callable[[Caller, Client, Practice], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Tab:
    name: str
    label: str  # marked with lazy(); translated when shown
    template: str
    load: Loader
    clinical: bool = False  # hidden from office admins unless the practice allows it
    # Where the tab sits: sessions 10, contact 20, clinical 30, circle of care 40,
    # account 50, documents 60, logs 70, tasks 80.
    order: int = 100


TABS: dict[str, Tab] = {}
# What /staff/clients/{id} opens on: the sessions, filled from the agenda.
DEFAULT_TAB = "sessions"


def register_tab(tab: Tab) -> None:
    TABS[tab.name] = tab


def visible_tabs(caller: Caller, practice: Practice) -> list[Tab]:
    tabs = [t for t in TABS.values() if not t.clinical or can_see_clinical(caller, practice)]
    return sorted(tabs, key=lambda t: t.order)


async def file_page(
    request: Request,
    ctx: dict[str, object] | None = None,
    status: int = 200,
    tab_name: str | None = None,
) -> Response:
    """Render one tab of the file (the first tab for /staff/clients/{id})."""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    practice = await Practice.get(id=caller.practice_id)
    tabs = visible_tabs(caller, practice)
    name = tab_name or request.path_params.get("tab") or DEFAULT_TAB
    tab = next((t for t in tabs if t.name == name), None)
    if tab is None:
        # An unknown tab and a tab this caller may not open look the same.
        raise NotFound()
    # Who looked at clinical details is what an owner most needs to answer; say so apart.
    what = "clinical" if tab.clinical else "file"
    await record_read(caller, client.id, what, ip=client_address(request))
    context: dict[str, object] = {
        "client": client,
        "section": "clients",
        "tabs": tabs,
        "tab": tab,
        "therapist": await StaffUser.get_or_none(id=client.therapist_id),  # type: ignore[attr-defined]
        "has_portal": await PortalAccount.filter(client_id=client.id, is_active=True).exists(),
        "booked_while_inactive": await booked_while_inactive(client),
    }
    context.update(await tab.load(caller, client, practice))
    context.update(ctx or {})
    return render(request, tab.template, context, status=status)


# --- the tabs every file has -------------------------------------------------------------


async def _load_tasks(caller: Caller, client: Client, practice: Practice) -> dict[str, Any]:
    # Only who may open the file: a task for anyone else would be in no one's list.
    assignees = (await staff_seeing(client)).order_by("last_name", "first_name")
    return {"tasks": await client_tasks(client.id), "staff_members": await assignees}


async def _load_account(caller: Caller, client: Client, practice: Practice) -> dict[str, Any]:
    version = await client_file.tab_version(client, "account")
    return {**await account_details(client), "version": version}


async def _load_contact(caller: Caller, client: Client, practice: Practice) -> dict[str, Any]:
    version = await client_file.tab_version(client, "contact")
    may_assign = caller.role is not StaffRole.THERAPIST
    return {
        **await contact_details(client),
        "version": version,
        # Who the file may be handed to, for those who may hand it (see _assign).
        "clinicians": await clinicians(caller) if may_assign else [],
        "may_assign": may_assign,
    }


async def _load_clinical(caller: Caller, client: Client, practice: Practice) -> dict[str, Any]:
    version = await client_file.tab_version(client, "clinical")
    return {**await clinical_details(client), "version": version}


register_tab(
    Tab("contact", lazy("Contact details"), "staff/file_contact.html", _load_contact, order=20)
)
register_tab(
    Tab(
        "clinical",
        lazy("Clinical details"),
        "staff/file_clinical.html",
        _load_clinical,
        clinical=True,
        order=30,
    )
)
register_tab(
    Tab("sessions", lazy("Sessions & notes"), "staff/file_sessions.html", load_sessions, order=10)
)
register_tab(
    Tab("account", lazy("Account details"), "staff/file_account.html", _load_account, order=50)
)
register_tab(Tab("tasks", lazy("Tasks"), "staff/file_tasks.html", _load_tasks, order=80))


# --- forms -----------------------------------------------------------------------------------


async def _form(request: Request) -> tuple[dict[str, Any], Any]:
    form = await request.form()
    return {k: v for k, v in form.items() if k != "csrf_token"}, form


def contact_from_form(data: dict[str, Any], form: Any) -> dict[str, Any]:
    """The contact form's flat fields (phone_number_0, primary_phone=0...) as a ContactIn."""
    phones, emails = [], []
    for i in range(12):
        if f"phone_number_{i}" in data:
            phones.append(
                {
                    "number": data[f"phone_number_{i}"],
                    "label": data.get(f"phone_label_{i}", ""),
                    "is_primary": data.get("primary_phone") == str(i),
                    "for_sms": data.get("sms_phone") == str(i),
                }
            )
        if f"email_address_{i}" in data:
            emails.append(
                {
                    "address": data[f"email_address_{i}"],
                    "label": data.get(f"email_label_{i}", ""),
                    "is_primary": data.get("primary_email") == str(i),
                }
            )
    out = {k: v for k, v in data.items() if not k.startswith(("phone_", "email_", "primary_"))}
    out.pop("sms_phone", None)
    out.update(phones=phones, emails=emails)
    if "tags_present" in out:
        out.pop("tags_present")
        wanted = [id_or_none(t) for t in form.getlist("tag_ids")]
        out["tag_ids"] = [t for t in wanted if t is not None]
    return out


class Typed:
    """A client as the form that failed sent it: what was posted where the form had the
    field, what is saved elsewhere. The tab's form shows it after a 422, so nothing typed
    is lost to the one field refused."""

    def __init__(self, saved: Client, posted: dict[str, Any]) -> None:
        self._saved, self._posted = saved, posted

    def __getattr__(self, name: str) -> Any:
        if name in self._posted:
            return self._posted[name]
        return getattr(self._saved, name)


def _as_typed(client: Client, mine: dict[str, Any] | None) -> dict[str, Any]:
    """The context that refills a tab's form with ``mine`` (see Typed); the contact tab's
    rows of numbers and addresses as posted, blank rows included, so each row's error
    (emails.2.address) stays beside it."""
    if not mine:
        return {}
    ctx: dict[str, Any] = {"typed": Typed(client, mine)}
    if "phones" in mine:
        ctx.update(phones=mine["phones"], spare_phones=0)
    if "emails" in mine:
        ctx.update(emails=mine["emails"], spare_emails=0)
    if "tag_ids" in mine:
        ctx["tag_ids"] = set(mine["tag_ids"])
    if "diagnosis_keywords" in mine:
        ctx["keywords"] = mine["diagnosis_keywords"]
    return ctx


async def _save(
    request: Request,
    tab: str,
    work: Callable[[Caller, Client], Awaitable[object]],
    mine: dict[str, Any] | None = None,
) -> Response:
    """Run a tab's form action; on a validation error show the tab again with the errors
    and the form as it was sent (``mine``), and when someone else saved the tab meanwhile,
    with what this form sent beside the details as they are now."""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    try:
        await work(caller, client)
    except ValidationFailed as exc:
        ctx = {"error": exc.message, "fields": exc.fields, **_as_typed(client, mine)}
        return await file_page(request, ctx, 422, tab_name=tab)
    except client_file.DetailsChanged as exc:
        return await file_page(request, {"error": exc.message, "mine": mine}, 409, tab_name=tab)
    return RedirectResponse(f"/staff/clients/{client.id}/{tab}?saved=1", status_code=303)


Prepare = Callable[[dict[str, Any], Any], dict[str, Any]]
Action = Callable[[Caller, Client, Any], Awaitable[object]]


async def _submit(
    request: Request,
    tab: str,
    model: type[BaseModel],
    action: Action,
    prepare: Prepare | None = None,
    clinical: bool = False,
) -> Response:
    """A tab's form: validate the posted fields into ``model`` and run ``action`` with it."""
    data, form = await _form(request)

    async def work(caller: Caller, client: Client) -> None:
        if clinical:
            await _require_clinical(caller)
        body = validate(model, prepare(data, form) if prepare else data)
        await action(caller, client, body)

    return await _save(request, tab, work, mine=prepare(data, form) if prepare else data)


def _keywords(data: dict[str, Any], form: Any) -> dict[str, Any]:
    return {
        **data,
        "diagnosis_keywords": [k for k in form.getlist("diagnosis_keywords") if k.strip()],
    }


async def save_contact(request: Request) -> Response:
    return await _submit(
        request,
        "contact",
        client_file.ContactIn,
        client_file.do_update_contact_details,
        contact_from_form,
    )


async def save_clinical(request: Request) -> Response:
    return await _submit(
        request,
        "clinical",
        client_file.ClinicalIn,
        client_file.do_update_clinical_details,
        _keywords,
        clinical=True,
    )


class TherapistIn(BaseModel):
    therapist_id: int | None = None  # none: the client has no therapist for now

    _blank = field_validator("therapist_id", mode="before")(client_file.blank_to_none)


async def _assign(caller: Caller, client: Client, body: TherapistIn) -> None:
    # Owners and the front desk: a therapist handing a client on would lose the file at once.
    if caller.role is StaffRole.THERAPIST:
        raise PermissionDenied(
            _("Only an owner or the front desk can change a client's therapist.")
        )
    therapist = await access_practitioner(caller, body.therapist_id) if body.therapist_id else None
    await client_file.do_assign_therapist(caller, client, therapist)


async def save_therapist(request: Request) -> Response:
    return await _submit(request, "contact", TherapistIn, _assign)


async def save_account(request: Request) -> Response:
    return await _submit(
        request, "account", client_file.AccountIn, client_file.do_update_account_details
    )


async def add_payment_method(request: Request) -> Response:
    return await _submit(
        request, "account", client_file.PaymentMethodIn, client_file.do_add_payment_method
    )


async def remove_payment_method(request: Request) -> Response:
    async def work(caller: Caller, client: Client) -> None:
        method = await access_payment_method(caller, path_id(request, "method_id"))
        if method.client_id != client.id:  # type: ignore[attr-defined]
            raise NotFound()
        await client_file.do_remove_payment_method(caller, method)

    return await _save(request, "account", work)


async def set_discount(request: Request) -> Response:
    async def act(caller: Caller, client: Client, body: client_file.DiscountIn) -> None:
        service = await Service.get_or_none(
            id=body.service_id, practice_id=caller.practice_id, is_active=True
        )
        if service is None:
            raise NotFound()
        await client_file.do_set_discount(caller, client, service, body.kind, body.value)

    return await _submit(request, "account", client_file.DiscountIn, act)


async def remove_discount(request: Request) -> Response:
    async def work(caller: Caller, client: Client) -> None:
        discount = await ServiceDiscount.get_or_none(
            id=path_id(request, "discount_id"), client_id=client.id
        )
        if discount is None:
            raise NotFound()
        await client_file.do_remove_discount(caller, discount)

    return await _save(request, "account", work)


async def add_tag(request: Request) -> Response:
    data, _form_data = await _form(request)

    async def work(caller: Caller, client: Client) -> None:
        tag = await client_file.do_create_tag(
            caller, caller.practice_id, str(data.get("name", ""))[:60]
        )
        ids = [t.id for t in await client.tags.all()] + [tag.id]
        current = validate(
            client_file.ContactIn,
            {**(await _contact_values(client)), "tag_ids": ids},
        )
        await client_file.do_update_contact_details(caller, client, current)

    return await _save(request, "contact", work)


async def _contact_values(client: Client) -> dict[str, Any]:
    """The client's contact details as a ContactIn body, to change one part of them."""
    phones = await PhoneNumber.filter(client_id=client.id).order_by("id")
    emails = await EmailAddress.filter(client_id=client.id).order_by("id")
    fields = client_file.ContactIn.model_fields
    values = {k: getattr(client, k) for k in fields if hasattr(client, k)}
    values.update(
        phones=[
            {"number": p.number, "label": p.label, "is_primary": p.is_primary, "for_sms": p.for_sms}
            for p in phones
        ],
        emails=[
            {"address": e.address, "label": e.label, "is_primary": e.is_primary} for e in emails
        ],
    )
    values.pop("tag_ids", None)
    return values


async def _require_clinical(caller: Caller) -> None:
    if not can_see_clinical(caller, await Practice.get(id=caller.practice_id)):
        raise NotFound()


# --- API -------------------------------------------------------------------------------------


class FileOut(BaseModel):
    id: int
    first_name: str
    middle_name: str
    last_name: str
    preferred_name: str
    status: ClientStatus
    therapist_id: int | None
    date_of_birth: date | None
    email: str | None
    phone: str | None
    address_line1: str
    address_line2: str
    postal_code: str
    city: str
    country: str
    reminder_email_hours: int | None
    reminder_sms_hours: int | None
    phones: list[dict[str, Any]]
    emails: list[dict[str, Any]]
    tags: list[dict[str, Any]]
    created_at: datetime
    # Send it back as the contact details' ``based_on`` (see ClinicalIn).
    contact_version: str
    # Present only for callers who may see clinical details.
    clinical: dict[str, Any] | None
    account: dict[str, Any]


async def file_out(caller: Caller, client: Client) -> FileOut:
    values = await _contact_values(client)
    clinical = None
    practice = await Practice.get(id=caller.practice_id)
    if can_see_clinical(caller, practice):
        details = await clinical_details(client)
        clinical = {
            "referral": client.referral,
            "diagnosis_keywords": client.diagnosis_keywords or [],
            "clinical_comments": client.clinical_comments,
            "supervisor_id": details["supervisor"].id if details["supervisor"] else None,
            # The practice's day, as the file's page shows it: not UTC's, a day early at night.
            "client_since": client.created_at.astimezone(ZoneInfo(practice.time_zone))
            .date()
            .isoformat(),
            "attendance": details["attendance"],
            # Send it back as ``based_on`` to be refused what someone else changed since.
            "version": await client_file.tab_version(client, "clinical"),
        }
    methods = await PaymentMethod.filter(client_id=client.id, deleted_at=None).order_by("id")
    return FileOut(
        **values,
        id=client.id,
        therapist_id=client.therapist_id,  # type: ignore[attr-defined]
        email=client.email,
        phone=client.phone,
        tags=[{"id": t.id, "name": t.name} for t in await client.tags.all()],
        created_at=client.created_at,
        contact_version=await client_file.tab_version(client, "contact"),
        clinical=clinical,
        account={
            "payment_terms": client.payment_terms.value,
            "health_id": client.health_id,
            "insurance_company": client.insurance_company,
            "account_comments": client.account_comments,
            "version": await client_file.tab_version(client, "account"),
            "payment_methods": [
                {"id": m.id, "kind": m.kind.value, "description": m.description} for m in methods
            ],
        },
    )


@api.route("GET", "/clients/{client_id}", response=FileOut)
async def get_file(request: Request) -> FileOut:
    """A client's file (clinical details only for those who may see them)"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    await record_read(caller, client.id, "file", ip=client_address(request))
    return await file_out(caller, client)


@api.route("PUT", "/clients/{client_id}/contact", body=client_file.ContactIn, response=FileOut)
async def put_contact(request: Request, body: client_file.ContactIn) -> FileOut:
    """Replace the contact details (phones and emails as whole lists)"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    await client_file.do_update_contact_details(caller, client, body)
    return await file_out(caller, client)


@api.route("PUT", "/clients/{client_id}/clinical", body=client_file.ClinicalIn, response=FileOut)
async def put_clinical(request: Request, body: client_file.ClinicalIn) -> FileOut:
    """Replace the clinical details (clinicians and owners; office admins if allowed)"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    await _require_clinical(caller)
    await client_file.do_update_clinical_details(caller, client, body)
    return await file_out(caller, client)


@api.route("PUT", "/clients/{client_id}/therapist", body=TherapistIn, response=FileOut)
async def put_therapist(request: Request, body: TherapistIn) -> FileOut:
    """Hand the client to another therapist (owners and the front desk): the previous one no
    longer sees the file, and their open tasks on it go to the new one"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    await _assign(caller, client, body)
    return await file_out(caller, client)


@api.route("PUT", "/clients/{client_id}/account", body=client_file.AccountIn, response=FileOut)
async def put_account(request: Request, body: client_file.AccountIn) -> FileOut:
    """Replace the account details"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    await client_file.do_update_account_details(caller, client, body)
    return await file_out(caller, client)


@api.route(
    "POST",
    "/clients/{client_id}/payment-methods",
    body=client_file.PaymentMethodIn,
    response=FileOut,
)
async def post_payment_method(request: Request, body: client_file.PaymentMethodIn) -> FileOut:
    """Describe a payment method on file (never a card number: those are refused)"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    await client_file.do_add_payment_method(caller, client, body)
    return await file_out(caller, client)
