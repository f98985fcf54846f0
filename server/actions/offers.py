"""Earlier-slot alerts: the waiting list, freeing a slot, the offer round, accept and decline.

::

    appointment cancelled / no-show / moved ──▶ FreedSlot(waiting) + job "offers.round"
        (on_attendance_changed, in the agenda action's transaction)
    job, a few minutes later ──▶ up to five EarlierSlotOffer(sent), an email each, live on the
        portal; the slot is "offered" on the front desk's agenda
    client accepts ──▶ slot taken (conditional update: first wins) ──▶ agenda.do_move_appointment
        ├ do_book_appointment ──▶ on_appointment_booked: every other open offer withdrawn
        └ do_set_attendance(old, MOVED) ──▶ on_attendance_changed: the old slot is freed (cascade)
    time off over a freed slot ──▶ closed (on_time_off): no round, offers withdrawn
    time off shortened or removed ──▶ a closed slot it no longer covers waits again, and its
        round runs (reopen_slots)

The agenda actions call the ``on_*`` hooks inside their own transactions, so whatever books
or frees a slot (the front desk, the portal, an accepted offer) keeps the offers right.
Expiry is read from ``expires_at`` (``effective_status``): nothing has to run for an offer
to expire, and an expired link says so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from models.accounts import PortalAccount, Practice, StaffUser
from models.agenda import HOLDS_SLOT, Appointment, Attendance, Availability, TimeOff
from models.clients import Client
from models.jobs import Job
from models.offers import (
    EarlierSlotOffer,
    FreedSlot,
    OfferStatus,
    SlotStatus,
    WaitlistEntry,
    effective_status,
)
from realtime.events import client_recipient, emit
from server import jobs
from server.actions import agenda, audit, reminders
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import Conflict, ValidationFailed
from server.i18n import format_datetime, writing_in
from server.i18n import gettext as _
from server.mail import queue_email
from server.queries.agenda import has_time_off, holding
from server.settings import get_settings

# At most this many clients hear of one freed slot.
OFFER_CAP = 5
OFFER_VALID = timedelta(days=15)
ROUND_JOB = "offers.round"

# An appointment changing to one of these gives its slot back.
FREES_SLOT = (
    Attendance.CANCELLED_BY_CLIENT,
    Attendance.CANCELLED_BY_PRACTITIONER,
    Attendance.NO_SHOW,
    Attendance.MOVED,
)


def _now() -> datetime:
    return datetime.now(UTC)


# --- the waiting list -------------------------------------------------------------------------


def check_can_join(practice: Practice, appointment: Appointment, now: datetime) -> None:
    """Refuse (422 on ``alert_earlier``) unless the feature is on and the appointment is a
    scheduled individual one, later than now plus the practice's minimum delay."""

    def refuse(message: str) -> ValidationFailed:
        return ValidationFailed(_("Some fields are not valid."), {"alert_earlier": message})

    if not practice.earlier_slot_alerts:
        raise refuse(_("Earlier-slot alerts are not offered by this practice."))
    if appointment.attendance is not Attendance.SCHEDULED or appointment.deleted_at is not None:
        raise refuse(_("Only a scheduled appointment can wait for an earlier slot."))
    if appointment.is_group:
        raise refuse(_("Group sessions cannot wait for an earlier slot."))
    if appointment.starts_at <= now + timedelta(days=practice.earlier_slot_min_days):
        raise refuse(
            _("Only for an appointment more than %(num)d days away.")
            % {"num": practice.earlier_slot_min_days}
        )


def join_refusal(practice: Practice, appointment: Appointment, now: datetime) -> str | None:
    """Why ``appointment`` cannot wait for an earlier slot (check_can_join's message for the
    field), or None when it can."""
    try:
        check_can_join(practice, appointment, now)
    except ValidationFailed as exc:
        return exc.fields["alert_earlier"]
    return None


async def do_set_earlier_alert(
    actor: Caller | None, appointment: Appointment, on: bool
) -> WaitlistEntry | None:
    """Join or leave the waiting list for one appointment. Joining again puts the
    appointment at the end of the list (the order is the order of joining)."""
    practice = await Practice.get(id=appointment.practice_id)  # type: ignore[attr-defined]
    entry = await WaitlistEntry.get_or_none(appointment_id=appointment.id)
    if on:
        check_can_join(practice, appointment, _now())
        if entry is not None and entry.is_active:
            return entry
    elif entry is None or not entry.is_active:
        return entry
    async with atomic():
        if entry is None:
            entry = await WaitlistEntry.create(
                appointment=appointment,
                client_id=appointment.client_id,  # type: ignore[attr-defined]
                joined_at=_now(),
            )
        else:
            entry.is_active = on
            if on:
                entry.joined_at = _now()
            await entry.save(update_fields=["is_active", "joined_at", "updated_at"])
        await audit.record(
            actor,
            "offer.waitlist_joined" if on else "offer.waitlist_left",
            object_type="earlier_slot",
            object_id=appointment.id,
            client_id=appointment.client_id,  # type: ignore[attr-defined]
            practice_id=practice.id,
            detail={"appointment_id": appointment.id},
        )
        await agenda.notify_appointment_changed(appointment)
    return entry


# --- hooks called by the agenda actions (inside their transactions) ---------------------------


async def on_attendance_changed(
    actor: Caller | None, appointment: Appointment, before: Attendance
) -> None:
    """From ``agenda.do_set_attendance``: a cancellation, no-show or move frees the slot; back
    to scheduled takes it again."""
    now_holds = appointment.attendance in HOLDS_SLOT
    if appointment.attendance in FREES_SLOT and before in HOLDS_SLOT:
        await _withdraw_offers_for(appointment)
        if appointment.attendance is not Attendance.MOVED:
            # The appointment no longer waits for anything (a move carries its place in the
            # list to the new date: on_appointment_moved).
            await WaitlistEntry.filter(appointment_id=appointment.id, is_active=True).update(
                is_active=False
            )
        await _free_slot(appointment)
    elif now_holds and before not in HOLDS_SLOT:
        await slot_taken(appointment)


async def _withdraw_offers_for(appointment: Appointment) -> None:
    """The client's own appointment was cancelled or moved: offers to move it are void."""
    open_offers = await EarlierSlotOffer.filter(
        appointment_id=appointment.id, status=OfferStatus.SENT
    )
    if not open_offers:
        return
    await EarlierSlotOffer.filter(id__in=[o.id for o in open_offers]).update(
        status=OfferStatus.WITHDRAWN, answered_at=_now()
    )
    for offer in open_offers:
        offer.status = OfferStatus.WITHDRAWN
        await _notify_offer(offer)


async def on_appointment_booked(appointment: Appointment) -> None:
    """From ``agenda.do_book_appointment``: booking over a freed slot takes it."""
    await slot_taken(appointment)


async def on_appointment_moved(old: Appointment, new: Appointment) -> None:
    """From ``agenda.do_move_appointment``: a client who waited for an earlier slot still
    does on the new date, in the same place in the list, while it is far enough away."""
    entry = await WaitlistEntry.get_or_none(appointment_id=old.id, is_active=True)
    if entry is None:
        return
    await WaitlistEntry.filter(id=entry.id).update(is_active=False)
    practice = await Practice.get(id=new.practice_id)  # type: ignore[attr-defined]
    try:
        check_can_join(practice, new, _now())
    except ValidationFailed:
        return
    await WaitlistEntry.create(
        appointment=new,
        client_id=new.client_id,  # type: ignore[attr-defined]
        joined_at=entry.joined_at,
    )


async def _free_slot(appointment: Appointment) -> FreedSlot | None:
    practice = await Practice.get(id=appointment.practice_id)  # type: ignore[attr-defined]
    now = _now()
    # A group session keeps running with the others; a past slot cannot be offered.
    if not practice.earlier_slot_alerts or appointment.is_group or appointment.starts_at <= now:
        return None
    slot = await FreedSlot.create(
        practice=practice,
        practitioner_id=appointment.practitioner_id,  # type: ignore[attr-defined]
        location_id=appointment.location_id,  # type: ignore[attr-defined]
        appointment=appointment,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
    )
    await jobs.schedule(
        ROUND_JOB,
        now + timedelta(seconds=get_settings().offer_delay_seconds),
        {"slot": slot.id},
        key=f"offers.round:{slot.id}",
        practice_id=practice.id,
    )
    return slot


async def slot_taken(appointment: Appointment) -> None:
    """Every freed slot this appointment overlaps is taken: its round is called off and its
    open offers are withdrawn (the clients' portals update)."""
    await _take_slots(
        appointment.practitioner_id,  # type: ignore[attr-defined]
        appointment.practice_id,  # type: ignore[attr-defined]
        appointment.starts_at,
        appointment.ends_at,
    )


async def on_time_off(time_off: TimeOff) -> None:
    """From ``agenda.do_add_time_off`` and ``do_update_time_off``: a freed slot inside the
    time off is no longer free: its round is called off and its open offers withdrawn. It
    is closed, not taken, so that it waits again if the time off goes (reopen_slots)."""
    practitioner = await StaffUser.get(id=time_off.practitioner_id)  # type: ignore[attr-defined]
    await _take_slots(
        practitioner.id,
        practitioner.practice_id,  # type: ignore[attr-defined]
        time_off.starts_at,
        time_off.ends_at,
        SlotStatus.CLOSED,
    )


async def reopen_slots(practitioner_id: int, starts_at: datetime, ends_at: datetime) -> None:
    """From ``agenda.do_update_time_off`` (with the time off's old bounds) and
    ``do_remove_time_off``: a slot the time off closed, still ahead, that no time off covers
    any more and nobody booked meanwhile, waits again and its round runs (the waiting list
    hears of it as of any freed slot). Without this, a sick day shortened to the morning kept
    the afternoon's cancelled sessions from the waiting list for good. Call inside the
    agenda action's transaction, after the time off's change."""
    now = _now()
    closed = await FreedSlot.filter(
        practitioner_id=practitioner_id,
        status=SlotStatus.CLOSED,
        starts_at__lt=ends_at,
        ends_at__gt=starts_at,
        starts_at__gt=now,
    )
    delay = timedelta(seconds=get_settings().offer_delay_seconds)
    for slot in closed:
        if await has_time_off(practitioner_id, slot.starts_at, slot.ends_at):
            continue
        if await holding(slot.starts_at, slot.ends_at, practitioner_id=practitioner_id).exists():
            # Booked meanwhile: taken for good, as a booking over a waiting slot would.
            await FreedSlot.filter(id=slot.id).update(status=SlotStatus.TAKEN)
            continue
        await FreedSlot.filter(id=slot.id).update(status=SlotStatus.WAITING, taken_at=None)
        # The round may have run already (it closed the slot when it found the time off).
        await jobs.schedule(
            ROUND_JOB,
            now + delay,
            {"slot": slot.id},
            key=f"offers.round:{slot.id}",
            practice_id=slot.practice_id,  # type: ignore[attr-defined]
            again_if_done=True,
        )
        await _notify_slot_badge(slot)


async def _take_slots(
    practitioner_id: int,
    practice_id: int,
    starts_at: datetime,
    ends_at: datetime,
    becomes: SlotStatus = SlotStatus.TAKEN,
) -> None:
    overlapping = await FreedSlot.filter(
        practitioner_id=practitioner_id,
        starts_at__lt=ends_at,
        ends_at__gt=starts_at,
    )
    if not overlapping:
        return
    now = _now()
    fresh = [s for s in overlapping if s.status in (SlotStatus.WAITING, SlotStatus.OFFERED)]
    if fresh:
        # The rounds' jobs first, then the slots: the order the worker takes them in (it
        # holds a round's job row while offer_slot locks the slot). Slots first, a booking
        # made while that slot's round ran held the slot and waited for the job, the worker
        # held the job and waited for the slot: on PostgreSQL a deadlock, and a 500 for the
        # booking or a failed round. Now the booking waits for the round to finish, then
        # withdraws what it offered (below).
        await jobs.cancel([f"offers.round:{s.id}" for s in fresh])
        await FreedSlot.filter(id__in=[s.id for s in fresh]).update(status=becomes, taken_at=now)
    open_offers = await EarlierSlotOffer.filter(
        slot_id__in=[s.id for s in overlapping], status=OfferStatus.SENT
    )
    if open_offers:
        await EarlierSlotOffer.filter(id__in=[o.id for o in open_offers]).update(
            status=OfferStatus.WITHDRAWN, answered_at=now
        )
        for offer in open_offers:
            offer.status = OfferStatus.WITHDRAWN
            await audit.record(
                None,
                "offer.withdrawn",
                object_type="earlier_slot_offer",
                object_id=offer.id,
                client_id=offer.client_id,  # type: ignore[attr-defined]
                practice_id=practice_id,
            )
            await _notify_offer(offer)
    for slot in overlapping:
        if slot in fresh or open_offers:
            # The front desk's agenda: the cancelled block is no longer "offered".
            await _notify_slot_badge(slot)


# --- the offer round (a job) ------------------------------------------------------------------


async def slot_services(slot: FreedSlot, tz: ZoneInfo) -> set[int]:
    """The services of the availability the slot lies in (same practitioner and location);
    for a slot booked outside the hours, the freed appointment's own service."""
    local_start = slot.starts_at.astimezone(tz)
    local_end = slot.ends_at.astimezone(tz)
    day = local_start.date()
    start_min = local_start.hour * 60 + local_start.minute
    end_min = local_end.hour * 60 + local_end.minute if local_end.date() == day else 24 * 60
    rows = await Availability.filter(
        practitioner_id=slot.practitioner_id,  # type: ignore[attr-defined]
        location_id=slot.location_id,  # type: ignore[attr-defined]
        deleted_at=None,
        is_group_slot=False,
        start_minute__lte=start_min,
        end_minute__gte=end_min,
    ).prefetch_related("services")
    services: set[int] = set()
    for a in rows:
        recurring = (
            a.weekday == day.weekday()
            and (a.valid_from is None or a.valid_from <= day)
            and (a.valid_until is None or a.valid_until >= day)
        )
        if recurring or a.on_date == day:
            services.update(s.id for s in a.services)
    if not services:
        freed = await Appointment.get(id=slot.appointment_id)  # type: ignore[attr-defined]
        services.add(freed.service_id)  # type: ignore[attr-defined]
    return services


async def matches(slot: FreedSlot, now: datetime) -> list[Appointment]:
    """The flagged appointments the slot goes to, first come first served, at most five:
    later than the slot, same practitioner and location, a service the slot's hours offer,
    the same duration, and a client with a portal account (to answer), no offer still
    awaiting an answer and no other session at that time."""
    practice = await Practice.get(id=slot.practice_id)  # type: ignore[attr-defined]
    services = await slot_services(slot, ZoneInfo(practice.time_zone))
    freed = await Appointment.get(id=slot.appointment_id)  # type: ignore[attr-defined]
    duration = slot.ends_at - slot.starts_at
    entries = (
        await WaitlistEntry.filter(
            is_active=True,
            appointment__practice_id=slot.practice_id,  # type: ignore[attr-defined]
            appointment__practitioner_id=slot.practitioner_id,  # type: ignore[attr-defined]
            appointment__location_id=slot.location_id,  # type: ignore[attr-defined]
            appointment__deleted_at=None,
            appointment__attendance=Attendance.SCHEDULED,
            appointment__starts_at__gt=slot.starts_at,
            appointment__service_id__in=list(services),
        )
        .prefetch_related("appointment")
        .order_by("joined_at", "id")
    )
    out: list[Appointment] = []
    seen: set[int] = {freed.client_id}  # type: ignore[attr-defined]  # who just gave it up
    for entry in entries:
        appointment = entry.appointment
        client_id: int = entry.client_id  # type: ignore[attr-defined]
        if client_id in seen or appointment.ends_at - appointment.starts_at != duration:
            continue
        seen.add(client_id)
        if not await PortalAccount.exists(client_id=client_id, is_active=True):
            continue
        if await has_pending_offer(client_id, now):
            continue
        if (
            await holding(slot.starts_at, slot.ends_at, client_id=client_id)
            .exclude(id=appointment.id)  # the one it would move
            .exists()
        ):
            # Already in a session then (with another practitioner): accepting would put
            # the client in two rooms at once (do_accept_offer refuses it).
            continue
        out.append(appointment)
        if len(out) == OFFER_CAP:
            break
    return out


async def has_pending_offer(client_id: int, now: datetime) -> bool:
    """An offer still awaiting this client's answer: sent, not expired, and its slot still
    free (taking a slot withdraws its offers; the slot status is checked all the same)."""
    return await EarlierSlotOffer.filter(
        client_id=client_id,
        status=OfferStatus.SENT,
        expires_at__gt=now,
        slot__status=SlotStatus.OFFERED,
        # An offer to move an appointment that is gone (deleted) awaits nothing.
        appointment__deleted_at=None,
        appointment__attendance=Attendance.SCHEDULED,
    ).exists()


SMS_JOB = "offers.sms"


@jobs.handler(ROUND_JOB)
async def run_round(job: Job) -> None:
    await offer_slot(int(job.payload["slot"]))


async def offer_slot(slot_id: int, now: datetime | None = None) -> list[EarlierSlotOffer]:
    """Offer a freed slot to the waiting list. Runs in the job's transaction."""
    now = now or _now()
    async with atomic():
        slot = await FreedSlot.filter(id=slot_id).select_for_update().first()
        if slot is None or slot.status is not SlotStatus.WAITING:
            return []
        practice = await Practice.get(id=slot.practice_id)  # type: ignore[attr-defined]
        taken = await holding(
            slot.starts_at,
            slot.ends_at,
            practitioner_id=slot.practitioner_id,  # type: ignore[attr-defined]
        ).exists()
        # Time off taken since the slot was freed closes it as surely as a booking.
        practitioner_id: int = slot.practitioner_id  # type: ignore[attr-defined]
        if taken or await has_time_off(practitioner_id, slot.starts_at, slot.ends_at):
            await FreedSlot.filter(id=slot.id).update(
                status=SlotStatus.TAKEN if taken else SlotStatus.CLOSED, taken_at=now
            )
            return []
        chosen = (
            await matches(slot, now)
            if practice.earlier_slot_alerts and slot.starts_at > now
            else []
        )
        offers: list[EarlierSlotOffer] = []
        for appointment in chosen:
            offer = await EarlierSlotOffer.create(
                slot=slot,
                client_id=appointment.client_id,  # type: ignore[attr-defined]
                appointment=appointment,
                sent_at=now,
                expires_at=min(now + OFFER_VALID, slot.starts_at),
            )
            await send_offer(offer)
            offers.append(offer)
        await FreedSlot.filter(id=slot.id).update(
            status=SlotStatus.OFFERED if offers else SlotStatus.UNMATCHED,
            offered_at=now if offers else None,
        )
        await _notify_slot_badge(slot)
    return offers


async def send_offer(offer: EarlierSlotOffer) -> None:
    """Tell the client about an offer: an email with the link, and live on the portal.
    The one place an offer goes out (an SMS channel belongs here, with quiet hours).
    Call inside ``atomic()``."""
    slot = await FreedSlot.get(id=offer.slot_id)  # type: ignore[attr-defined]
    practice = await Practice.get(id=slot.practice_id)  # type: ignore[attr-defined]
    client = await Client.get(id=offer.client_id)  # type: ignore[attr-defined]
    account = await PortalAccount.get(client_id=client.id, is_active=True)
    current = await Appointment.get(id=offer.appointment_id)  # type: ignore[attr-defined]
    practitioner = await StaffUser.get(id=slot.practitioner_id)  # type: ignore[attr-defined]
    link = f"{get_settings().public_url}/portal/offers/{offer.id}"
    # In the client's language and the practice's time zone, whoever triggered the round.
    with writing_in(account.locale or client.locale or practice.locale, practice.time_zone):
        when = format_datetime(slot.starts_at, "full")
        body = (
            _("An earlier slot is free with %(name)s: %(when)s.")
            % {"name": practitioner.full_name, "when": when}
            + "\n"
            + _("Your appointment is on %(current)s.")
            % {"current": format_datetime(current.starts_at, "full")}
            + "\n\n"
            + _("Accept it to move your appointment, or decline to keep it: %(link)s")
            % {"link": link}
            + "\n"
            + _("The first to accept gets the slot. This offer is valid until %(until)s.")
            % {"until": format_datetime(offer.expires_at, "medium")}
        )
        await queue_email(
            account.email,
            _("An earlier slot is free: %(when)s") % {"when": when},
            body,
            purpose="offer.sent",
            client_id=client.id,
            practice_id=practice.id,
        )
    await audit.record(
        None,
        "offer.sent",
        object_type="earlier_slot_offer",
        object_id=offer.id,
        client_id=client.id,
        practice_id=practice.id,
        detail={"slot_starts_at": slot.starts_at.isoformat(), "appointment_id": current.id},
    )
    await _notify_offer(offer)
    settings = await reminders.messaging_settings(practice.id)
    if settings.sms_on_earlier_slot_offers and await reminders.sms_number(client_id=client.id):
        # Its own job, so quiet hours hold the text (never the email) until the morning.
        await jobs.schedule(
            SMS_JOB,
            await reminders.sms_allowed_from(practice, datetime.now(UTC)),
            {"offer": offer.id},
            key=f"offer-sms:{offer.id}",
            practice_id=practice.id,
        )


@jobs.handler(SMS_JOB)
async def send_offer_sms(job: Job) -> None:
    """The SMS of an offer, once quiet hours are over, and only while the offer still stands
    (not answered, not expired, its slot still free)."""
    offer = await EarlierSlotOffer.get_or_none(id=job.payload["offer"])
    if offer is None or effective_status(offer) is not OfferStatus.SENT:
        return
    slot = await FreedSlot.get(id=offer.slot_id)  # type: ignore[attr-defined]
    if slot.status is not SlotStatus.OFFERED:
        return
    practice = await Practice.get(id=slot.practice_id)  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    allowed = await reminders.sms_allowed_from(practice, now)
    if allowed > now:
        raise jobs.Defer(allowed)
    client = await Client.get(id=offer.client_id)  # type: ignore[attr-defined]
    number = await reminders.sms_number(client_id=client.id)
    if not number:
        return
    practitioner = await StaffUser.get(id=slot.practitioner_id)  # type: ignore[attr-defined]
    account = await PortalAccount.get_or_none(client_id=client.id, is_active=True)
    locale = (account.locale if account else None) or client.locale or practice.locale
    with writing_in(locale, practice.time_zone):
        # No health detail beyond what a reminder says: who, when, and the link.
        body = _(
            "%(practice)s: an earlier slot is free with %(name)s on %(when)s. Answer: %(link)s"
        ) % {
            "practice": practice.name,
            "name": practitioner.full_name,
            "when": format_datetime(slot.starts_at, "short"),
            "link": f"{get_settings().public_url}/portal/offers/{offer.id}",
        }
    await reminders.queue_sms(
        practice,
        number,
        body,
        purpose="offer.sent",
        client_id=client.id,
        send_before=min(offer.expires_at, slot.starts_at),
    )


async def _notify_slot_badge(slot: FreedSlot) -> None:
    """The front desk's agenda shows what became of a freed slot on the cancelled
    appointment: redraw it there. Only staff: the client who gave the slot up sees nothing
    new, and is not told when others are offered it or take it."""
    freed = await Appointment.get(id=slot.appointment_id)  # type: ignore[attr-defined]
    await agenda.notify_appointment_changed(freed, staff_only=True)


async def _notify_offer(offer: EarlierSlotOffer) -> None:
    """``offer.changed`` to the client's portal: their offers list fetches itself again."""
    account = await PortalAccount.get_or_none(
        client_id=offer.client_id,  # type: ignore[attr-defined]
        is_active=True,
    )
    if account is not None:
        await emit(
            [client_recipient(account.id)],
            "offer.changed",
            {"id": offer.id, "status": effective_status(offer).value},
        )


# --- answers ----------------------------------------------------------------------------------


def _gone(offer: EarlierSlotOffer, slot: FreedSlot, now: datetime) -> Conflict | None:
    status = effective_status(offer, now)
    if status is OfferStatus.EXPIRED:
        return Conflict(_("This offer has expired."))
    if status is OfferStatus.WITHDRAWN or slot.status is not SlotStatus.OFFERED:
        return Conflict(_("Sorry, this slot has been taken."))
    if status is not OfferStatus.SENT:
        return Conflict(_("You have already answered this offer."))
    return None


async def do_accept_offer(caller: Caller, offer: EarlierSlotOffer) -> Appointment:
    """Take the slot and move the client's appointment there (the same service). The first
    to accept wins: the slot's status goes from offered to taken in one conditional update,
    which on PostgreSQL waits for a concurrent accept to commit and then finds nothing to
    update; SQLite runs one write transaction at a time. The loser gets a 409."""
    now = _now()
    slot = await FreedSlot.get(id=offer.slot_id)  # type: ignore[attr-defined]
    refused = _gone(offer, slot, now)
    if refused is not None:
        raise refused
    async with atomic():
        # The practitioner's row, then the slot, then the offer: the order a booking takes
        # them in too (it locks the practitioner, then marks the freed slots it overlaps
        # taken), so a booking at the desk into the offered time and an accept at the same
        # moment wait for each other instead of deadlocking (a 500 for one of them).
        await StaffUser.filter(id=slot.practitioner_id).select_for_update().first()  # type: ignore[attr-defined]
        # The client may have booked that time elsewhere since the offer went out.
        await agenda.check_client_free(
            offer.client_id,  # type: ignore[attr-defined]
            slot.starts_at,
            slot.ends_at,
            ignore=offer.appointment_id,  # type: ignore[attr-defined]
        )
        # Time off added since the offer went out (it withdraws the offers it covers; this
        # holds under the lock, whatever committed first).
        practitioner_id: int = slot.practitioner_id  # type: ignore[attr-defined]
        if await has_time_off(practitioner_id, slot.starts_at, slot.ends_at):
            raise Conflict(_("Sorry, this slot has been taken."))
        won = await FreedSlot.filter(id=slot.id, status=SlotStatus.OFFERED).update(
            status=SlotStatus.TAKEN, taken_at=now, refilled_by_offer=True
        )
        if not won:
            raise Conflict(_("Sorry, this slot has been taken."))
        mine = await EarlierSlotOffer.filter(
            id=offer.id, status=OfferStatus.SENT, expires_at__gt=now
        ).update(status=OfferStatus.ACCEPTED, answered_at=now)
        if not mine:
            raise Conflict(_("This offer is no longer open."))
        appointment = await Appointment.get(id=offer.appointment_id)  # type: ignore[attr-defined]
        if appointment.attendance is not Attendance.SCHEDULED or appointment.deleted_at:
            raise Conflict(_("Your appointment has changed meanwhile: this offer is closed."))
        # Through the agenda's own move, so everything that follows a move (its log, the
        # agenda's live update, reminders) follows this one; it frees the old slot in turn.
        new = await agenda.do_move_appointment(caller, appointment, slot.starts_at)
        # Got the earlier slot: the new appointment waits for nothing.
        await WaitlistEntry.filter(appointment_id=new.id).update(is_active=False)
        offer.status, offer.answered_at = OfferStatus.ACCEPTED, now
        await audit.record(
            caller,
            "offer.accepted",
            object_type="earlier_slot_offer",
            object_id=offer.id,
            client_id=offer.client_id,  # type: ignore[attr-defined]
            detail={"from": appointment.id, "to": new.id},
        )
        await _confirm(offer, new)
        await _notify_offer(offer)
        await _notify_slot_badge(slot)
    return new


async def _confirm(offer: EarlierSlotOffer, new: Appointment) -> None:
    account = await PortalAccount.get(
        client_id=offer.client_id,  # type: ignore[attr-defined]
        is_active=True,
    )
    practitioner = await StaffUser.get(id=new.practitioner_id)  # type: ignore[attr-defined]
    when = format_datetime(new.starts_at, "full")
    await queue_email(
        account.email,
        _("Your appointment is moved to %(when)s") % {"when": when},
        # Not the service's name (see the booking's confirmation).
        _("Your appointment with %(name)s is moved to %(when)s.")
        % {"name": practitioner.full_name, "when": when},
        purpose="offer.accepted",
        client_id=offer.client_id,  # type: ignore[attr-defined]
        practice_id=new.practice_id,  # type: ignore[attr-defined]
    )


async def do_decline_offer(caller: Caller, offer: EarlierSlotOffer) -> None:
    """Keep the appointment (it stays on the waiting list for the next slot)."""
    now = _now()
    slot = await FreedSlot.get(id=offer.slot_id)  # type: ignore[attr-defined]
    if effective_status(offer, now) is not OfferStatus.SENT:
        refused = _gone(offer, slot, now)
        raise refused or Conflict(_("This offer is no longer open."))
    async with atomic():
        done = await EarlierSlotOffer.filter(id=offer.id, status=OfferStatus.SENT).update(
            status=OfferStatus.DECLINED, answered_at=now
        )
        if not done:
            raise Conflict(_("This offer is no longer open."))
        offer.status, offer.answered_at = OfferStatus.DECLINED, now
        await audit.record(
            caller,
            "offer.declined",
            object_type="earlier_slot_offer",
            object_id=offer.id,
            client_id=offer.client_id,  # type: ignore[attr-defined]
        )
        await _notify_offer(offer)
