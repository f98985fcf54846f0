"""Fetch-or-404, scoped to what the caller may see. The only way handlers get objects by id.

A missing id and an id the caller may not see give the same NotFound, so ids reveal
nothing. Therapists see their own caseload and their supervisees'; owners and office
admins see the whole practice; a client sees only their own records.
"""

from __future__ import annotations

from tortoise.queryset import QuerySet

from models.accounts import StaffRole, StaffUser
from models.clients import Client
from server.auth.sessions import Caller
from server.errors import NotFound


async def caseload_therapist_ids(caller: Caller) -> list[int]:
    """The therapists whose clients this clinician may see: themselves and supervisees."""
    assert caller.staff is not None
    ids = [caller.staff.id]
    ids += await StaffUser.filter(supervisor_id=caller.staff.id).values_list("id", flat=True)  # type: ignore[arg-type]
    return ids


async def visible_clients(caller: Caller) -> QuerySet[Client]:
    if caller.staff is None:
        assert caller.client is not None
        return Client.filter(id=caller.client.id, deleted_at=None)
    query = Client.filter(practice_id=caller.practice_id, deleted_at=None)
    if caller.staff.role is StaffRole.THERAPIST:
        query = query.filter(therapist_id__in=await caseload_therapist_ids(caller))
    return query


async def access_client(caller: Caller, client_id: int) -> Client:
    client = await (await visible_clients(caller)).get_or_none(id=client_id)
    if client is None:
        raise NotFound()
    return client


async def access_staff_user(caller: Caller, staff_id: int) -> StaffUser:
    """Staff of the caller's own practice (clients never reach staff records by id)."""
    if caller.staff is None:
        raise NotFound()
    user = await StaffUser.get_or_none(id=staff_id, practice_id=caller.practice_id)
    if user is None:
        raise NotFound()
    return user
