"""What the circle-of-care tab shows, and fetch-or-404 for its parts.

Linked accounts are shown only when the caller may see the other client too: a therapist
must not learn from a child's file that the parent is in therapy with a colleague. Owners
and office admins see the whole practice, so they see every link.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.clients import AlternateContact, Client, Contact, LinkedAccount, PhoneNumber, search_key
from server.access import access_client, visible_clients, visible_links
from server.auth.sessions import Caller
from server.errors import NotFound

# At most this many clients or contacts offered by a name search in the tab.
PICKER_LIMIT = 20


# --- fetch-or-404 ----------------------------------------------------------------------------
# These belong in server/access.py with the other access_* functions; they live here while
# that file is being changed by parallel work.


async def access_circle_contact(
    caller: Caller, alternate_id: int, client: Client | None = None
) -> AlternateContact:
    """An alternate contact on a file the caller may see (and on ``client``'s, when given):
    another client's, another practice's, a removed one and a missing id are the same 404."""
    alternate = await AlternateContact.get_or_none(id=alternate_id, deleted_at=None)
    if alternate is None:
        raise NotFound()
    if client is not None and alternate.client_id != client.id:  # type: ignore[attr-defined]
        raise NotFound()
    await access_client(caller, alternate.client_id)  # type: ignore[attr-defined]
    return alternate


async def access_linked_account(
    caller: Caller, client: Client, linked_client_id: int
) -> tuple[LinkedAccount, Client]:
    """The live link from ``client`` to another client the caller may see, with that client."""
    other = await access_client(caller, linked_client_id)
    link = await LinkedAccount.get_or_none(
        client_id=client.id, linked_client_id=other.id, deleted_at=None
    )
    if link is None:
        raise NotFound()
    return link, other


# --- reads -----------------------------------------------------------------------------------


@dataclass
class CircleMember:
    alternate: AlternateContact
    phones: list[PhoneNumber]
    # The contact record it came from, unless that record was removed since.
    contact: Contact | None


@dataclass
class Link:
    link: LinkedAccount
    other: Client


async def circle_contacts(client: Client) -> list[CircleMember]:
    """The client's alternate contacts, emergency contacts first, then by name."""
    alternates = await AlternateContact.filter(client_id=client.id, deleted_at=None).order_by(
        "-is_emergency", "last_name", "first_name", "id"
    )
    ids = [a.id for a in alternates]
    phones: dict[int, list[PhoneNumber]] = {}
    for phone in await PhoneNumber.filter(alternate_contact_id__in=ids).order_by("id"):
        phones.setdefault(phone.alternate_contact_id, []).append(phone)  # type: ignore[attr-defined]
    contact_ids = [a.contact_id for a in alternates if a.contact_id]  # type: ignore[attr-defined]
    contacts = {c.id: c for c in await Contact.filter(id__in=contact_ids, deleted_at=None)}
    return [
        CircleMember(
            alternate=a,
            phones=phones.get(a.id, []),
            contact=contacts.get(a.contact_id),  # type: ignore[attr-defined]
        )
        for a in alternates
    ]


async def linked_accounts(caller: Caller, client: Client) -> list[Link]:
    """The client's live links to other clients the caller may see, by the other's name."""
    links = (
        await (await visible_links(caller))
        .filter(client_id=client.id)
        .prefetch_related("linked_client")
    )
    found = [Link(link=link, other=link.linked_client) for link in links]
    return sorted(found, key=lambda x: (x.other.last_name, x.other.first_name, x.other.id))


async def linkable_clients(caller: Caller, client: Client, q: str) -> list[Client]:
    """Clients the caller may see whose name matches ``q`` (accent- and case-free), other
    than this client and those already linked to it."""
    words = search_key(q).split()
    if not words:
        return []
    query = (await visible_clients(caller)).exclude(id=client.id)
    linked = await LinkedAccount.filter(client_id=client.id, deleted_at=None).values_list(
        "linked_client_id", flat=True
    )
    if linked:
        query = query.exclude(id__in=list(linked))
    for word in words:
        query = query.filter(search_name__contains=word)
    return await query.order_by("last_name", "first_name", "id").limit(PICKER_LIMIT)
