"""The staff JSON API, mounted at /api."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request

from models.accounts import Practice, Realm, StaffRole
from models.audit import AuditEntry
from server.access import access_client, access_staff_user
from server.actions import accounts
from server.api import Api
from server.auth.api import add_auth_endpoints
from server.auth.sessions import COOKIE_NAMES
from server.billing_api import add_billing_endpoints
from server.messaging_api import add_messaging_endpoints
from server.web import path_id, require_staff
from staff.pages import OWNER, NewStaffForm, StaffChangesForm

api = Api("Cabinet staff API", "/api", COOKIE_NAMES[Realm.STAFF])
add_auth_endpoints(api, Realm.STAFF)
add_messaging_endpoints(api)
add_billing_endpoints(api, "staff")


class StaffOut(BaseModel):
    id: int
    email: str
    first_name: str
    last_name: str
    role: StaffRole
    supervisor_id: int | None
    portal_enabled: bool
    is_active: bool


class AuditOut(BaseModel):
    id: int
    created_at: datetime
    actor_kind: str
    actor_id: int | None
    actor_label: str
    action: str
    object_type: str
    object_id: str
    client_id: int | None
    is_read: bool
    detail: dict[str, Any]


class InviteIn(BaseModel):
    email: str | None = Field(default=None, max_length=254)


class InviteOut(BaseModel):
    # The invitation link, for an account never used (to hand over in person); null once the
    # client has used the portal: the link then goes to their email only.
    link: str | None


class ActiveIn(BaseModel):
    active: bool


def staff_out(user: Any) -> StaffOut:
    return StaffOut(
        id=user.id,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        role=user.role,
        supervisor_id=user.supervisor_id,
        portal_enabled=user.portal_enabled,
        is_active=user.is_active,
    )


@api.route("POST", "/staff", body=NewStaffForm, response=StaffOut)
async def create_staff(request: Request, body: NewStaffForm) -> StaffOut:
    """Create a staff user (owner only); they get an email to choose their password"""
    caller = require_staff(request, OWNER)
    supervisor = await access_staff_user(caller, body.supervisor_id) if body.supervisor_id else None
    user = await accounts.do_create_staff_user(
        caller,
        await Practice.get(id=caller.practice_id),
        email=body.email,
        first_name=body.first_name,
        last_name=body.last_name,
        role=body.role,
        supervisor=supervisor,
        portal_enabled=body.portal_enabled,
    )
    return staff_out(user)


@api.route(
    "PUT",
    "/staff/{staff_id}",
    body=StaffChangesForm,
    response=StaffOut,
    statuses=(401, 403, 404, 409, 422),
)
async def update_staff(request: Request, body: StaffChangesForm) -> StaffOut:
    """Change a staff user's role, supervisor or portal messaging (owner only)"""
    caller = require_staff(request, OWNER)
    user = await access_staff_user(caller, path_id(request, "staff_id"))
    supervisor = await access_staff_user(caller, body.supervisor_id) if body.supervisor_id else None
    return staff_out(
        await accounts.do_update_staff_user(
            caller,
            user,
            role=body.role,
            supervisor=supervisor,
            portal_enabled=body.portal_enabled,
        )
    )


@api.route("POST", "/staff/{staff_id}/active", body=ActiveIn, response=StaffOut)
async def set_staff_active(request: Request, body: ActiveIn) -> StaffOut:
    """Deactivate or reactivate a staff user (owner only); deactivation ends their sessions"""
    caller = require_staff(request, OWNER)
    user = await access_staff_user(caller, path_id(request, "staff_id"))
    return staff_out(await accounts.do_set_staff_active(caller, user, body.active))


@api.route("POST", "/clients/{client_id}/portal/invite", body=InviteIn, response=InviteOut)
async def invite_client(request: Request, body: InviteIn) -> InviteOut:
    """Create the client's portal account and email them an invitation link (returned too
    while the account was never used; afterwards emailed only)"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    return InviteOut(link=await accounts.do_invite_to_portal(caller, client, body.email))


@api.route("POST", "/clients/{client_id}/portal/active", body=ActiveIn, response=None)
async def set_portal_active(request: Request, body: ActiveIn) -> dict[str, bool]:
    """Enable or disable a client's portal access (enabling invites to a new password)"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    account = await accounts.do_set_portal_active(caller, client, body.active)
    return {"active": account.is_active}


@api.route("GET", "/audit", response=AuditOut, response_list=True)
async def audit_trail(request: Request) -> list[AuditOut]:
    """The practice's audit trail, newest first (owner only)"""
    caller = require_staff(request, OWNER)
    rows = await AuditEntry.filter(practice_id=caller.practice_id).order_by("-id").limit(200)
    return [
        AuditOut(
            id=r.id,
            created_at=r.created_at,
            actor_kind=r.actor_kind,
            actor_id=r.actor_id,
            actor_label=r.actor_label,
            action=r.action,
            object_type=r.object_type,
            object_id=r.object_id,
            client_id=r.client_id,
            is_read=r.is_read,
            detail=r.detail,
        )
        for r in rows
    ]
