"""The client list: accent- and case-free name search, filters, paging."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, field_validator
from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet

from models.accounts import PortalAccount, StaffRole, StaffUser
from models.clients import Client, ClientStatus, search_key
from server.access import caseload_therapist_ids, visible_clients
from server.auth.sessions import Caller

PER_PAGE = 50


class ClientFilters(BaseModel):
    q: str = Field(default="", max_length=100)
    status: ClientStatus | None = None
    tag: int | None = Field(default=None, ge=1)
    therapist: int | None = Field(default=None, ge=1)
    page: int = Field(default=1, ge=1, le=100_000)

    @field_validator("status", "tag", "therapist", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        # The filter form sends "" for "any".
        return None if value == "" else value


class ClientRow(BaseModel):
    id: int
    first_name: str
    last_name: str
    email: str | None
    status: ClientStatus
    therapist_id: int | None
    has_portal: bool
    tags: list[dict[str, Any]]


@dataclass
class ClientPage:
    rows: list[ClientRow]
    total: int
    page: int
    pages: int


def matching_name(query: QuerySet[Client], q: str) -> QuerySet[Client]:
    """Clients whose name holds every word of ``q``, accents and case aside: "dub hel" and
    "helene dubois" find Hélène Dubois. The client list and the pickers search alike."""
    for word in search_key(q).split():
        query = query.filter(search_name__contains=word)
    return query


async def client_page(caller: Caller, filters: ClientFilters) -> ClientPage:
    query = matching_name(await visible_clients(caller), filters.q)
    if filters.status is not None:
        query = query.filter(status=filters.status)
    if filters.tag is not None:
        query = query.filter(tags__id=filters.tag)
    if filters.therapist is not None:
        query = query.filter(therapist_id=filters.therapist)
    total = await query.count()
    pages = max(1, -(-total // PER_PAGE))
    page = min(filters.page, pages)
    clients = (
        await query.order_by("last_name", "first_name", "id")
        .offset((page - 1) * PER_PAGE)
        .limit(PER_PAGE)
        .prefetch_related("tags")
    )
    ids = [c.id for c in clients]
    portal = set(
        await PortalAccount.filter(client_id__in=ids, is_active=True).values_list(
            "client_id", flat=True
        )
    )
    rows = [
        ClientRow(
            id=c.id,
            first_name=c.first_name,
            last_name=c.last_name,
            email=c.email,
            status=c.status,
            therapist_id=c.therapist_id,  # type: ignore[attr-defined]
            has_portal=c.id in portal,
            tags=[{"id": t.id, "name": t.name, "color": t.color} for t in c.tags],
        )
        for c in clients
    ]
    return ClientPage(rows=rows, total=total, page=page, pages=pages)


async def clinicians(caller: Caller) -> list[StaffUser]:
    """Who a client can be assigned to: a therapist only to themselves or a supervisee (so
    they never create a file they cannot see); owners and the front desk to any clinician."""
    query = StaffUser.filter(
        practice_id=caller.practice_id,
        is_active=True,
        role__in=[StaffRole.THERAPIST, StaffRole.OWNER],
    )
    if caller.role is StaffRole.THERAPIST:
        query = query.filter(id__in=await caseload_therapist_ids(caller))
    return await query.order_by("last_name", "first_name")


async def therapist_filter_choices(caller: Caller) -> list[StaffUser]:
    """The client list's therapist filter: ``clinicians``, and for owners and the front desk
    also switched-off clinicians who still have clients (shown as "(left)"), listed after:
    their clients keep them as therapist until handed over one by one, and this is how the
    owner finds which files those are."""
    choices = await clinicians(caller)
    if caller.role is StaffRole.THERAPIST:
        return choices
    with_clients = Client.filter(practice_id=caller.practice_id, deleted_at=None).values(
        "therapist_id"
    )
    left = await StaffUser.filter(
        practice_id=caller.practice_id, is_active=False, id__in=Subquery(with_clients)
    ).order_by("last_name", "first_name")
    return choices + left
