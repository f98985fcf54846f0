"""Staff messaging: the messaging page, and the staff-only API (start conversations, add
participants, pick clients, create a task from a message)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from models.accounts import PortalAccount, StaffRole, StaffUser
from models.messaging import ConversationKind
from server.access import (
    access_client,
    access_conversation,
    access_practice_staff,
    client_of_message,
    staff_seeing,
    visible_clients,
    visible_links,
)
from server.actions import messaging
from server.auth.sessions import Caller
from server.errors import NotFound
from server.queries.clients import matching_name
from server.web import parse_id, path_id, render, require_staff
from staff.api import api

Preset = Literal["all_office_admins", "all_owners", "all_therapists", "all_office"]
PRESET_ROLES: dict[str, tuple[StaffRole, ...]] = {
    "all_office_admins": (StaffRole.OFFICE_ADMIN,),
    "all_owners": (StaffRole.OWNER,),
    "all_therapists": (StaffRole.THERAPIST,),
    "all_office": (StaffRole.OWNER, StaffRole.THERAPIST, StaffRole.OFFICE_ADMIN),
}


class ConversationIn(BaseModel):
    kind: ConversationKind
    subject: str = Field(max_length=200)
    group_name: str | None = Field(default=None, max_length=120)
    client_id: int | None = None
    linked_client_ids: list[int] = Field(default_factory=list, max_length=50)
    staff_ids: list[int] = Field(default_factory=list, max_length=200)
    preset: Preset | None = None
    body: str | None = Field(default=None, max_length=10_000)
    client_uid: str | None = Field(default=None, max_length=64)


class ParticipantsIn(BaseModel):
    staff_ids: list[int] = Field(default_factory=list, max_length=200)
    linked_client_ids: list[int] = Field(default_factory=list, max_length=50)
    preset: Preset | None = None
    group_name: str | None = Field(default=None, max_length=120)


class ConversationCreated(BaseModel):
    id: int


class PickableClient(BaseModel):
    id: int
    name: str
    has_portal: bool
    links: list[dict[str, object]]


async def _staff_for(caller: Caller, ids: list[int], preset: str | None) -> list[StaffUser]:
    staff = await access_practice_staff(caller, ids)
    if preset:
        staff += await StaffUser.filter(
            practice_id=caller.practice_id, is_active=True, role__in=list(PRESET_ROLES[preset])
        )
    return staff


async def _linked_for(caller: Caller, client_id: int, ids: list[int]) -> list:  # type: ignore[type-arg]
    """The chosen linked accounts, which must be linked to this very client and be clients
    the caller may see (the circle tab hides the others: a colleague's client stays a 404)."""
    if not ids:
        return []
    links = (
        await (await visible_links(caller))
        .filter(client_id=client_id, linked_client_id__in=ids)
        .prefetch_related("linked_client")
    )
    if len(links) != len(set(ids)):
        raise NotFound()
    return [link.linked_client for link in links]


@api.route("POST", "/conversations", body=ConversationIn, response=ConversationCreated)
async def create_conversation(request: Request, body: ConversationIn) -> ConversationCreated:
    """Start a client or office conversation"""
    caller = require_staff(request)
    client = await access_client(caller, body.client_id) if body.client_id else None
    linked = await _linked_for(caller, client.id, body.linked_client_ids) if client else []
    if body.linked_client_ids and client is None:
        raise NotFound()
    conversation = await messaging.do_create_conversation(
        caller,
        kind=body.kind,
        subject=body.subject,
        group_name=body.group_name,
        client=client,
        linked_clients=linked,
        staff=await _staff_for(caller, body.staff_ids, body.preset),
        first_message=body.body,
        client_uid=body.client_uid,
    )
    return ConversationCreated(id=conversation.id)


@api.route(
    "POST", "/conversations/{conversation_id}/participants", body=ParticipantsIn, response=None
)
async def add_participants(request: Request, body: ParticipantsIn) -> dict[str, object]:
    """Add participants (never removed later; they see the whole history)"""
    caller = require_staff(request)
    conversation, _me = await access_conversation(caller, path_id(request, "conversation_id"))
    client_id = conversation.client_id  # type: ignore[attr-defined]
    linked = await _linked_for(caller, client_id, body.linked_client_ids) if client_id else []
    if body.linked_client_ids and not client_id:
        raise NotFound()
    added = await messaging.do_add_participants(
        caller,
        conversation,
        staff=await _staff_for(caller, body.staff_ids, body.preset),
        linked_clients=linked,
        group_name=body.group_name,
    )
    return {"added": [messaging.participant_payload(p) for p in added]}


@api.route("GET", "/messaging/clients", response=PickableClient, response_list=True)
async def pick_clients(request: Request) -> list[PickableClient]:
    """Clients I may start a conversation with, marked when they have no portal account (q, id)"""
    caller = require_staff(request)
    q = request.query_params.get("q", "").strip()[:100]
    query = await visible_clients(caller)
    # ?id= fetches one client's entry (with its linked accounts) whatever its place by name.
    if "id" in request.query_params:
        query = query.filter(id=parse_id(request.query_params["id"]))
    clients = await matching_name(query, q).order_by("last_name", "first_name").limit(30)
    ids = [c.id for c in clients]
    active = set(
        await PortalAccount.filter(client_id__in=ids, is_active=True)
        .exclude(password_hash=None)
        .values_list("client_id", flat=True)
    )
    # Only links to clients the caller may see, as on the circle tab.
    links = (
        await (await visible_links(caller))
        .filter(client_id__in=ids)
        .prefetch_related("linked_client")
    )
    linked_ids = [link.linked_client.id for link in links]
    linked_active = set(
        await PortalAccount.filter(client_id__in=linked_ids, is_active=True)
        .exclude(password_hash=None)
        .values_list("client_id", flat=True)
    )
    by_client: dict[int, list[dict[str, object]]] = {}
    for link in links:
        by_client.setdefault(link.client_id, []).append(  # type: ignore[attr-defined]
            {
                "id": link.linked_client.id,
                "name": link.linked_client.full_name,
                "relationship": link.relationship.value,
                "has_portal": link.linked_client.id in linked_active,
            }
        )
    return [
        PickableClient(
            id=c.id, name=c.full_name, has_portal=c.id in active, links=by_client.get(c.id, [])
        )
        for c in clients
    ]


@api.route("GET", "/messaging/staff", response=None)
async def pick_staff(request: Request) -> list[dict[str, object]]:
    """Active staff of the practice, to add to a conversation; with ?message_id=, those who
    may open the file of the client who wrote it (who a task made from it may be for)"""
    caller = require_staff(request)
    query = StaffUser.filter(practice_id=caller.practice_id, is_active=True)
    if "message_id" in request.query_params:
        client, _message = await client_of_message(
            caller, parse_id(request.query_params["message_id"])
        )
        query = await staff_seeing(client)
    users = await query.order_by("last_name")
    return [
        {"id": u.id, "name": u.full_name, "role": u.role.value, "portal_enabled": u.portal_enabled}
        for u in users
    ]


async def messaging_page(request: Request) -> Response:
    caller = require_staff(request)
    return render(
        request,
        "staff/messaging.html",
        {
            "section": "messages",
            "open_id": request.query_params.get("c", ""),
            "new_client_id": request.query_params.get("client", "")
            if request.query_params.get("client", "").isdigit()
            else "",
            "me_id": caller.staff.id if caller.staff else 0,
        },
    )
