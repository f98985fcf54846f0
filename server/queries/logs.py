"""The client file's logs: what was sent about the client, the history of their sessions,
and who did or looked at what in the file."""

from __future__ import annotations

from typing import Any

from tortoise.expressions import Q

from models.accounts import PortalAccount, StaffUser
from models.audit import AuditEntry
from models.clients import AlternateContact, Client, EmailAddress, PhoneNumber
from models.notifications import OutboxMessage
from models.reminders import PractitionerSms
from server.audit_labels import describe
from server.phones import for_sending, practice_region

LIMIT = 200

# What only those who may read clinical details may know of: that a questionnaire raised a
# safety alert (PHQ-9 item 9), as its email and its audit entry say, and the session notes'
# activity (who started, signed, read one, and when), as the sessions tab keeps the notes
# themselves from them. The front desk, where the practice keeps clinical details from it,
# sees none of it (the Measures API hides the flag from it too).
CLINICAL_PURPOSES = frozenset({"measure_alert"})
# Reading the clinical details or a questionnaire's answers is the same kind of fact.
CLINICAL_ACTIONS = frozenset({"measure.alert", "read.note", "read.clinical", "read.measures"})
CLINICAL_ACTION_PREFIXES = ("note.",)  # every note action, those added later too


def is_clinical_action(action: str) -> bool:
    return action in CLINICAL_ACTIONS or action.startswith(CLINICAL_ACTION_PREFIXES)


# The audit details the file's logs show (``describe``), and the export copies: the others
# can name people the reader may not see (a colleague's client added to a conversation, a
# linked file's id).
SHOWN_DETAIL = ("fields", "from", "to")


def shown_detail(entry: AuditEntry) -> dict[str, Any]:
    return {k: v for k, v in (entry.detail or {}).items() if k in SHOWN_DETAIL}


async def addresses_of(client: Client) -> set[str]:
    """Where messages to the client or their circle of care go: their emails and phones,
    their portal account's email, their alternate contacts' (as stored, compared lowercase;
    a number also as texts are sent to it, +33612345678 for "06 12 34 56 78")."""
    alternates = await AlternateContact.filter(client_id=client.id).values_list("id", "email")
    found = [client.email or "", client.phone or ""]
    found += [str(email) for _id, email in alternates]
    found += await EmailAddress.filter(client_id=client.id).values_list("address", flat=True)  # type: ignore[arg-type]
    found += await PhoneNumber.filter(  # type: ignore[arg-type]
        Q(client_id=client.id) | Q(alternate_contact_id__in=[i for i, _e in alternates])
    ).values_list("number", flat=True)
    found += await PortalAccount.filter(client_id=client.id).values_list("email", flat=True)  # type: ignore[arg-type]
    return await _normal(found, client.practice_id)  # type: ignore[attr-defined]


async def _staff_addresses(practice_id: int) -> set[str]:
    """The practice's staff emails and notice mobiles (a booking or message notice to the
    practitioner is filed under the client too)."""
    staff = await StaffUser.filter(practice_id=practice_id).values_list("id", "email")
    mobiles = await PractitionerSms.filter(practitioner_id__in=[i for i, _e in staff]).values_list(
        "mobile", flat=True
    )
    return await _normal([str(e) for _i, e in staff] + [str(m) for m in mobiles], practice_id)


async def _normal(found: list[Any], practice_id: int) -> set[str]:
    kept = {str(a).strip().lower() for a in found if a and str(a).strip()}
    region = await practice_region(practice_id)
    return kept | {for_sending(a, region) for a in kept if "@" not in a}


async def file_logs(
    client: Client, *, clinical: bool, to_staff: bool = False, latest: int | None = None
) -> tuple[list[OutboxMessage], list[AuditEntry]]:
    """What was sent about the client, newest first: to the client and their circle (and
    with ``to_staff``, to the practice's staff), never to another client (a linked person's
    notice is filed under the conversation's client); and the file's audit entries. Without
    ``clinical``, neither says that a questionnaire raised a safety alert, nor what was
    done with the session notes. ``latest``: looks at only the latest this many messages
    and twice as many audit entries (a page); all of them by default (the export)."""
    wanted = await addresses_of(client)
    if to_staff:
        wanted |= await _staff_addresses(client.practice_id)  # type: ignore[attr-defined]
    outbox = OutboxMessage.filter(client_id=client.id).order_by("-id")
    audit = AuditEntry.filter(
        client_id=client.id,
        practice_id=client.practice_id,  # type: ignore[attr-defined]
    ).order_by("-id")
    if latest is not None:
        outbox, audit = outbox.limit(latest), audit.limit(latest * 2)
    sent = [
        m
        for m in await outbox
        if m.to.strip().lower() in wanted and (clinical or m.purpose not in CLINICAL_PURPOSES)
    ]
    return sent, [e for e in await audit if clinical or not is_clinical_action(e.action)]


async def client_logs(client: Client, *, clinical: bool, reads: bool = True) -> dict[str, Any]:
    sent, entries = await file_logs(client, clinical=clinical, to_staff=True, latest=LIMIT)
    sessions = [e for e in entries if e.object_type == "appointment"]
    activity = [e for e in entries if e.object_type != "appointment" and (reads or not e.is_read)]
    return {
        "sent": sent,
        "session_log": [(e, describe(e)) for e in sessions[:LIMIT]],
        "activity": [(e, describe(e)) for e in activity[:LIMIT]],
        "show_reads": reads,
    }
