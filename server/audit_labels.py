"""How the audit trail's codes read on pages: what was done (a sentence fragment after the
actor's name, "Alice Mercier signed a session note"), to what kind of object, and what an
email or SMS was for. Shared by the client file's Logs tab and the owner's audit trail.

The codes stay in the database as the actions write them; only their display is translated.
A code missing here still reads as words ("invoice.line_added" -> "invoice line added").
"""

from __future__ import annotations

from typing import Any

from server.i18n import gettext, lazy

ACTION_LABELS: dict[str, str] = {
    "account.locale_changed": lazy("changed their language"),
    "appointment.created": lazy("booked a session"),
    "appointment.attendance": lazy("changed a session's attendance"),
    "appointment.deleted": lazy("deleted a session"),
    "auth.login": lazy("signed in"),
    "auth.logout": lazy("signed out"),
    "auth.logout_everywhere": lazy("signed out on every device"),
    "auth.password_changed": lazy("changed their password"),
    "auth.password_set": lazy("set a new password"),
    "auth.reset_requested": lazy("asked for a password reset"),
    "availability.added": lazy("added opening hours"),
    "availability.updated": lazy("changed opening hours"),
    "availability.removed": lazy("removed opening hours"),
    "billing.default_services": lazy("changed the default services"),
    "billing.profile_updated": lazy("changed the billing settings"),
    "calendar_feed.renewed": lazy("renewed the calendar feed link"),
    "circle.contact_added": lazy("added a contact to the circle of care"),
    "circle.contact_updated": lazy("changed a contact of the circle of care"),
    "circle.contact_removed": lazy("removed a contact from the circle of care"),
    "client.created": lazy("opened the file"),
    "client.contact_updated": lazy("changed contact details"),
    "client.clinical_updated": lazy("changed clinical details"),
    "client.account_updated": lazy("changed account details"),
    "client.reminders_updated": lazy("changed their reminders"),
    "client.therapist_changed": lazy("changed the therapist"),
    "client.discount_set": lazy("set a discount"),
    "client.discount_removed": lazy("removed a discount"),
    "client.linked": lazy("linked an account"),
    "client.unlinked": lazy("unlinked an account"),
    "client.payment_method_added": lazy("added a payment method"),
    "client.payment_method_removed": lazy("removed a payment method"),
    "client.exported": lazy("exported the file"),
    "consultation.created": lazy("added a consultation to bill"),
    "consultation.billable": lazy("changed whether a consultation is billed"),
    "contact.created": lazy("added a contact"),
    "contact.updated": lazy("changed a contact"),
    "contact.removed": lazy("removed a contact"),
    "conversation.created": lazy("started a conversation"),
    "conversation.participants_added": lazy("added people to a conversation"),
    "document.uploaded": lazy("uploaded a document"),
    "document.renamed": lazy("renamed a document"),
    "document.shared": lazy("changed a document's sharing"),
    "document.unshared": lazy("changed a document's sharing"),
    "document.clinical": lazy("marked a document clinical"),
    "document.not_clinical": lazy("marked a document not clinical"),
    "document.deleted": lazy("deleted a document"),
    "form.created": lazy("created a form"),
    "form.renamed": lazy("renamed a form"),
    "form.edited": lazy("changed a form's questions"),
    "form.archived": lazy("archived a form"),
    "form.restored": lazy("restored a form"),
    "form.sent": lazy("sent a form"),
    "form.reminded": lazy("sent a reminder about a form"),
    "form.scheduled": lazy("scheduled a form"),
    "form.schedule_stopped": lazy("stopped a form's schedule"),
    "form.draft_saved": lazy("saved a form to finish later"),
    "form.completed": lazy("completed a form"),
    "form.cancelled": lazy("cancelled a form"),
    "invoice.created": lazy("created an invoice"),
    "invoice.updated": lazy("changed a draft invoice"),
    "invoice.line_added": lazy("added a line to an invoice"),
    "invoice.line_removed": lazy("removed a line from an invoice"),
    "invoice.finalized": lazy("finalized an invoice"),
    "invoice.sent": lazy("sent an invoice"),
    "invoice.credited": lazy("issued a credit note"),
    "invoice.deleted": lazy("deleted a draft invoice"),
    "location.created": lazy("added a location"),
    "location.updated": lazy("changed a location"),
    "measure.sent": lazy("sent a questionnaire"),
    "measure.reminded": lazy("sent a reminder about a questionnaire"),
    "measure.scheduled": lazy("scheduled a questionnaire"),
    "measure.schedule_stopped": lazy("stopped a questionnaire's schedule"),
    "measure.completed": lazy("completed a questionnaire"),
    "measure.cancelled": lazy("cancelled a questionnaire"),
    "measure.alert": lazy("raised a safety alert in a questionnaire"),
    "message.deleted": lazy("deleted an unread message"),
    "note.created": lazy("started a session note"),
    "note.updated": lazy("changed a draft note"),
    "note.signed": lazy("signed a session note"),
    "note.addendum": lazy("added an addendum"),
    "note.cosigned": lazy("countersigned a session note"),
    "offer.waitlist_joined": lazy("asked to be alerted of an earlier slot"),
    "offer.waitlist_left": lazy("stopped the earlier-slot alerts"),
    "offer.sent": lazy("offered an earlier slot"),
    "offer.accepted": lazy("accepted an earlier slot (the appointment moved)"),
    "offer.declined": lazy("declined an earlier slot"),
    "offer.withdrawn": lazy("withdrew an earlier-slot offer (the slot was taken)"),
    "payment.recorded": lazy("recorded a payment"),
    "payment.refunded": lazy("recorded a refund"),
    "portal.created": lazy("created the portal account"),
    "portal.invited": lazy("sent a portal invitation"),
    "portal.invitation_accepted": lazy("accepted the portal invitation"),
    "portal.enabled": lazy("changed portal access"),
    "portal.disabled": lazy("changed portal access"),
    "practice.settings_changed": lazy("changed the practice's settings"),
    "read.file": lazy("opened the file"),
    "read.clinical": lazy("read the clinical details"),
    "read.note": lazy("read a session note"),
    "read.measures": lazy("read questionnaire answers"),
    "read.document": lazy("downloaded a document"),
    "reminders.settings_updated": lazy("changed the reminder settings"),
    "reminders.templates_updated": lazy("changed the reminder texts"),
    "service.created": lazy("added a service"),
    "service.updated": lazy("changed a service"),
    "service_category.created": lazy("added a service category"),
    "service_category.updated": lazy("changed a service category"),
    "sms.credits_added": lazy("added SMS credits"),
    "sms.practitioner_updated": lazy("changed a practitioner's SMS settings"),
    "sms.template_saved": lazy("saved an SMS template"),
    "sms.template_deleted": lazy("deleted an SMS template"),
    "staff.created": lazy("added a team member"),
    "staff.activated": lazy("reactivated a team member"),
    "staff.deactivated": lazy("deactivated a team member"),
    "staff.updated": lazy("changed a team member's role or supervisor"),
    "tag.created": lazy("created a tag"),
    "task.created": lazy("created a task"),
    "task.done": lazy("completed a task"),
    "task.reopened": lazy("reopened a task"),
    "task.handed_over": lazy("handed over the task of someone who left"),
    "task.reassigned": lazy("handed over a task its assignee may no longer see"),
    "time_off.added": lazy("added time off"),
    "time_off.updated": lazy("changed time off"),
    "time_off.removed": lazy("removed time off"),
}

# The kinds of object an entry is about, as the audit trail's "Object" column names them.
OBJECT_LABELS: dict[str, str] = {
    "account": lazy("Account"),
    "alternate_contact": lazy("Alternate contact"),
    "appointment": lazy("Session"),
    "availability": lazy("Opening hours"),
    "billing_profile": lazy("Billing settings"),
    "client": lazy("Client file"),
    "consultation": lazy("Consultation"),
    "contact": lazy("Contact"),
    "conversation": lazy("Conversation"),
    "document": lazy("Document"),
    "earlier_slot": lazy("Earlier-slot alert"),
    "earlier_slot_offer": lazy("Earlier-slot offer"),
    "form_assignment": lazy("Form sent"),
    "form_schedule": lazy("Form schedule"),
    "form_template": lazy("Form"),
    "invoice": lazy("Invoice"),
    "location": lazy("Location"),
    "measure_administration": lazy("Questionnaire sent"),
    "measure_schedule": lazy("Questionnaire schedule"),
    "message": lazy("Message"),
    "payment_method": lazy("Payment method"),
    "portal_account": lazy("Portal account"),
    "practice": lazy("Practice"),
    "service": lazy("Service"),
    "service_category": lazy("Service category"),
    "service_discount": lazy("Discount"),
    "session": lazy("Sign-in"),
    "session_note": lazy("Session note"),
    "sms_template": lazy("SMS template"),
    "staff_user": lazy("Team member"),
    "tag": lazy("Tag"),
    "task": lazy("Task"),
    "time_off": lazy("Time off"),
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
    "offer.sent": lazy("Earlier slot offered"),
    "offer.accepted": lazy("Earlier slot accepted"),
    "form_sent": lazy("Form to fill in"),
    "form_reminder": lazy("Form reminder"),
    "measure_sent": lazy("Questionnaire to fill in"),
    "measure_reminder": lazy("Questionnaire reminder"),
    "measure_alert": lazy("Safety alert"),
    "portal_invitation": lazy("Portal invitation"),
    "portal_moved": lazy("Portal account moved to another address"),
    "staff_invitation": lazy("Team invitation"),
    "password_reset": lazy("Password reset"),
    "sms.credits": lazy("SMS credits running out"),
}


# The fields an entry says were changed ({"fields": [...]}: the client file's tabs, a circle
# contact, a contact), named as their forms name them.
FIELD_LABELS: dict[str, str] = {
    "first_name": lazy("First name"),
    "middle_name": lazy("Middle name"),
    "last_name": lazy("Last name"),
    "preferred_name": lazy("Preferred name"),
    "date_of_birth": lazy("Date of birth"),
    "address_line1": lazy("Address"),
    "address_line2": lazy("Address (continued)"),
    "postal_code": lazy("Postal code"),
    "city": lazy("City"),
    "country": lazy("Country"),
    "status": lazy("Status"),
    "tags": lazy("Tags"),
    "phones": lazy("Phone numbers"),
    "phone": lazy("Phone numbers"),
    "emails": lazy("Emails"),
    "email": lazy("Email"),
    "referral": lazy("Referral"),
    "diagnosis_keywords": lazy("Diagnosis keywords (up to four)"),
    "clinical_comments": lazy("Comments"),
    "payment_terms": lazy("Payment terms"),
    "health_id": lazy("Health identification number"),
    "insurance_company": lazy("Insurance company"),
    "account_comments": lazy("Account comments"),
    "name": lazy("Name"),
    "reminder_email_hours": lazy("Email reminder"),
    "reminder_sms_hours": lazy("SMS reminder"),
    "is_emergency": lazy("Emergency contact"),
    "role": lazy("Role"),
    "supervisor_id": lazy("Supervisor"),
    "portal_enabled": lazy("May message clients on the portal"),
}


def field_label(name: str) -> str:
    return _label(FIELD_LABELS, name)


def readable_code(code: str) -> str:
    """A code no label names, still as words: "invoice.line_added" -> "invoice line added"."""
    return code.replace(".", " ").replace("_", " ").strip()


def _label(labels: dict[str, str], code: str) -> str:
    label = labels.get(code)
    return gettext(label) if label else readable_code(code)


def action_label(code: str) -> str:
    return _label(ACTION_LABELS, code)


def object_label(kind: str) -> str:
    return _label(OBJECT_LABELS, kind)


def purpose_label(code: str) -> str:
    return _label(PURPOSE_LABELS, code)


def actor_label(entry: Any) -> str:
    """Who did it: the name kept on the entry, or, for what Cabinet did by itself (a
    scheduled send, a reminder), words rather than the stored "system"."""
    if entry.actor_kind == "system":
        return gettext(lazy("Cabinet (automatic)"))
    return str(entry.actor_label)


def state_label(value: object) -> str:
    """A "from → to" detail's end: an attendance in words ("scheduled" -> "Scheduled"),
    anything else (an appointment id) as it is."""
    from models.agenda import Attendance
    from server.web import LABELS  # not at import: server.web's filters come from here

    try:
        return gettext(LABELS[Attendance(str(value))])
    except (ValueError, KeyError):
        return str(value)


def describe(entry: Any) -> str:
    """The entry as a sentence fragment after its actor's name, with the detail it shows."""
    text = action_label(entry.action)
    detail = entry.detail or {}
    if "fields" in detail:
        text += f" ({', '.join(field_label(str(f)) for f in detail['fields'])})"
    elif "from" in detail and "to" in detail:
        text += f" ({state_label(detail['from'])} → {state_label(detail['to'])})"
    return text
