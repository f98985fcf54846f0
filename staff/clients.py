"""Staff: the client list and the client page (the client-file issue fills its tabs)."""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlencode

from pydantic import BaseModel, Field, field_validator
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.accounts import Practice, StaffRole
from models.clients import Client, ClientStatus, Tag
from server.access import access_client
from server.actions import accounts, clients
from server.auth.sessions import Caller
from server.errors import NotFound, ValidationFailed
from server.i18n import gettext as _
from server.queries.clients import (
    ClientFilters,
    ClientRow,
    clinicians,
    therapist_filter_choices,
)
from server.queries.clients import client_page as client_page_query
from server.web import parse_body, path_id, render, require_staff, validate
from staff.api import api
from staff.client_file import file_page


class InviteForm(BaseModel):
    email: str = Field(default="", max_length=254)


def _switch(word: str, *, on: str, off: str) -> bool:
    # Only the two words the page posts: anything else must not silently mean "off".
    if word not in {on, off}:
        raise NotFound()
    return word == on


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class NewClientForm(BaseModel):
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    email: str = Field(default="", max_length=254)
    phone: str = Field(default="", max_length=40)
    therapist_id: int | None = None
    status: ClientStatus = ClientStatus.ACTIVE
    # The form's own key: sent twice (a double click, an answer that never came), the
    # second finds the file the first opened.
    request_key: str = Field(default="", max_length=64)

    @field_validator("therapist_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str) -> str:
        value = value.strip()
        if value and not EMAIL.match(value):
            raise ValueError(_("Enter an email address such as name@example.org."))
        return value


async def create_client_for(caller: Caller, data: NewClientForm) -> Client:
    choices = {u.id: u for u in await clinicians(caller)}
    if data.therapist_id is not None and data.therapist_id not in choices:
        raise NotFound()
    therapist = choices.get(data.therapist_id) if data.therapist_id else None
    if therapist is None and caller.role is StaffRole.THERAPIST:
        therapist = caller.staff
    return await clients.do_create_client(
        caller,
        await Practice.get(id=caller.practice_id),
        first_name=data.first_name,
        last_name=data.last_name,
        email=data.email or None,
        phone=data.phone or None,
        therapist=therapist,
        status=data.status,
        request_key=data.request_key,
    )


async def client_list(request: Request) -> Response:
    caller = require_staff(request)
    filters = validate(ClientFilters, dict(request.query_params))
    ctx: dict[str, object] = {"section": "clients"}
    if request.method == "POST":
        try:
            client = await create_client_for(caller, await parse_body(request, NewClientForm))
        except ValidationFailed as exc:
            form = await request.form()
            posted = {k: v for k, v in form.items() if k not in {"csrf_token", "request_key"}}
            ctx.update(error=exc.message, fields=exc.fields, show_new=True, posted=posted)
        else:
            return RedirectResponse(f"/staff/clients/{client.id}/account", status_code=303)
    result = await client_page_query(caller, filters)
    ctx.update(
        result=result,
        filters=filters,
        statuses=list(ClientStatus),
        tags=await Tag.filter(practice_id=caller.practice_id).order_by("name"),
        clinicians=await clinicians(caller),
        filter_therapists=await therapist_filter_choices(caller),
        new_client_key=secrets.token_urlsafe(16),
        query_without_page=urlencode(
            {k: v for k, v in request.query_params.items() if k != "page" and v}
        ),
    )
    return render(request, "staff/clients.html", ctx, status=422 if "error" in ctx else 200)


async def invite(request: Request) -> Response:
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    try:
        data = await parse_body(request, InviteForm)
        link = await accounts.do_invite_to_portal(caller, client, data.email or None)
    except ValidationFailed as exc:
        return await file_page(
            request, {"error": exc.message, "fields": exc.fields}, 422, tab_name="account"
        )
    return await file_page(request, {"invite_link": link, "invited": True}, tab_name="account")


async def set_portal(request: Request) -> Response:
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    active = _switch(request.path_params["state"], on="enable", off="disable")
    account = await accounts.do_set_portal_active(caller, client, active)
    if active:
        # Say where the invitation went: the client's old password no longer works.
        return await file_page(request, {"enabled_to": account.email}, tab_name="account")
    return RedirectResponse(f"/staff/clients/{client.id}/account", status_code=303)


class ClientListOut(BaseModel):
    clients: list[ClientRow]
    total: int
    page: int
    pages: int


class ClientCreated(BaseModel):
    id: int


@api.route("GET", "/clients", response=ClientListOut)
async def list_clients(request: Request) -> ClientListOut:
    """Clients I may see: q (accent- and case-free name search), status, tag, therapist, page"""
    caller = require_staff(request)
    result = await client_page_query(caller, validate(ClientFilters, dict(request.query_params)))
    return ClientListOut(
        clients=result.rows, total=result.total, page=result.page, pages=result.pages
    )


@api.route("POST", "/clients", body=NewClientForm, response=ClientCreated)
async def create_client(request: Request, body: NewClientForm) -> ClientCreated:
    """Open a new client file"""
    client = await create_client_for(require_staff(request), body)
    return ClientCreated(id=client.id)
