"""The practice's contacts: fetch-or-404, the list with its accent-free name search, and the
circles of care that copied a contact."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field, field_validator
from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet

from models.clients import AlternateContact, Client, Contact, ContactKind, search_key
from server.access import visible_clients
from server.auth.sessions import Caller

PER_PAGE = 50


class ContactFilters(BaseModel):
    q: str = Field(default="", max_length=100)
    kind: ContactKind | None = None
    page: int = Field(default=1, ge=1, le=100_000)

    @field_validator("kind", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value


@dataclass
class ContactPage:
    rows: list[Contact]
    total: int
    page: int
    pages: int


def _search(caller: Caller, q: str, kind: ContactKind | None = None) -> QuerySet[Contact]:
    query = Contact.filter(practice_id=caller.practice_id, deleted_at=None)
    # Every word must appear somewhere in the name: "dup mar" finds Marie Dupré.
    for word in search_key(q).split():
        query = query.filter(search_name__contains=word)
    if kind is not None:
        query = query.filter(kind=kind)
    return query


async def contact_page(caller: Caller, filters: ContactFilters) -> ContactPage:
    query = _search(caller, filters.q, filters.kind)
    total = await query.count()
    pages = max(1, -(-total // PER_PAGE))
    page = min(filters.page, pages)
    rows = (
        await query.order_by("last_name", "first_name", "id")
        .offset((page - 1) * PER_PAGE)
        .limit(PER_PAGE)
    )
    return ContactPage(rows=rows, total=total, page=page, pages=pages)


async def find_contacts(caller: Caller, q: str, limit: int = 20) -> list[Contact]:
    """Contacts whose name matches ``q`` (accent- and case-free), for a picker."""
    return await _search(caller, q).order_by("last_name", "first_name", "id").limit(limit)


async def circles_of(caller: Caller, contact: Contact) -> list[tuple[Client, AlternateContact]]:
    """The clients the caller may see whose circle of care holds this contact."""
    visible = Subquery((await visible_clients(caller)).values("id"))
    alternates = await AlternateContact.filter(
        contact_id=contact.id, deleted_at=None, client_id__in=visible
    ).prefetch_related("client")
    return sorted(
        ((a.client, a) for a in alternates),
        key=lambda pair: (pair[0].last_name, pair[0].first_name),
    )
