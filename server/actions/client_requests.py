"""What measures (server/actions/measures.py) and forms (server/actions/forms.py) share:
asking a client to fill something in on their portal. The email that tells them, in their
language; the reminder; who on the staff hears of the answers.

Emails never name what is asked: an inbox is not a health record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from models.accounts import PortalAccount, Practice, StaffRole, StaffUser
from models.clients import Client
from server.actions import audit
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import Conflict
from server.i18n import gettext as _
from server.i18n import writing_in
from server.mail import queue_email
from server.settings import get_settings


def absolute_url(path: str) -> str:
    return get_settings().public_url.rstrip("/") + path


async def clinicians_to_tell(client: Client, practice: Practice) -> list[StaffUser]:
    """Who hears of a completed measure or form, or an alert: the client's therapist; with no
    therapist (or an inactive one), the practice's owners, so an alert is never unheard."""
    therapist = await StaffUser.get_or_none(id=client.therapist_id, is_active=True)  # type: ignore[attr-defined]
    if therapist is not None:
        return [therapist]
    return await StaffUser.filter(
        practice_id=practice.id, role=StaffRole.OWNER, is_active=True
    ).order_by("id")


async def email_client(
    account: PortalAccount,
    practice: Practice,
    *,
    subject: str,
    body: str,
    path: str,
    purpose: str,
    client_id: int,
) -> None:
    """Queue the email asking the client to sign in: ``subject`` and ``body`` (marked with
    i18n.lazy(); the body's %(practice)s and %(link)s, the portal's ``path``, filled in)
    translated into the account's language, else the practice's. Call inside atomic()."""
    with writing_in(account.locale or practice.locale):
        await queue_email(
            account.email,
            _(subject),
            _(body) % {"practice": practice.name, "link": absolute_url(path)},
            purpose=purpose,
            client_id=client_id,
            practice_id=practice.id,
        )


async def remind_client(
    actor: Caller,
    asked: Any,
    *,
    subject: str,
    body: str,
    path: str,
    purpose: str,
    event: str,
    object_type: str,
) -> None:
    """Email the client again about ``asked`` (a MeasureAdministration or FormAssignment the
    caller checked is still waiting), note when, and audit it as ``event``."""
    account = await PortalAccount.get_or_none(client_id=asked.client_id, is_active=True)
    if account is None:
        raise Conflict(_("This client has no portal account."))
    practice = await Practice.get(id=asked.practice_id)
    async with atomic():
        asked.reminded_at = datetime.now(UTC)
        await asked.save(update_fields=["reminded_at", "updated_at"])
        await email_client(
            account,
            practice,
            subject=subject,
            body=body,
            path=path,
            purpose=purpose,
            client_id=asked.client_id,
        )
        await audit.record(
            actor, event, object_type=object_type, object_id=asked.id, client_id=asked.client_id
        )
