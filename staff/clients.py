"""Staff: the client list and the client page (the client-file issue fills its tabs)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.accounts import PortalAccount, StaffUser
from server.access import access_client, visible_clients
from server.actions import accounts
from server.actions.audit import record_read
from server.errors import NotFound, ValidationFailed
from server.queries.tasks import client_tasks
from server.web import client_address, parse_body, path_id, render, require_staff


class InviteForm(BaseModel):
    email: str = Field(default="", max_length=254)


def _switch(word: str, *, on: str, off: str) -> bool:
    # Only the two words the page posts: anything else must not silently mean "off".
    if word not in {on, off}:
        raise NotFound()
    return word == on


async def client_list(request: Request) -> Response:
    caller = require_staff(request)
    clients = await (await visible_clients(caller)).order_by("last_name", "first_name").limit(200)
    portal = set(
        await PortalAccount.filter(client_id__in=[c.id for c in clients]).values_list(
            "client_id", flat=True
        )
    )
    return render(
        request, "staff/clients.html", {"clients": clients, "portal": portal, "section": "clients"}
    )


async def client_page(
    request: Request, ctx: dict[str, object] | None = None, status: int = 200
) -> Response:
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    await record_read(caller, client.id, "file", ip=client_address(request))
    account = await PortalAccount.get_or_none(client_id=client.id)
    context: dict[str, object] = {
        "client": client,
        "account": account,
        "section": "clients",
        "tasks": await client_tasks(client.id),
        "staff_members": await StaffUser.filter(
            practice_id=caller.practice_id, is_active=True
        ).order_by("last_name", "first_name"),
    }
    context.update(ctx or {})
    return render(request, "staff/client.html", context, status=status)


async def invite(request: Request) -> Response:
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    try:
        data = await parse_body(request, InviteForm)
        link = await accounts.do_invite_to_portal(caller, client, data.email or None)
    except ValidationFailed as exc:
        return await client_page(request, {"error": exc.message, "fields": exc.fields}, 422)
    return await client_page(request, {"invite_link": link})


async def set_portal(request: Request) -> Response:
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    active = _switch(request.path_params["state"], on="enable", off="disable")
    await accounts.do_set_portal_active(caller, client, active)
    return RedirectResponse(f"/staff/clients/{client.id}", status_code=303)
