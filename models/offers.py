"""Earlier-slot alerts: the waiting list, the slots freed by cancellations, the offers sent.

An appointment on the waiting list (``WaitlistEntry``) wants an earlier slot. When an
appointment stops holding its slot (cancelled, no-show, moved), a ``FreedSlot`` records that
slot and a job offers it a few minutes later to the first five matching clients
(``EarlierSlotOffer``). The first to accept takes it; every other open offer is withdrawn.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from tortoise import fields

from models.accounts import Practice, StaffUser
from models.agenda import Appointment, Location
from models.base import Timestamped
from models.clients import Client


class WaitlistEntry(Timestamped):
    # "Alert me of an earlier slot" on one appointment. ``joined_at`` orders the waiting list;
    # leaving it keeps the row (the client's log refers to it) with ``is_active`` false.
    id = fields.IntField(primary_key=True)
    appointment: fields.OneToOneRelation[Appointment] = fields.OneToOneField(
        "models.Appointment", related_name="waitlist_entry", on_delete=fields.RESTRICT
    )
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="waitlist_entries", on_delete=fields.RESTRICT
    )
    joined_at = fields.DatetimeField()
    is_active = fields.BooleanField(default=True)

    class Meta:
        table = "waitlist_entry"
        indexes = (("is_active", "joined_at"),)


class SlotStatus(StrEnum):
    WAITING = "waiting"  # freed; the offer round has not run yet
    OFFERED = "offered"  # offers are out
    UNMATCHED = "unmatched"  # nobody on the waiting list fitted it
    TAKEN = "taken"  # booked again (through an offer or by the front desk)
    # Inside the practitioner's time off: offered no more, and waiting again if that time
    # off is shortened or removed (offers.reopen_slots).
    CLOSED = "closed"


class FreedSlot(Timestamped):
    # The time an appointment gave up, as the practitioner's agenda sees it.
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="freed_slots", on_delete=fields.RESTRICT
    )
    practitioner: fields.ForeignKeyRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="freed_slots", on_delete=fields.RESTRICT
    )
    location: fields.ForeignKeyNullableRelation[Location] = fields.ForeignKeyField(
        "models.Location", related_name="freed_slots", null=True, on_delete=fields.RESTRICT
    )
    # The appointment whose cancellation (or move) freed it.
    appointment: fields.ForeignKeyRelation[Appointment] = fields.ForeignKeyField(
        "models.Appointment", related_name="freed_slots", on_delete=fields.RESTRICT
    )
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    status = fields.CharEnumField(SlotStatus, max_length=10, default=SlotStatus.WAITING)
    offered_at = fields.DatetimeField(null=True)
    taken_at = fields.DatetimeField(null=True)
    # True when an accepted offer refilled it (the fill rate counts these).
    refilled_by_offer = fields.BooleanField(default=False)

    class Meta:
        table = "freed_slot"
        indexes = (("practitioner_id", "starts_at"), ("practice_id", "created_at"))


class OfferStatus(StrEnum):
    SENT = "sent"  # awaiting an answer (expired once past expires_at: see effective_status)
    DECLINED = "declined"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"  # the slot was taken by someone else


class EarlierSlotOffer(Timestamped):
    id = fields.IntField(primary_key=True)
    slot: fields.ForeignKeyRelation[FreedSlot] = fields.ForeignKeyField(
        "models.FreedSlot", related_name="offers", on_delete=fields.RESTRICT
    )
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="earlier_slot_offers", on_delete=fields.RESTRICT
    )
    # The client's later appointment, which moves to the slot on acceptance.
    appointment: fields.ForeignKeyRelation[Appointment] = fields.ForeignKeyField(
        "models.Appointment", related_name="earlier_slot_offers", on_delete=fields.RESTRICT
    )
    status = fields.CharEnumField(OfferStatus, max_length=10, default=OfferStatus.SENT)
    sent_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    answered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "earlier_slot_offer"
        unique_together = (("slot", "client"),)
        indexes = (("client_id", "status"),)


def effective_status(offer: EarlierSlotOffer, now: datetime | None = None) -> OfferStatus:
    """The status a person sees: an unanswered offer past its time has expired (nothing has
    to run for that: the link and every list read it from ``expires_at``)."""
    if offer.status is OfferStatus.SENT and (now or datetime.now(UTC)) >= offer.expires_at:
        return OfferStatus.EXPIRED
    return offer.status
