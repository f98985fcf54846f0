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
from server.i18n import gettext, lazy

LIMIT = 200

# What only those who may read clinical details may know of: that a questionnaire raised a
# safety alert (PHQ-9 item 9), as its email and its audit entry say. The front desk, where
# the practice keeps clinical details from it, sees neither (the Measures API hides the flag
# from it too).
CLINICAL_PURPOSES = frozenset({"measure_alert"})
CLINICAL_ACTIONS = frozenset({"measure.alert"})
# The audit details the file's logs show (``describe``), and the export copies: the others
# can name people the reader may not see (a colleague's client added to a conversation, a
# linked file's id).
SHOWN_DETAIL = ("fields", "from", "to")

# Audit actions as a sentence fragment; anything not listed shows its code.
ACTION_LABELS: dict[str, str] = {
    "client.created": lazy("opened the file"),
    "client.contact_updated": lazy("changed contact details"),
    "client.clinical_updated": lazy("changed clinical details"),
    "client.account_updated": lazy("changed account details"),
    "client.reminders_updated": lazy("changed their reminders"),
    "client.therapist_changed": lazy("changed the therapist"),
    "client.linked": lazy("linked an account"),
    "client.unlinked": lazy("unlinked an account"),
    "client.payment_method_added": lazy("added a payment method"),
    "client.payment_method_removed": lazy("removed a payment method"),
    "client.exported": lazy("exported the file"),
    "circle.contact_added": lazy("added a contact to the circle of care"),
    "circle.contact_updated": lazy("changed a contact of the circle of care"),
    "circle.contact_removed": lazy("removed a contact from the circle of care"),
    "portal.created": lazy("created the portal account"),
    "portal.invited": lazy("sent a portal invitation"),
    "portal.enabled": lazy("changed portal access"),
    "document.uploaded": lazy("uploaded a document"),
    "document.renamed": lazy("renamed a document"),
    "document.shared": lazy("changed a document's sharing"),
    "document.clinical": lazy("marked a document clinical"),
    "document.not_clinical": lazy("marked a document not clinical"),
    "document.deleted": lazy("deleted a document"),
    "task.created": lazy("created a task"),
    "task.done": lazy("completed a task"),
    "task.reopened": lazy("reopened a task"),
    "conversation.created": lazy("started a conversation"),
    "conversation.participants_added": lazy("added people to a conversation"),
    "message.deleted": lazy("deleted an unread message"),
    "appointment.created": lazy("booked a session"),
    "appointment.attendance": lazy("changed a session's attendance"),
    "appointment.deleted": lazy("deleted a session"),
    "offer.waitlist_joined": lazy("asked to be alerted of an earlier slot"),
    "offer.waitlist_left": lazy("stopped the earlier-slot alerts"),
    "offer.sent": lazy("offered an earlier slot"),
    "offer.accepted": lazy("accepted an earlier slot (the appointment moved)"),
    "offer.declined": lazy("declined an earlier slot"),
    "offer.withdrawn": lazy("withdrew an earlier-slot offer (the slot was taken)"),
    "note.created": lazy("started a session note"),
    "note.updated": lazy("changed a draft note"),
    "note.signed": lazy("signed a session note"),
    "note.addendum": lazy("added an addendum"),
    "note.cosigned": lazy("countersigned a session note"),
    "read.file": lazy("opened the file"),
    "read.clinical": lazy("read the clinical details"),
    "read.note": lazy("read a session note"),
    "read.document": lazy("downloaded a document"),
}


# What an email or SMS was for, as the Logs tab says it.
PURPOSE_LABELS: dict[str, str] = {
    "reminder": lazy("Reminder"),
    "confirmation": lazy("Confirmation"),
    "appointment.confirmation": lazy("Confirmation"),
    "booking.practitioner": lazy("Online booking (to the practitioner)"),
    "message.notice": lazy("New message notice"),
    "invoice": lazy("Invoice"),
    "offer": lazy("Offer"),
}


def describe(entry: AuditEntry) -> str:
    label = ACTION_LABELS.get(entry.action)
    text = gettext(label) if label else entry.action
    detail = entry.detail or {}
    if "fields" in detail:
        text += f" ({', '.join(detail['fields'])})"
    elif "from" in detail and "to" in detail:
        text += f" ({detail['from']} → {detail['to']})"
    return text


def shown_detail(entry: AuditEntry) -> dict[str, Any]:
    return {k: v for k, v in (entry.detail or {}).items() if k in SHOWN_DETAIL}


async def addresses_of(client: Client) -> set[str]:
    """Where messages to the client or their circle of care go: their emails and phones,
    their portal account's email, their alternate contacts' (as stored, compared lowercase)."""
    alternates = await AlternateContact.filter(client_id=client.id).values_list("id", "email")
    found = [client.email or "", client.phone or ""]
    found += [str(email) for _id, email in alternates]
    found += await EmailAddress.filter(client_id=client.id).values_list("address", flat=True)  # type: ignore[arg-type]
    found += await PhoneNumber.filter(  # type: ignore[arg-type]
        Q(client_id=client.id) | Q(alternate_contact_id__in=[i for i, _e in alternates])
    ).values_list("number", flat=True)
    found += await PortalAccount.filter(client_id=client.id).values_list("email", flat=True)  # type: ignore[arg-type]
    return _normal(found)


async def _staff_addresses(practice_id: int) -> set[str]:
    """The practice's staff emails and notice mobiles (a booking or message notice to the
    practitioner is filed under the client too)."""
    staff = await StaffUser.filter(practice_id=practice_id).values_list("id", "email")
    mobiles = await PractitionerSms.filter(practitioner_id__in=[i for i, _e in staff]).values_list(
        "mobile", flat=True
    )
    return _normal([str(e) for _i, e in staff] + [str(m) for m in mobiles])


def _normal(found: list[Any]) -> set[str]:
    return {str(a).strip().lower() for a in found if a and str(a).strip()}


async def file_logs(
    client: Client, *, clinical: bool, to_staff: bool = False, latest: int | None = None
) -> tuple[list[OutboxMessage], list[AuditEntry]]:
    """What was sent about the client, newest first: to the client and their circle (and
    with ``to_staff``, to the practice's staff), never to another client (a linked person's
    notice is filed under the conversation's client); and the file's audit entries. Without
    ``clinical``, neither says that a questionnaire raised a safety alert. ``latest``: looks
    at only the latest this many messages and twice as many audit entries (a page); all of
    them by default (the export)."""
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
    return sent, [e for e in await audit if clinical or e.action not in CLINICAL_ACTIONS]


async def client_logs(client: Client, *, clinical: bool, reads: bool = True) -> dict[str, Any]:
    sent, entries = await file_logs(client, clinical=clinical, to_staff=True, latest=LIMIT)
    sessions = [e for e in entries if e.object_type == "appointment"]
    activity = [e for e in entries if e.object_type != "appointment" and (reads or not e.is_read)]
    return {
        "sent": sent,
        "purposes": {k: gettext(v) for k, v in PURPOSE_LABELS.items()},
        "session_log": [(e, describe(e)) for e in sessions[:LIMIT]],
        "activity": [(e, describe(e)) for e in activity[:LIMIT]],
        "show_reads": reads,
    }
