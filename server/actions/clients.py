"""Clients: creation for now; the client-file issue adds the rest of the file."""

from __future__ import annotations

from datetime import UTC, datetime

from models.accounts import PortalAccount, Practice, StaffUser
from models.clients import (
    INVERSE_RELATIONSHIP,
    Client,
    ClientStatus,
    LinkedAccount,
    Relationship,
    search_key,
)
from server.actions import audit
from server.actions.retries import once_per_key
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import ValidationFailed
from server.i18n import gettext as _


async def do_create_client(
    actor: Caller | None,
    practice: Practice,
    *,
    first_name: str,
    last_name: str,
    email: str | None = None,
    phone: str | None = None,
    therapist: StaffUser | None = None,
    status: ClientStatus = ClientStatus.ACTIVE,
    request_key: str = "",
) -> Client:
    """A new client file. ``request_key``: the form's own key; sent again with it, the
    file it opened the first time (server/actions/retries.py)."""

    async def write(key: str | None) -> Client:
        async with atomic():
            client = await Client.create(
                practice=practice,
                first_name=first_name.strip(),
                last_name=last_name.strip(),
                search_name=search_key(first_name, last_name),
                email=(email or "").strip().lower() or None,
                phone=phone,
                therapist=therapist,
                status=status,
                request_key=key,
            )
            await audit.record(
                actor,
                "client.created",
                object_type="client",
                object_id=client.id,
                client_id=client.id,
                practice_id=practice.id,
            )
        return client

    return await once_per_key(Client, request_key, write, practice_id=practice.id)


async def do_create_portal_account_with_password(
    actor: Caller | None, client: Client, email: str, password_hash: str
) -> PortalAccount:
    """A ready-to-use portal account (demo data and tests; staff use invitations)."""
    now = datetime.now(UTC)
    async with atomic():
        account = await PortalAccount.create(
            client=client,
            email=email.strip().lower(),
            password_hash=password_hash,
            invited_at=now,
            activated_at=now,
        )
        await audit.record(
            actor,
            "portal.created",
            object_type="portal_account",
            object_id=account.id,
            client_id=client.id,
            practice_id=client.practice_id,  # type: ignore[attr-defined]
        )
    return account


async def do_link_clients(
    actor: Caller | None, client: Client, other: Client, relationship: Relationship
) -> LinkedAccount:
    """Link two clients of the practice; the link shows from both sides, inverted."""
    if client.id == other.id:
        raise ValidationFailed(
            _("A client cannot be linked to themselves."),
            {"linked_client_id": _("Choose another client.")},
        )
    async with atomic():
        link, _created = await LinkedAccount.update_or_create(
            defaults={"relationship": relationship, "deleted_at": None},
            client=client,
            linked_client=other,
        )
        await LinkedAccount.update_or_create(
            defaults={"relationship": INVERSE_RELATIONSHIP[relationship], "deleted_at": None},
            client=other,
            linked_client=client,
        )
        await audit.record(
            actor,
            "client.linked",
            object_type="client",
            object_id=client.id,
            client_id=client.id,
            practice_id=client.practice_id,  # type: ignore[attr-defined]
            detail={"linked_client_id": other.id, "relationship": relationship.value},
        )
    return link
