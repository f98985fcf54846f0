"""Fetch-or-404, scoped to what the caller may see. The only way handlers get objects by id.

A missing id and an id the caller may not see give the same NotFound, so ids reveal
nothing. Therapists see their own caseload and their supervisees'; owners and office
admins see the whole practice; a client sees only their own records. A session's note also
reaches its own clinicians, whoever the client's therapist is now (``access_note``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from tortoise.expressions import Q, Subquery
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models.accounts import PortalAccount, Practice, StaffRole, StaffUser
from models.agenda import Appointment, Location, Service
from models.billing import BillingProfile, Consultation, Invoice, InvoiceStatus, Payment
from models.clients import Client, Contact, Document, LinkedAccount, PaymentMethod
from models.forms import FormAssignment, FormSchedule, FormStatus, FormTemplate
from models.measures import AdministrationStatus, MeasureAdministration, MeasureSchedule
from models.messaging import Conversation, Message, Participant
from models.notes import SessionNote
from models.offers import EarlierSlotOffer
from models.reminders import SmsTemplate
from models.tasks import Task
from server.auth.sessions import Caller
from server.db import connection, from_row, placeholders, select_columns
from server.errors import NotFound

M = TypeVar("M", bound=Model)


async def _staff_row(caller: Caller, model: type[M], row_id: int, **filters: Any) -> M:
    """A row of the caller's practice by id, for staff only (``filters`` narrow it: not
    deleted, active); clients, other practices and missing ids are the same 404."""
    if caller.staff is None:
        raise NotFound()
    row = await model.get_or_none(id=row_id, practice_id=caller.practice_id, **filters)
    if row is None:
        raise NotFound()
    return row


async def caseload_therapist_ids(caller: Caller) -> list[int]:
    """The therapists whose clients this clinician may see: themselves and supervisees."""
    assert caller.staff is not None
    ids = [caller.staff.id]
    ids += await StaffUser.filter(supervisor_id=caller.staff.id).values_list("id", flat=True)  # type: ignore[arg-type]
    return ids


async def visible_clients(caller: Caller) -> QuerySet[Client]:
    if caller.staff is None:
        assert caller.client is not None
        return Client.filter(id=caller.client.id, deleted_at=None)
    query = Client.filter(practice_id=caller.practice_id, deleted_at=None)
    if caller.staff.role is StaffRole.THERAPIST:
        query = query.filter(therapist_id__in=await caseload_therapist_ids(caller))
    return query


async def staff_seeing(client: Client) -> QuerySet[StaffUser]:
    """Active staff who may open this client's file, by ``visible_clients``'s rule: owners
    and the front desk, the client's therapist and that therapist's supervisor."""
    therapists: list[int] = []
    therapist_id = client.therapist_id  # type: ignore[attr-defined]
    if therapist_id is not None:
        therapists.append(therapist_id)
        therapist = await StaffUser.get_or_none(id=therapist_id)
        if therapist is not None and therapist.supervisor_id is not None:  # type: ignore[attr-defined]
            therapists.append(therapist.supervisor_id)  # type: ignore[attr-defined]
    return StaffUser.filter(
        Q(role__in=[StaffRole.OWNER, StaffRole.OFFICE_ADMIN]) | Q(id__in=therapists),
        practice_id=client.practice_id,  # type: ignore[attr-defined]
        is_active=True,
    )


async def access_client(caller: Caller, client_id: int) -> Client:
    client = await (await visible_clients(caller)).get_or_none(id=client_id)
    if client is None:
        raise NotFound()
    return client


async def visible_links(caller: Caller) -> QuerySet[LinkedAccount]:
    """Live links to clients the caller may see: wherever a link shows (the circle tab, the
    messaging picker, an export), a therapist must not learn from it that a child's parent
    is in therapy with a colleague."""
    visible = Subquery((await visible_clients(caller)).values("id"))
    return LinkedAccount.filter(deleted_at=None, linked_client_id__in=visible)


async def may_hear_of(staff: StaffUser, client: Client, practice: Practice) -> bool:
    """Whether a staff member may be told of a client's clinical result (a completed measure
    or form): they can still see the client (a therapist who handed the client over cannot),
    and they may read clinical details (the front desk only where the practice allows)."""
    return client.id in await _heard_of(staff, practice, {client.id})


async def clients_heard_of(staff_id: int, client_ids: set[int]) -> set[int]:
    """Of ``client_ids``, the clients whose clinical results the staff member may be told of
    now (``may_hear_of``, for many clients at once): none once they are switched off."""
    staff = await StaffUser.get_or_none(id=staff_id, is_active=True)
    if staff is None or not client_ids:
        return set()
    return await _heard_of(staff, await Practice.get(id=staff.practice_id), client_ids)  # type: ignore[attr-defined]


async def _heard_of(staff: StaffUser, practice: Practice, client_ids: set[int]) -> set[int]:
    who = Caller.acting_as(staff)
    if not can_see_clinical(who, practice):
        return set()
    ids = (
        await (await visible_clients(who))
        .filter(id__in=sorted(client_ids))
        .values_list("id", flat=True)
    )
    return {int(i) for i in ids}  # type: ignore[call-overload]


async def access_staff_user(caller: Caller, staff_id: int) -> StaffUser:
    """Staff of the caller's own practice (clients never reach staff records by id)."""
    return await _staff_row(caller, StaffUser, staff_id)


async def access_practitioner(caller: Caller, staff_id: int) -> StaffUser:
    """An active clinician or owner of the caller's practice (a column of the agenda)."""
    user = await _staff_row(caller, StaffUser, staff_id, is_active=True)
    if user.role is StaffRole.OFFICE_ADMIN:
        raise NotFound()
    return user


async def access_conversation(
    caller: Caller, conversation_id: int
) -> tuple[Conversation, Participant]:
    """A conversation the caller takes part in, with the caller's participant row.

    Only participants reach a conversation, whatever their role: an owner who is not in a
    client conversation does not read it.
    """
    conversation, me, _everyone = await access_conversation_with_participants(
        caller, conversation_id
    )
    return conversation, me


async def access_conversation_with_participants(
    caller: Caller, conversation_id: int
) -> tuple[Conversation, Participant, list[Participant]]:
    """``access_conversation``, with every participant too (a send's recipients), all in
    one statement: every message send runs this."""
    p = placeholders(2)
    rows = await connection().execute_query_dict(
        f"SELECT {select_columns(Conversation, 'c')}, {select_columns(Participant, 'p')} "
        "FROM conversation c JOIN conversation_participant p ON p.conversation_id = c.id "
        f"WHERE c.id = {p[0]} AND c.practice_id = {p[1]} ORDER BY p.id",
        [conversation_id, caller.practice_id],
    )
    if caller.staff is not None:
        column, who = "p__staff_user_id", caller.staff.id
    else:
        assert caller.account is not None
        column, who = "p__portal_account_id", caller.account.id
    if not any(row[column] == who and row["p__left_at"] is None for row in rows):
        raise NotFound()  # never in it, or left it (an unlinked account)
    everyone = [from_row(Participant, row, "p") for row in rows]
    me = next(x for x, row in zip(everyone, rows, strict=True) if row[column] == who)
    # Those who left are kept for the names on their messages; they hear nothing more.
    return from_row(Conversation, rows[0], "c"), me, everyone


async def my_participant(caller: Caller, conversation_id: int) -> Participant | None:
    if caller.staff is not None:
        return await Participant.get_or_none(
            conversation_id=conversation_id, staff_user_id=caller.staff.id, left_at=None
        )
    assert caller.account is not None
    return await Participant.get_or_none(
        conversation_id=conversation_id, portal_account_id=caller.account.id, left_at=None
    )


async def access_message(
    caller: Caller, message_id: int
) -> tuple[Message, Conversation, Participant]:
    message = await Message.get_or_none(id=message_id, deleted_at=None)
    if message is None:
        raise NotFound()
    conversation, me = await access_conversation(caller, message.conversation_id)  # type: ignore[attr-defined]
    return message, conversation, me


async def access_practice_staff(caller: Caller, ids: list[int]) -> list[StaffUser]:
    """Active staff of the caller's practice; any unknown id is a 404 for the whole request."""
    if not ids:
        return []
    users = await StaffUser.filter(id__in=ids, practice_id=caller.practice_id, is_active=True)
    if len(users) != len(set(ids)):
        raise NotFound()
    return users


async def access_task(caller: Caller, task_id: int) -> Task:
    """A task on a client file the caller may see (staff only; clients never see tasks)."""
    if caller.staff is None:
        raise NotFound()
    client_ids = Subquery((await visible_clients(caller)).values("id"))
    task = await Task.get_or_none(
        id=task_id, practice_id=caller.practice_id, deleted_at=None, client_id__in=client_ids
    )
    if task is None:
        raise NotFound()
    return task


async def client_of_message(caller: Caller, message_id: int) -> tuple[Client, Message]:
    """The client who wrote this message, for a task made from it.

    The caller must take part in the conversation and may see the writer's file; a staff
    member's message has no client and answers 404 like any other id the caller can't use.
    """
    message, _conversation, _me = await access_message(caller, message_id)
    sender = await Participant.get(id=message.sender_id)  # type: ignore[attr-defined]
    if sender.portal_account_id is None:  # type: ignore[attr-defined]
        raise NotFound()
    account = await PortalAccount.get(id=sender.portal_account_id)  # type: ignore[attr-defined]
    return await access_client(caller, account.client_id), message  # type: ignore[attr-defined]


def can_see_clinical(caller: Caller, practice: Practice) -> bool:
    """Clinical details and notes: clinicians and owners; the front desk only if the practice
    opened them to it. Clients never (they have no staff caller)."""
    if caller.staff is None:
        return False
    if caller.staff.role is StaffRole.OFFICE_ADMIN:
        return practice.office_admins_see_clinical
    return True


async def access_payment_method(caller: Caller, method_id: int) -> PaymentMethod:
    method = await PaymentMethod.get_or_none(id=method_id, deleted_at=None)
    if method is None:
        raise NotFound()
    await access_client(caller, method.client_id)  # type: ignore[attr-defined]
    return method


async def access_document(caller: Caller, document_id: int) -> Document:
    """A document on a file the caller may see; a client reaches only their own documents
    that staff shared with them. A clinical document is hidden from staff who may not read
    clinical details. Deleted documents are gone for everyone."""
    document = await Document.get_or_none(id=document_id, deleted_at=None)
    if document is None:
        raise NotFound()
    if caller.staff is None and not document.shared_with_client:
        raise NotFound()
    if caller.staff is not None and document.clinical:
        practice = await Practice.get(id=caller.practice_id)
        if not can_see_clinical(caller, practice):
            raise NotFound()
    await access_client(caller, document.client_id)  # type: ignore[attr-defined]
    return document


async def access_appointment(caller: Caller, appointment_id: int) -> Appointment:
    """An appointment of a client whose file the caller may see (staff), or their own
    (client). Deleted ones stay reachable for staff: the file keeps them."""
    query = Appointment.filter(id=appointment_id, practice_id=caller.practice_id)
    if caller.staff is None:
        assert caller.client is not None
        query = query.filter(client_id=caller.client.id, deleted_at=None)
    appointment = await query.first()
    if appointment is None:
        raise NotFound()
    await access_client(caller, appointment.client_id)  # type: ignore[attr-defined]
    return appointment


async def access_note(caller: Caller, appointment_id: int) -> tuple[Appointment, Practice]:
    """The appointment whose note the caller may read or write: staff who may see clinical
    content, on a file they may see, or, for this one note, its own clinicians (``_note_is_
    theirs``). Anyone else gets the same 404 as a missing id."""
    if caller.staff is None:
        raise NotFound()
    practice = await Practice.get(id=caller.practice_id)
    if not can_see_clinical(caller, practice):
        raise NotFound()
    appointment = await Appointment.get_or_none(id=appointment_id, practice_id=caller.practice_id)
    if appointment is None or not await _note_is_theirs(caller, appointment):
        return await access_appointment(caller, appointment_id), practice
    if not await Client.exists(id=appointment.client_id, deleted_at=None):  # type: ignore[attr-defined]
        raise NotFound()
    return appointment, practice


async def _note_is_theirs(caller: Caller, appointment: Appointment) -> bool:
    """Whether the caller is one of the note's own clinicians, whoever the client's therapist
    is now: the practitioner who held the session (a colleague covering it writes its note),
    the note's author (a client handed over keeps their draft signable by them), and the
    author's supervisor (who countersigns it). This reaches the note's page only, never the
    client's file, which stays with the caseload."""
    assert caller.staff is not None
    if appointment.practitioner_id == caller.staff.id:  # type: ignore[attr-defined]
        return True
    author_id = await SessionNote.filter(appointment_id=appointment.id).values_list(
        "author_id", flat=True
    )
    if not author_id:
        return False
    if author_id[0] == caller.staff.id:
        return True
    return await StaffUser.exists(id=author_id[0], supervisor_id=caller.staff.id)


async def access_administration(caller: Caller, administration_id: int) -> MeasureAdministration:
    """A measure sent to a client: staff who may open the client's file (what they may read
    of it is the handler's business, see can_see_clinical); the client only their own, and
    not one staff withdrew."""
    administration = await MeasureAdministration.get_or_none(
        id=administration_id, practice_id=caller.practice_id
    )
    if administration is None:
        raise NotFound()
    if caller.staff is None and administration.status is AdministrationStatus.CANCELLED:
        raise NotFound()
    await access_client(caller, administration.client_id)  # type: ignore[attr-defined]
    return administration


async def access_measure_schedule(caller: Caller, schedule_id: int) -> MeasureSchedule:
    schedule = await _staff_row(caller, MeasureSchedule, schedule_id)
    await access_client(caller, schedule.client_id)  # type: ignore[attr-defined]
    return schedule


async def access_form_template(caller: Caller, template_id: int) -> FormTemplate:
    """A form of the caller's practice (staff only: clients see only forms sent to them)."""
    return await _staff_row(caller, FormTemplate, template_id)


async def access_form_assignment(caller: Caller, assignment_id: int) -> FormAssignment:
    """A form sent to a client: staff who may open the client's file; the client only their
    own, and not one staff withdrew."""
    assignment = await FormAssignment.get_or_none(id=assignment_id, practice_id=caller.practice_id)
    if assignment is None:
        raise NotFound()
    if caller.staff is None and assignment.status is FormStatus.CANCELLED:
        raise NotFound()
    await access_client(caller, assignment.client_id)  # type: ignore[attr-defined]
    return assignment


async def access_offer(caller: Caller, offer_id: int) -> EarlierSlotOffer:
    """An earlier-slot offer: a client reaches only their own; staff those of clients whose
    file they may see. Anything else is the same 404 as a missing id."""
    query = EarlierSlotOffer.filter(id=offer_id, slot__practice_id=caller.practice_id)
    if caller.staff is None:
        assert caller.client is not None
        query = query.filter(client_id=caller.client.id)
    offer = await query.first()
    if offer is None:
        raise NotFound()
    await access_client(caller, offer.client_id)  # type: ignore[attr-defined]
    return offer


# --- billing -------------------------------------------------------------------------------
# Owners and the front desk bill for the whole practice; a therapist bills their own
# caseload (and sees what is issued in their own name, or made by them); a client sees the
# finalized invoices on their account or addressed to them, never drafts.


async def visible_invoices(caller: Caller) -> QuerySet[Invoice]:
    if caller.staff is None:
        assert caller.client is not None
        me = caller.client.id
        return Invoice.filter(
            Q(client_id=me) | Q(payer_client_id=me),
            practice_id=caller.practice_id,
            status=InvoiceStatus.FINALIZED,
        )
    query = Invoice.filter(practice_id=caller.practice_id)
    if caller.staff.role is StaffRole.THERAPIST:
        client_ids = Subquery((await visible_clients(caller)).values("id"))
        own = Subquery(BillingProfile.filter(practitioner_id=caller.staff.id).values("id"))
        # And those they made: one invoice in the practice's name for several clients of
        # their caseload has no client and is not in their name, yet is theirs to open and
        # finish. They wrote every line of it from files they could see, so, as with the
        # invoices in their own name, a later handover does not take it from them.
        query = query.filter(
            Q(client_id__in=client_ids) | Q(profile_id__in=own) | Q(created_by_id=caller.staff.id)
        )
    return query


async def access_invoice(caller: Caller, invoice_id: int) -> Invoice:
    invoice = await (await visible_invoices(caller)).get_or_none(id=invoice_id)
    if invoice is None:
        raise NotFound()
    return invoice


async def access_invoice_to_change(caller: Caller, invoice_id: int) -> Invoice:
    """An invoice the caller may write to (lines, details, finalize, delete, send, payments,
    credit note): staff only. A therapist sees the invoices of their caseload, which may be
    in a colleague's name (a client handed over); they bill in their own name or the
    practice's, never a colleague's, so those they may only read."""
    if caller.staff is None:
        raise NotFound()
    invoice = await access_invoice(caller, invoice_id)
    if caller.staff.role is StaffRole.THERAPIST:
        issuer = await BillingProfile.filter(id=invoice.profile_id).values_list(  # type: ignore[attr-defined]
            "practitioner_id", flat=True
        )
        if not issuer or issuer[0] not in (None, caller.staff.id):
            raise NotFound()
    return invoice


async def visible_consultations(caller: Caller) -> QuerySet[Consultation]:
    """Consultations of the clients the caller may see (staff only)."""
    if caller.staff is None:
        raise NotFound()
    client_ids = Subquery((await visible_clients(caller)).values("id"))
    return Consultation.filter(practice_id=caller.practice_id, client_id__in=client_ids)


async def access_consultations(caller: Caller, ids: list[int]) -> list[Consultation]:
    """All of them or a 404 for the whole request."""
    found = await (await visible_consultations(caller)).filter(id__in=ids)
    if len(found) != len(set(ids)):
        raise NotFound()
    return found


async def access_payment(caller: Caller, payment_id: int) -> Payment:
    """A payment of an invoice the caller may see, or on the account of a client they may
    see (credit, refunds)."""
    payment = await Payment.get_or_none(id=payment_id, practice_id=caller.practice_id)
    if payment is None:
        raise NotFound()
    if payment.invoice_id is not None:  # type: ignore[attr-defined]
        await access_invoice(caller, payment.invoice_id)  # type: ignore[attr-defined]
    elif payment.client_id is not None:  # type: ignore[attr-defined]
        await access_client(caller, payment.client_id)  # type: ignore[attr-defined]
    else:
        raise NotFound()
    return payment


async def access_receipt(caller: Caller, payment_id: int) -> Payment:
    """A payment whose receipt the caller may have (``access_payment``): money received only
    (``Payment.has_receipt``). A refund or a credit row printed as a receipt read "Amount
    received -€40.00"."""
    payment = await access_payment(caller, payment_id)
    if not payment.has_receipt:
        raise NotFound()
    return payment


async def access_billing_profile(caller: Caller, profile_id: int) -> BillingProfile:
    """Profiles a member of staff may edit: owners any of the practice's, a practitioner
    their own."""
    profile = await _staff_row(caller, BillingProfile, profile_id)
    assert caller.staff is not None
    if caller.staff.role is not StaffRole.OWNER and profile.practitioner_id != caller.staff.id:  # type: ignore[attr-defined]
        raise NotFound()
    return profile


async def access_sms_template(caller: Caller, template_id: int) -> SmsTemplate:
    """A confirmation template of the caller's practice (any staff may pick one)."""
    return await _staff_row(caller, SmsTemplate, template_id, deleted_at=None)


async def access_form_schedule(caller: Caller, schedule_id: int) -> FormSchedule:
    """A form schedule on a file the caller may see (staff only)."""
    schedule = await _staff_row(caller, FormSchedule, schedule_id)
    await access_client(caller, schedule.client_id)  # type: ignore[attr-defined]
    return schedule


async def access_contact(caller: Caller, contact_id: int) -> Contact:
    """A contact of the caller's practice (any staff member; clients never). Removed contacts,
    other practices' contacts and missing ids are the same 404."""
    return await _staff_row(caller, Contact, contact_id, deleted_at=None)


# --- the agenda --------------------------------------------------------------------------------
# The agenda is the practice's: every staff member sees its times taken, owners and the front
# desk every appointment in full, a therapist those of their caseload (agenda_caseload).
# Clients reach none through these (the portal reaches its own through access_appointment,
# which also limits staff to the files they may see). Anything else is a 404.


async def agenda_caseload(caller: Caller) -> set[int] | None:
    """Whose sessions a staff member sees in full in the agenda: None for the whole agenda
    (owners and the front desk run it); for a therapist, their own caseload's and their
    supervisees' (``caseload_therapist_ids``): the sessions they hold, and those of the
    clients they may see. Of a colleague's other sessions, only that the time is taken."""
    if caller.staff is None or caller.staff.role is not StaffRole.THERAPIST:
        return None
    return set(await caseload_therapist_ids(caller))


async def access_agenda_appointment(caller: Caller, appointment_id: int) -> Appointment:
    """An appointment of the caller's practice that the caller sees in full in the agenda
    (``agenda_caseload``): a therapist cannot mark, move or remove a colleague's session with
    a client they may not see (404, as for any id they cannot reach)."""
    appointment = await _staff_row(caller, Appointment, appointment_id, deleted_at=None)
    caseload = await agenda_caseload(caller)
    if caseload is None or appointment.practitioner_id in caseload:  # type: ignore[attr-defined]
        return appointment
    therapist_id = await Client.filter(id=appointment.client_id).values_list(  # type: ignore[attr-defined]
        "therapist_id", flat=True
    )
    if not therapist_id or therapist_id[0] not in caseload:
        raise NotFound()
    return appointment


async def access_agenda_service(caller: Caller, service_id: int) -> Service:
    return await _staff_row(caller, Service, service_id, is_active=True)


async def access_agenda_location(caller: Caller, location_id: int) -> Location:
    return await _staff_row(caller, Location, location_id, is_active=True)
