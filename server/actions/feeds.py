"""Calendar feeds: the secret that makes a practitioner's or a client's feed URL."""

from __future__ import annotations

import secrets

from models.accounts import PortalAccount, StaffUser
from server.actions import audit
from server.auth.sessions import Caller
from server.db import atomic


async def do_new_calendar_token(actor: Caller, owner: StaffUser | PortalAccount) -> str:
    """A new secret for the feed URL; the previous URL stops working at once."""
    token = secrets.token_urlsafe(32)
    async with atomic():
        owner.calendar_token = token
        await owner.save(update_fields=["calendar_token", "updated_at"])
        await audit.record(
            actor,
            "calendar_feed.renewed",
            object_type="staff_user" if isinstance(owner, StaffUser) else "portal_account",
            object_id=owner.id,
        )
    return token
