"""A client's whole record in one zip: ``record.json``, ``fhir.json`` and the documents.

``record.json`` holds everything the file holds, in Cabinet's own words; ``fhir.json`` the
same record as an HL7 FHIR R4 Bundle (server/fhir.py) for another system to import;
``documents/`` the documents' bytes; ``invoices/`` the PDF of each finalized invoice and
credit note in ``record.json``, drawn as the invoice's download draws it. It is what a
practice hands over when a client asks for their data or moves to another practitioner.

The export shows what the caller may see, and says what it leaves out: clinical details and
session notes only for those who may read them (and a draft's text only for its author),
conversations only those the caller takes part in (the messaging rule: nobody reads a
conversation they are not in). The logs are those of the file's Logs tab: what was sent
about the client (subjects, never bodies, which may hold sign-in links) and the audit
entries about them. Billing: the invoices and credit
notes on the client's account or addressed to them that the caller may see
(``visible_invoices``: a therapist's caseload, own name and own making), drafts included and
marked, and the money on the client's account. Producing the export is recorded as a read of the file.

Format version 2 filled ``invoices`` (an empty list in version 1) and added
``money_on_account``; docs/billing.md describes both. Version 3 gave each session note a
``state`` ("draft" or "signed"), ``template`` and ``sections`` null for a draft the caller
did not write, and ``session_removed`` for a note whose session left the agenda.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from tortoise.expressions import Q

from models.accounts import PortalAccount, Practice, StaffRole, StaffUser
from models.agenda import Appointment
from models.billing import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, Payment
from models.clients import (
    AlternateContact,
    Client,
    Document,
    EmailAddress,
    PaymentMethod,
    PhoneNumber,
)
from models.messaging import Conversation, Message, Participant
from models.notes import NoteAddendum, SessionNote
from models.tasks import Task
from server import fhir, storage
from server.access import can_see_clinical, visible_invoices, visible_links
from server.actions import audit
from server.actions.billing import client_credit, money
from server.auth.sessions import Caller
from server.billing_pdf import InvoiceDoc, invoice_doc, invoice_filename, parties, render_invoice
from server.i18n import current_time_zone, ngettext
from server.i18n import gettext as _
from server.queries.documents import visible_documents
from server.queries.logs import file_logs, shown_detail
from server.queries.record_measures import forms_part, measures_part
from server.settings import get_settings

FORMAT = "cabinet-client-export"
FORMAT_VERSION = 3
CHUNK = 64 * 1024


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _fixed(value: Decimal) -> str:
    # Money (and quantities, tax rates) as the JSON API writes it: a decimal string with two
    # places ("70.00"), never a float.
    return str(money(value))


def _person(user: StaffUser | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "name": user.full_name, "role": user.role.value}


def _address(obj: Any) -> dict[str, str]:
    return {
        "line1": obj.address_line1,
        "line2": obj.address_line2,
        "postal_code": obj.postal_code,
        "city": obj.city,
        "country": obj.country,
    }


def _phone(p: PhoneNumber) -> dict[str, Any]:
    return {"number": p.number, "label": p.label, "is_primary": p.is_primary, "for_sms": p.for_sms}


def archive_name(document: Document) -> str:
    # clean_name() already keeps slashes out of names; this guards older rows all the same.
    safe = document.name.replace("/", "_").replace("\\", "_")
    return f"documents/{document.id}-{safe}"


@dataclass
class ExportFile:
    """The zip, already unlinked from the file system: it disappears once closed."""

    file: IO[bytes]
    size: int
    filename: str

    def chunks(self) -> Iterator[bytes]:
        try:
            self.file.seek(0)
            while block := self.file.read(CHUNK):
                yield block
        finally:
            self.file.close()


# --- gathering --------------------------------------------------------------------------------


async def _client_part(client: Client) -> dict[str, Any]:
    therapist = await StaffUser.get_or_none(id=client.therapist_id)  # type: ignore[attr-defined]
    phones = await PhoneNumber.filter(client_id=client.id).order_by("-is_primary", "id")
    emails = await EmailAddress.filter(client_id=client.id).order_by("-is_primary", "id")
    return {
        "id": client.id,
        "first_name": client.first_name,
        "middle_name": client.middle_name,
        "last_name": client.last_name,
        "preferred_name": client.preferred_name,
        "date_of_birth": _iso(client.date_of_birth),
        "status": client.status.value,
        "locale": client.locale,
        "email": client.email,
        "phone": client.phone,
        "address": _address(client),
        "phones": [_phone(p) for p in phones],
        "emails": [
            {"address": e.address, "label": e.label, "is_primary": e.is_primary} for e in emails
        ],
        "reminders": {
            "email_hours_before": client.reminder_email_hours,
            "sms_hours_before": client.reminder_sms_hours,
        },
        "tags": [t.name for t in await client.tags.all().order_by("name")],
        "therapist": _person(therapist),
        "created_at": _iso(client.created_at),
        "updated_at": _iso(client.updated_at),
    }


async def _clinical_part(client: Client) -> dict[str, Any]:
    therapist = await StaffUser.get_or_none(id=client.therapist_id)  # type: ignore[attr-defined]
    supervisor = (
        await StaffUser.get_or_none(id=therapist.supervisor_id)  # type: ignore[attr-defined]
        if therapist
        else None
    )
    return {
        "referral": client.referral,
        "diagnosis_keywords": client.diagnosis_keywords or [],
        "comments": client.clinical_comments,
        "supervisor": _person(supervisor),
    }


async def _account_part(client: Client) -> dict[str, Any]:
    methods = await PaymentMethod.filter(client_id=client.id, deleted_at=None).order_by("id")
    account = await PortalAccount.get_or_none(client_id=client.id)
    return {
        "payment_terms": client.payment_terms.value,
        "health_id": client.health_id,
        "insurance_company": client.insurance_company,
        "comments": client.account_comments,
        "payment_methods": [
            {"kind": m.kind.value, "description": m.description, "added_at": _iso(m.created_at)}
            for m in methods
        ],
        "portal_account": (
            {
                "email": account.email,
                "active": account.is_active,
                "invited_at": _iso(account.invited_at),
                "activated_at": _iso(account.activated_at),
            }
            if account
            else None
        ),
    }


async def _circle_part(caller: Caller, client: Client) -> dict[str, Any]:
    contacts = await AlternateContact.filter(client_id=client.id, deleted_at=None).order_by("id")
    phones: dict[int, list[PhoneNumber]] = {}
    for p in await PhoneNumber.filter(alternate_contact_id__in=[c.id for c in contacts]).order_by(
        "-is_primary", "id"
    ):
        phones.setdefault(p.alternate_contact_id, []).append(p)  # type: ignore[attr-defined]
    # Links to clients the caller may see only, as on the circle tab.
    links = (
        await (await visible_links(caller))
        .filter(client_id=client.id)
        .order_by("id")
        .prefetch_related("linked_client")
    )
    return {
        "alternate_contacts": [
            {
                "id": c.id,
                "first_name": c.first_name,
                "middle_name": c.middle_name,
                "last_name": c.last_name,
                "relationship": c.relationship,
                "is_emergency_contact": c.is_emergency,
                "date_of_birth": _iso(c.date_of_birth),
                "email": c.email,
                "phones": [_phone(p) for p in phones.get(c.id, [])],
                "address": _address(c),
                "reminders": {
                    "email_hours_before": c.reminder_email_hours,
                    "sms_hours_before": c.reminder_sms_hours,
                },
                "contact_id": c.contact_id,  # type: ignore[attr-defined]
            }
            for c in contacts
        ],
        # Another client of the practice; their own details belong to their own file.
        "linked_accounts": [
            {
                "client_id": link.linked_client.id,
                "first_name": link.linked_client.first_name,
                "last_name": link.linked_client.last_name,
                "relationship": link.relationship.value,
                "linked_at": _iso(link.created_at),
            }
            for link in links
        ],
    }


async def _sessions_part(client: Client) -> list[dict[str, Any]]:
    appointments = (
        await Appointment.filter(client_id=client.id, deleted_at=None)
        .order_by("starts_at", "id")
        .prefetch_related("practitioner", "service", "location")
    )
    return [
        {
            "id": a.id,
            "starts_at": _iso(a.starts_at),
            "ends_at": _iso(a.ends_at),
            "attendance": a.attendance.value,
            "service": {
                "id": a.service.id,
                "name": a.service.name,
                "duration_minutes": a.service.duration_minutes,
                "price": str(a.service.price),
            },
            "practitioner": _person(a.practitioner),
            "location": (
                {"id": a.location.id, "name": a.location.name, "address": a.location.address}
                if a.location
                else None
            ),
            "is_group": a.is_group,
            "booked_at": _iso(a.created_at),
        }
        for a in appointments
    ]


async def _messages_part(caller: Caller, client: Client) -> tuple[list[dict[str, Any]], int]:
    """The client's conversations the caller takes part in, and how many were left out."""
    assert caller.staff is not None
    conversations = await Conversation.filter(client_id=client.id).order_by("id")
    mine = set(
        await Participant.filter(
            conversation_id__in=[c.id for c in conversations], staff_user_id=caller.staff.id
        ).values_list("conversation_id", flat=True)
    )
    shown = [c for c in conversations if c.id in mine]
    out = []
    for conversation in shown:
        participants = await Participant.filter(conversation_id=conversation.id).order_by("id")
        accounts = {
            a.id: a.client_id  # type: ignore[attr-defined]
            for a in await PortalAccount.filter(
                id__in=[p.portal_account_id for p in participants if p.portal_account_id]  # type: ignore[attr-defined]
            )
        }
        messages = await Message.filter(conversation_id=conversation.id, deleted_at=None).order_by(
            "id"
        )
        out.append(
            {
                "id": conversation.id,
                "subject": conversation.subject,
                "group_name": conversation.group_name,
                "created_at": _iso(conversation.created_at),
                "participants": [
                    {
                        "id": p.id,
                        "name": p.display_name,
                        "role": p.role.value,
                        "staff_id": p.staff_user_id,  # type: ignore[attr-defined]
                        "client_id": accounts.get(p.portal_account_id),  # type: ignore[attr-defined]
                        "joined_at": _iso(p.created_at),
                    }
                    for p in participants
                ],
                "messages": [
                    {
                        "id": m.id,
                        "sender_participant_id": m.sender_id,  # type: ignore[attr-defined]
                        "sent_at": _iso(m.created_at),
                        "body": m.body,
                    }
                    for m in messages
                ],
            }
        )
    return out, len(conversations) - len(shown)


async def _documents_part(
    client: Client, see_clinical: bool
) -> tuple[list[dict[str, Any]], list[Document]]:
    documents = (
        await visible_documents(client.id, clinical=see_clinical)
        .order_by("id")
        .prefetch_related("uploaded_by")
    )
    rows = [
        {
            "id": d.id,
            "name": d.name,
            "content_type": d.content_type,
            "size": d.size,
            "sha256": d.sha256,
            "shared_with_client": d.shared_with_client,
            "clinical": d.clinical,
            "uploaded_by": _person(d.uploaded_by),
            "uploaded_at": _iso(d.created_at),
            "path": archive_name(d),
        }
        for d in documents
    ]
    return rows, list(documents)


async def _tasks_part(client: Client) -> list[dict[str, Any]]:
    tasks = (
        await Task.filter(client_id=client.id, deleted_at=None)
        .order_by("id")
        .prefetch_related("assignee", "created_by", "done_by")
    )
    return [
        {
            "id": t.id,
            "note": t.note,
            "assignee": _person(t.assignee),
            "due_date": _iso(t.due_date),
            "created_by": _person(t.created_by),
            "created_at": _iso(t.created_at),
            "done_at": _iso(t.done_at),
            "done_by": _person(t.done_by),
            "from_message_id": t.source_message_id,  # type: ignore[attr-defined]
        }
        for t in tasks
    ]


async def _notes_part(caller: Caller, client: Client) -> list[dict[str, Any]]:
    """Session notes with their addenda. Drafts are there, marked ``state: "draft"``: with
    their text for their author only; others' with their author and no text, as the note
    page shows them (a draft is its author's until signed). A note whose session was removed
    from the agenda (possible before 3b6aaec) is there too, marked ``session_removed``: the
    record is the client's whatever became of the booking."""
    assert caller.staff is not None
    notes = (
        await SessionNote.filter(appointment__client_id=client.id)
        .order_by("appointment__starts_at", "id")
        .prefetch_related("author", "cosigned_by", "appointment")
    )
    addenda: dict[int, list[NoteAddendum]] = {}
    for a in (
        await NoteAddendum.filter(note_id__in=[n.id for n in notes])
        .order_by("id")
        .prefetch_related("author")
    ):
        addenda.setdefault(a.note_id, []).append(a)  # type: ignore[attr-defined]
    rows = []
    for n in notes:
        withheld = n.signed_at is None and n.author_id != caller.staff.id  # type: ignore[attr-defined]
        rows.append(
            {
                "id": n.id,
                "session_id": n.appointment_id,  # type: ignore[attr-defined]
                "session_removed": n.appointment.deleted_at is not None,
                "state": "draft" if n.signed_at is None else "signed",
                "template": None if withheld else n.template.value,
                "sections": None if withheld else n.sections,
                "author": _person(n.author),
                "created_at": _iso(n.created_at),
                "updated_at": _iso(n.updated_at),
                "signed_at": _iso(n.signed_at),
                "cosigned_by": _person(n.cosigned_by),
                "cosigned_at": _iso(n.cosigned_at),
                "addenda": [
                    {"author": _person(a.author), "text": a.text, "added_at": _iso(a.created_at)}
                    for a in addenda.get(n.id, [])
                ],
            }
        )
    return rows


async def _logs_part(client: Client, see_clinical: bool) -> dict[str, list[dict[str, Any]]]:
    # Only what went to the client or their circle, and the audit details the Logs tab
    # shows (server/queries/logs.py): a notice to a linked person's address, or the names in
    # a conversation's "added" entry, name people the caller may not be allowed to see.
    sent, entries = await file_logs(client, clinical=see_clinical)
    return {
        "sent": [
            {
                "channel": m.channel,
                "to": m.to,
                "subject": m.subject,
                "purpose": m.purpose,
                "status": m.status.value,
                "queued_at": _iso(m.created_at),
                "sent_at": _iso(m.sent_at),
            }
            for m in reversed(sent)
        ],
        "audit": [
            {
                "at": _iso(e.created_at),
                "actor_kind": e.actor_kind,
                "actor_id": e.actor_id,
                "actor": e.actor_label,
                "action": e.action,
                "object_type": e.object_type,
                "object_id": e.object_id,
                "is_read": e.is_read,
                "detail": shown_detail(e),
                "ip": e.ip,
            }
            for e in reversed(entries)
        ],
    }


def _payment(p: Payment) -> dict[str, Any]:
    return {
        "id": p.id,
        "kind": p.kind.value,
        "method": p.method.value,
        "paid_on": _iso(p.paid_on),
        # Signed: a refund, credit used or credit moved out is below zero.
        "amount": _fixed(p.amount),
        "reference": p.reference,
        # The payment this row split from: the part of it kept as credit, or the credit it
        # used or moved.
        "part_of": p.parent_id,  # type: ignore[attr-defined]
    }


def _pdf_name(invoice: Invoice, taken: set[str]) -> str:
    # The download's file name. Numbers are unique per issuer only, and a prefix is taken as
    # typed, so two issuers may both print "F-2026-0001": the second gets its id as well.
    name = "invoices/" + invoice_filename(invoice).replace("\\", "-")
    if name in taken:
        name = f"{name.removesuffix('.pdf')}-{invoice.id}.pdf"
    taken.add(name)
    return name


async def _invoices_part(caller: Caller, client: Client) -> list[dict[str, Any]]:
    """The invoices and credit notes on the client's account or addressed to them (as the
    portal lists them) that the caller may see, oldest first. Drafts are in, marked: they
    are on the file's Billing tab and hold the client's sessions as billed so far (the export
    has note drafts too), but they have no number, no PDF and nothing is due on them. Issuer,
    payer and client are as printed: a finalized one's copies, a draft's as they are now."""
    invoices = (
        await (await visible_invoices(caller))
        .filter(Q(client_id=client.id) | Q(payer_client_id=client.id))
        .order_by("id")
    )
    ids = [i.id for i in invoices]
    lines: dict[int, list[InvoiceLine]] = {}
    for line in await InvoiceLine.filter(invoice_id__in=ids).order_by("position", "id"):
        lines.setdefault(line.invoice_id, []).append(line)  # type: ignore[attr-defined]
    payments: dict[int, list[Payment]] = {}
    for p in await Payment.filter(invoice_id__in=ids).order_by("paid_on", "id"):
        payments.setdefault(p.invoice_id, []).append(p)  # type: ignore[attr-defined]
    credited_ids = [i.credited_invoice_id for i in invoices if i.credited_invoice_id]  # type: ignore[attr-defined]
    # Printed on the credit note ("Cancels"), whoever may see the invoice it cancels.
    cancels = dict(await Invoice.filter(id__in=credited_ids).values_list("id", "number"))
    taken: set[str] = set()
    out = []
    for invoice in invoices:
        who = await parties(invoice)
        finalized = invoice.status is InvoiceStatus.FINALIZED
        is_invoice = invoice.kind is InvoiceKind.INVOICE
        out.append(
            {
                "id": invoice.id,
                "number": invoice.number,
                "kind": invoice.kind.value,
                "status": invoice.status.value,
                # On the client's own account, or addressed to them for someone else's.
                "this_client_is": "client" if invoice.client_id == client.id else "payer",  # type: ignore[attr-defined]
                "issued_on": _iso(invoice.issued_on),
                "due_on": _iso(invoice.due_on) if is_invoice else None,
                "cancels": cancels.get(invoice.credited_invoice_id),  # type: ignore[attr-defined]
                "issuer": {
                    "name": who.issuer_name,
                    "address": who.issuer_address,
                    "registration": who.issuer_registration,
                    "email": who.issuer_email,
                    "footer": who.footer,
                },
                # As printed: the payer's email is not, nor where the invoice was sent.
                "payer": {
                    "kind": invoice.payer_kind.value,
                    "name": invoice.payer_name,
                    "address": invoice.payer_address,
                },
                "client_name": who.client_name,
                "currency": invoice.currency,
                "lines": [
                    {
                        "date": _iso(line.on_date),
                        "description": line.description,
                        "quantity": _fixed(line.quantity),
                        "unit_price": _fixed(line.unit_price),
                        "discount": _fixed(line.discount),
                        "tax_rate": _fixed(line.tax_rate),
                        "amount": _fixed(line.amount),
                        "tax": _fixed(line.tax),
                    }
                    for line in lines.get(invoice.id, [])
                ],
                "subtotal": _fixed(invoice.subtotal),
                "discount_total": _fixed(invoice.discount_total),
                "tax_total": _fixed(invoice.tax_total),
                "total": _fixed(invoice.total),
                "paid": _fixed(invoice.paid),
                "credited": _fixed(invoice.credited),
                # What the PDF prints: a finalized invoice's balance; none on a credit note
                # or a draft.
                "balance_due": _fixed(invoice.balance) if finalized and is_invoice else None,
                "tax_exemption": invoice.tax_exemption,
                "notes": invoice.notes,
                "payments": [_payment(p) for p in payments.get(invoice.id, [])],
                "pdf": _pdf_name(invoice, taken) if finalized else None,
            }
        )
    return out


async def _money_on_account_part(client: Client, currency: str) -> dict[str, Any]:
    """The client's payment rows without invoice (overpayments kept, credit used or moved
    from a credited invoice, refunds), which add up to their credit. Whoever may open the
    file sees them (server/access.py's access_payment)."""
    rows = await Payment.filter(client_id=client.id, invoice_id=None).order_by("paid_on", "id")
    return {
        "currency": currency,
        "credit": _fixed(await client_credit(client.id)),
        "payments": [_payment(p) for p in rows],
    }


async def client_record(caller: Caller, client: Client) -> tuple[dict[str, Any], list[Document]]:
    """The record as the caller may see it, and the documents whose bytes go with it.

    Precondition: ``client`` came through access_client for this caller (staff only).
    """
    assert caller.staff is not None
    practice = await Practice.get(id=caller.practice_id)
    see_clinical = can_see_clinical(caller, practice)
    conversations, left_out = await _messages_part(caller, client)
    document_rows, documents = await _documents_part(client, see_clinical)
    remarks: dict[str, str] = {}
    if caller.staff.role is StaffRole.THERAPIST:
        # Said to every therapist, whatever the file holds: a count of what was left out
        # would tell them that this client pays for someone in a colleague's caseload.
        remarks["invoices"] = _(
            "Invoices this client pays for other clients are included only if you may see "
            "those clients' files or the invoices are in your name; an owner's or the front "
            "desk's export includes them all."
        )
    if not see_clinical:
        remarks["clinical"] = _(
            "Clinical details, session notes and clinical documents are left out: your role "
            "does not show them."
        )
    if left_out:
        remarks["messages"] = ngettext(
            "%(num)s conversation with this client is left out: only its participants may read it.",
            "%(num)s conversations with this client are left out: only their participants "
            "may read them.",
            left_out,
        ) % {"num": left_out}
    record: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": _iso(datetime.now(UTC)),
        "exported_by": _person(caller.staff),
        "practice": {"id": practice.id, "name": practice.name},
        "remarks": remarks,
        "client": await _client_part(client),
        "clinical": await _clinical_part(client) if see_clinical else None,
        "account": await _account_part(client),
        "circle_of_care": await _circle_part(caller, client),
        "sessions": await _sessions_part(client),
        "session_notes": await _notes_part(caller, client) if see_clinical else None,
        "conversations": conversations,
        "invoices": await _invoices_part(caller, client),
        "money_on_account": await _money_on_account_part(client, practice.currency),
        "documents": document_rows,
        "tasks": await _tasks_part(client),
        "measures": await measures_part(client, see_clinical),
        "forms": await forms_part(client, see_clinical),
        "logs": await _logs_part(client, see_clinical),
    }
    if any(n["sections"] is None for n in record["session_notes"] or []):
        remarks["session_notes"] = _(
            "Session notes others are still writing are listed without their text: a draft "
            "is its author's until signed."
        )
    return record, documents


# --- packaging --------------------------------------------------------------------------------


def _sha1_b64(path: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode()


def _write_zip(
    record: dict[str, Any],
    documents: list[Document],
    invoices: list[tuple[str, InvoiceDoc]],
    base_url: str,
    folder: Path,
) -> tuple[IO[bytes], int]:
    present: dict[int, Path] = {}
    for d in documents:
        path = storage.path_of(d.storage_key)
        if path.is_file():
            present[d.id] = path
    for row in record["documents"]:
        found = present.get(row["id"])
        row["missing"] = found is None
        row["sha1_base64"] = _sha1_b64(found) if found else None
    bundle = fhir.client_bundle(record, base_url)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    # An unnamed temporary file: nothing is left on disk once it is closed, even on a crash.
    out = tempfile.TemporaryFile(dir=folder)
    try:
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("record.json", json.dumps(record, ensure_ascii=False, indent=2))
            archive.writestr("fhir.json", json.dumps(bundle, ensure_ascii=False, indent=2))
            for d in documents:
                if d.id in present:
                    archive.write(present[d.id], archive_name(d))
            # Drawn here, off the event loop, one at a time (the thread runs in the request's
            # context: its locale and time zone).
            for name, doc in invoices:
                archive.writestr(name, render_invoice(doc))
        size = out.tell()
    except BaseException:
        out.close()
        raise
    return out, size


async def _invoice_docs(record: dict[str, Any]) -> list[tuple[str, InvoiceDoc]]:
    """What the PDF of each invoice and credit note the record lists with one prints, read
    as its download reads it (server/billing_pdf.py's invoice_pdf), with its name in the zip."""
    names = {row["id"]: row["pdf"] for row in record["invoices"] if row["pdf"]}
    found = await Invoice.filter(id__in=list(names)).order_by("id")
    return [(names[invoice.id], await invoice_doc(invoice)) for invoice in found]


async def export_client(caller: Caller, client: Client, ip: str = "") -> ExportFile:
    """Build the client's export for ``caller`` and record that they took it."""
    record, documents = await client_record(caller, client)
    invoices = await _invoice_docs(record)
    settings = get_settings()
    out, size = await asyncio.to_thread(
        _write_zip,
        record,
        documents,
        invoices,
        settings.public_url,
        settings.data_dir / "exports",
    )
    await audit.record(
        caller,
        "client.exported",
        object_type="client",
        object_id=client.id,
        client_id=client.id,
        ip=ip,
        is_read=True,
        detail={
            "clinical": record["clinical"] is not None,
            "session_notes": len(record["session_notes"] or []),
            "documents": len(documents),
            "conversations": len(record["conversations"]),
            "invoices": len(record["invoices"]),
        },
    )
    today = datetime.now(current_time_zone()).date().isoformat()  # the practice's day
    return ExportFile(out, size, f"cabinet-client-{client.id}-{today}.zip")
