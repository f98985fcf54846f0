"""The client file's logs: what was sent about the client, the history of their sessions,
and who did or looked at what in the file."""

from __future__ import annotations

from typing import Any

from models.audit import AuditEntry
from models.notifications import OutboxMessage
from server.i18n import gettext, lazy

LIMIT = 200

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


async def client_logs(client_id: int, *, reads: bool = True) -> dict[str, Any]:
    sent = await OutboxMessage.filter(client_id=client_id).order_by("-id").limit(LIMIT)
    entries = await AuditEntry.filter(client_id=client_id).order_by("-id").limit(LIMIT * 2)
    sessions = [e for e in entries if e.object_type == "appointment"]
    activity = [e for e in entries if e.object_type != "appointment" and (reads or not e.is_read)]
    return {
        "sent": sent,
        "purposes": {k: gettext(v) for k, v in PURPOSE_LABELS.items()},
        "session_log": [(e, describe(e)) for e in sessions[:LIMIT]],
        "activity": [(e, describe(e)) for e in activity[:LIMIT]],
        "show_reads": reads,
    }
