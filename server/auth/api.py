"""JSON sign-in endpoints, added to both the staff API and the portal API."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from models.accounts import Realm
from server.actions import accounts
from server.api import Api, Ok
from server.auth.sessions import COOKIE_NAMES
from server.auth.throttle import DEVICE_COOKIE, is_known_device
from server.auth.views import ChangePasswordForm, EmailForm, remember_device, set_session_cookie
from server.web import client_address, require_caller


class SessionIn(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    kind: str
    id: int
    name: str
    email: str
    role: str | None = None
    client_id: int | None = None
    locale: str | None = None
    csrf_token: str
    recipient: str


def add_auth_endpoints(api: Api, realm: Realm) -> None:
    @api.route("POST", "/session", body=SessionIn, response=Me, summary="Sign in", public=True)
    async def create_session(request: Request, body: SessionIn) -> Response:
        result = await accounts.do_login(
            realm,
            body.email,
            body.password,
            address=client_address(request),
            user_agent=request.headers.get("user-agent", ""),
            known_device=is_known_device(request.cookies.get(DEVICE_COOKIE), body.email),
            previous_token=request.cookies.get(COOKIE_NAMES[realm]),
        )
        response = JSONResponse(me_of(result.caller).model_dump())
        set_session_cookie(response, realm, result.token)
        remember_device(response, request, body.email)
        return response

    @api.route("DELETE", "/session", response=Ok, summary="Sign out")
    async def delete_session(request: Request) -> Response:
        caller = require_caller(request)
        await accounts.do_logout(caller)
        response = JSONResponse(Ok().model_dump())
        response.delete_cookie(COOKIE_NAMES[realm], path="/")
        return response

    @api.route("GET", "/me", response=Me, summary="Who is signed in")
    async def get_me(request: Request) -> Me:
        return me_of(require_caller(request))

    @api.route("POST", "/account/password", body=ChangePasswordForm, response=Ok)
    async def change_password(request: Request, body: ChangePasswordForm) -> Ok:
        """Change my password (ends my other sessions; wrong current passwords are
        throttled as failed sign-ins are)"""
        await accounts.do_change_password(
            require_caller(request),
            body.current_password,
            body.new_password,
            address=client_address(request),
        )
        return Ok()

    @api.route(
        "POST", "/password/forgot", body=EmailForm, response=Ok, statuses=(422, 429), public=True
    )
    async def forgot_password(request: Request, body: EmailForm) -> Ok:
        """Email a password reset link (the answer never says whether the account exists)"""
        await accounts.do_request_password_reset(realm, body.email, address=client_address(request))
        return Ok()


def me_of(caller: accounts.Caller) -> Me:
    if caller.staff is not None:
        return Me(
            kind="staff",
            id=caller.staff.id,
            name=caller.staff.full_name,
            email=caller.staff.email,
            role=caller.staff.role.value,
            locale=caller.staff.locale,
            csrf_token=caller.session.csrf_token,
            recipient=caller.recipient,
        )
    assert caller.account is not None and caller.client is not None
    return Me(
        kind="client",
        id=caller.account.id,
        name=caller.client.full_name,
        email=caller.account.email,
        client_id=caller.client.id,
        locale=caller.account.locale,
        csrf_token=caller.session.csrf_token,
        recipient=caller.recipient,
    )
