"""Earlier-slot alerts: who a freed slot is offered to, the round as a job, accept (first
wins, also under real concurrency), decline, expiry, the cascade, and who may see what."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from models.accounts import PortalAccount, StaffUser
from models.agenda import Appointment, Attendance, Location, Service, TimeOff
from models.audit import AuditEntry
from models.clients import Client, PhoneNumber
from models.jobs import Job, JobStatus
from models.notifications import OutboxMessage
from models.offers import EarlierSlotOffer, FreedSlot, OfferStatus, SlotStatus, WaitlistEntry
from models.reminders import MessagingSettings
from server import jobs
from server.actions import agenda, offers, reminders
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import Conflict, ValidationFailed
from tests.conftest import IS_POSTGRES, Factory, LiveServer, login

PARIS = ZoneInfo("Europe/Paris")


def at(days: int, hour: int, minute: int = 0) -> datetime:
    """``days`` from today at ``hour`` in the practice's time zone."""
    day = datetime.now(PARIS).date() + timedelta(days=days)
    return datetime.combine(day, time(hour, minute), tzinfo=PARIS)


@pytest.fixture
async def world(make: Factory) -> dict[str, Any]:
    practice = await make.practice()
    practice.earlier_slot_alerts = True
    await practice.save()
    alice = await make.therapist(first_name="Alice", last_name="Mercier")
    bob = await make.therapist(first_name="Bob", last_name="Durand")
    lyon = await agenda.do_create_location(None, practice, name="Lyon")
    vil = await agenda.do_create_location(None, practice, name="Villeurbanne")
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=60, price=Decimal("70")
    )
    couple = await agenda.do_create_service(
        None, practice, name="Couple", duration_minutes=60, price=Decimal("90")
    )
    kids = await agenda.do_create_service(
        None, practice, name="Enfant", duration_minutes=45, price=Decimal("60")
    )
    other = await agenda.do_create_service(
        None, practice, name="Bilan", duration_minutes=60, price=Decimal("80")
    )
    for weekday in range(7):
        for who in (alice, bob):
            await agenda.do_add_availability(
                None,
                who,
                services=[talk, couple, kids],
                weekday=weekday,
                start_time=time(8),
                end_time=time(18),
                location=lyon,
            )
        await agenda.do_add_availability(
            None,
            alice,
            services=[talk, other],
            weekday=weekday,
            start_time=time(18),
            end_time=time(20),
            location=vil,
        )
    return {
        "practice": practice,
        "alice": alice,
        "bob": bob,
        "lyon": lyon,
        "vil": vil,
        "talk": talk,
        "couple": couple,
        "kids": kids,
        "other": other,
        "make": make,
    }


async def book(
    w: dict[str, Any],
    client: Client,
    start: datetime,
    *,
    service: Service | None = None,
    practitioner: StaffUser | None = None,
    location: Location | None = None,
    flag: bool = False,
) -> Appointment:
    appointment = await agenda.do_book_appointment(
        None,
        practitioner=practitioner or w["alice"],
        client=client,
        service=service or w["talk"],
        starts_at=start,
        location=location or w["lyon"],
    )
    if flag:
        await offers.do_set_earlier_alert(None, appointment, True)
    return appointment


async def run_jobs(minutes: int = 10) -> None:
    """The worker, a few minutes later (past the offer delay)."""
    await jobs.run_due(now=datetime.now(UTC) + timedelta(minutes=minutes))


async def free(appointment: Appointment, how: Attendance = Attendance.CANCELLED_BY_CLIENT) -> None:
    await agenda.do_set_attendance(None, appointment, how)
    await run_jobs()


async def offered_clients(appointment: Appointment) -> list[int]:
    slot = await FreedSlot.get(appointment_id=appointment.id)
    rows = await EarlierSlotOffer.filter(slot_id=slot.id).order_by("id")
    return [r.client_id for r in rows]  # type: ignore[attr-defined]


# --- the matching rules ------------------------------------------------------------------------

# Each case changes one thing about the waiting client's flagged appointment (the freed slot
# is with Alice in Lyon in 20 days at 10:00, a 60-minute "Séance"), and says whether it is
# offered the slot.
CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("later, same everything", {}, True),
    ("earlier than the slot", {"days": 15}, False),
    ("same day, later hour", {"days": 20, "hour": 14}, True),
    ("same day, earlier hour", {"days": 20, "hour": 8}, False),
    ("another practitioner", {"practitioner": "bob"}, False),
    ("another location", {"location": "vil", "hour": 18}, False),
    ("another service the slot's hours offer", {"service": "couple"}, True),
    (
        "a service the slot's hours do not offer",
        {"service": "other", "location": "vil", "hour": 18},
        False,
    ),
    ("a different duration", {"service": "kids"}, False),
    ("not on the waiting list", {"flag": False}, False),
    ("left the waiting list", {"leave": True}, False),
    ("an offer still awaiting an answer", {"pending": True}, False),
    ("the pending offer's slot was taken since", {"pending": True, "taken": True}, True),
    ("the pending offer expired", {"pending": True, "expired": True}, True),
    ("no portal account to answer with", {"portal": False}, False),
    ("already with another practitioner at that time", {"busy": True}, False),
]


@pytest.mark.parametrize(("case", "change", "offered"), CASES, ids=[c[0] for c in CASES])
async def test_matching_rules(
    world: dict[str, Any], case: str, change: dict[str, Any], offered: bool
) -> None:
    w, make = world, world["make"]
    cancelling = await make.client(w["alice"])
    waiting = await make.client(w["alice"], portal=change.get("portal", True))
    freed = await book(w, cancelling, at(20, 10))
    if change.get("pending"):
        # An earlier round offered the waiting client another slot (in 19 days).
        other = await make.client(w["alice"])
        earlier = await book(w, other, at(19, 9))
        await book(w, waiting, at(30, 9), flag=True)
        await free(earlier)
        assert await offered_clients(earlier) == [waiting.id]
        if change.get("taken"):
            await book(w, await make.client(w["alice"]), at(19, 9))  # the front desk books it
        if change.get("expired"):
            await EarlierSlotOffer.filter(client_id=waiting.id).update(
                expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
    days, hour = change.get("days", 25), change.get("hour", 10)
    flagged = await book(
        w,
        waiting,
        at(days, hour),
        service=w[change.get("service", "talk")],
        practitioner=w[change.get("practitioner", "alice")],
        location=w[change.get("location", "lyon")],
        flag=change.get("flag", True),
    )
    if change.get("leave"):
        await offers.do_set_earlier_alert(None, flagged, False)
    if change.get("busy"):
        await book(w, waiting, at(20, 10), practitioner=w["bob"])
    await free(freed)
    got = await EarlierSlotOffer.filter(slot__appointment_id=freed.id, client_id=waiting.id)
    assert bool(got) is offered, case
    if offered and not change.get("pending"):
        assert got[0].appointment_id == flagged.id  # type: ignore[attr-defined]


async def test_the_first_five_in_the_order_they_joined(world: dict[str, Any]) -> None:
    w, make = world, world["make"]
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    waiting = [await make.client(w["alice"]) for _ in range(7)]
    appointments = [await book(w, c, at(20 + i, 10), flag=True) for i, c in enumerate(waiting)]
    # They joined the list in another order than their appointments were booked.
    order = [5, 2, 6, 0, 3, 1, 4]
    base = datetime.now(UTC) - timedelta(days=1)
    for rank, i in enumerate(order):
        await WaitlistEntry.filter(appointment_id=appointments[i].id).update(
            joined_at=base + timedelta(minutes=rank)
        )
    await free(freed, Attendance.CANCELLED_BY_PRACTITIONER)
    assert await offered_clients(freed) == [waiting[i].id for i in order[:5]]
    mails = await OutboxMessage.filter(purpose="offer.sent").order_by("id")
    assert [m.to for m in mails] == [waiting[i].email for i in order[:5]]
    assert "/portal/offers/" in mails[0].body_text
    slot = await FreedSlot.get(appointment_id=freed.id)
    assert slot.status is SlotStatus.OFFERED


@pytest.mark.parametrize(
    "how",
    [Attendance.CANCELLED_BY_CLIENT, Attendance.CANCELLED_BY_PRACTITIONER, Attendance.NO_SHOW],
)
async def test_what_frees_a_slot(world: dict[str, Any], how: Attendance) -> None:
    w, make = world, world["make"]
    waiting = await make.client(w["alice"])
    await book(w, waiting, at(25, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed, how)
    assert await offered_clients(freed) == [waiting.id]


async def test_a_move_frees_the_old_date(world: dict[str, Any]) -> None:
    w, make = world, world["make"]
    waiting = await make.client(w["alice"])
    await book(w, waiting, at(25, 10), flag=True)
    moving = await book(w, await make.client(w["alice"]), at(12, 10))
    await agenda.do_move_appointment(None, moving, at(13, 10))
    await run_jobs()
    assert await offered_clients(moving) == [waiting.id]


async def test_deletion_and_new_hours_free_nothing(world: dict[str, Any]) -> None:
    w, make = world, world["make"]
    waiting = await make.client(w["alice"])
    await book(w, waiting, at(25, 10), flag=True)
    gone = await book(w, await make.client(w["alice"]), at(12, 10))
    await agenda.do_delete_appointment(None, gone)
    await agenda.do_add_availability(
        None,
        w["alice"],
        services=[w["talk"]],
        on_date=at(11, 7).date(),
        start_time=time(6),
        end_time=time(8),
        location=w["lyon"],
    )
    await run_jobs()
    assert await FreedSlot.all().count() == 0
    assert await EarlierSlotOffer.all().count() == 0
    assert await Job.filter(kind="offers.round").count() == 0


async def test_feature_off_frees_nothing_and_refuses_the_flag(world: dict[str, Any]) -> None:
    w, make = world, world["make"]
    w["practice"].earlier_slot_alerts = False
    await w["practice"].save()
    appointment = await book(w, await make.client(w["alice"]), at(25, 10))
    with pytest.raises(ValidationFailed) as refused:
        await offers.do_set_earlier_alert(None, appointment, True)
    assert "alert_earlier" in refused.value.fields
    await free(appointment)
    assert await FreedSlot.all().count() == 0


async def test_the_flag_needs_the_minimum_delay(world: dict[str, Any]) -> None:
    w, make = world, world["make"]
    client = await make.client(w["alice"])
    soon = await book(w, client, at(9, 10))
    with pytest.raises(ValidationFailed):
        await offers.do_set_earlier_alert(None, soon, True)
    w["practice"].earlier_slot_min_days = 5
    await w["practice"].save()
    assert await offers.do_set_earlier_alert(None, soon, True) is not None


async def test_the_round_waits_a_few_minutes_and_a_quick_undo_calls_it_off(
    world: dict[str, Any],
) -> None:
    w, make = world, world["make"]
    waiting = await make.client(w["alice"])
    await book(w, waiting, at(25, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await agenda.do_set_attendance(None, freed, Attendance.CANCELLED_BY_CLIENT)
    job = await Job.get(kind="offers.round")
    assert job.run_at > datetime.now(UTC) + timedelta(minutes=2)
    await jobs.run_due()  # now: not due yet
    assert await EarlierSlotOffer.all().count() == 0
    # A mistaken cancellation, undone: the slot is held again and nobody hears of it.
    await agenda.do_set_attendance(None, freed, Attendance.SCHEDULED)
    await run_jobs()
    assert await EarlierSlotOffer.all().count() == 0
    assert (await Job.get(id=job.id)).status is JobStatus.CANCELLED
    assert (await FreedSlot.get(appointment_id=freed.id)).status is SlotStatus.TAKEN


# --- answers -----------------------------------------------------------------------------------


async def caller_of(client: Client) -> Any:
    """The client as the portal sees them (for calling actions directly)."""
    account = await PortalAccount.get(client_id=client.id)
    return Caller.acting_as((account, client))


async def test_accept_moves_the_appointment_and_withdraws_the_others(
    world: dict[str, Any],
) -> None:
    w, make = world, world["make"]
    first, second = await make.client(w["alice"]), await make.client(w["alice"])
    mine = await book(w, first, at(25, 10), flag=True)
    await book(w, second, at(26, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed)
    offer = await EarlierSlotOffer.get(client_id=first.id)
    other = await EarlierSlotOffer.get(client_id=second.id)
    new = await offers.do_accept_offer(await caller_of(first), offer)
    assert new.starts_at == at(12, 10) and new.service_id == mine.service_id  # type: ignore[attr-defined]
    assert (await Appointment.get(id=mine.id)).attendance is Attendance.MOVED
    assert (await EarlierSlotOffer.get(id=offer.id)).status is OfferStatus.ACCEPTED
    assert (await EarlierSlotOffer.get(id=other.id)).status is OfferStatus.WITHDRAWN
    slot = await FreedSlot.get(appointment_id=freed.id)
    assert slot.status is SlotStatus.TAKEN and slot.refilled_by_offer
    moved = await OutboxMessage.get(purpose="offer.accepted", to=first.email)
    assert w["talk"].name not in moved.subject + moved.body_text  # which therapy: not said
    # Too late for the second one: the slot is gone, their appointment stays.
    with pytest.raises(Conflict):
        await offers.do_accept_offer(await caller_of(second), other)
    # The new appointment waits for nothing more.
    assert not await WaitlistEntry.filter(appointment_id=new.id, is_active=True).exists()
    # All of it is on the client's log.
    actions = set(await AuditEntry.filter(client_id=first.id).values_list("action", flat=True))
    assert {"offer.waitlist_joined", "offer.sent", "offer.accepted"} <= actions
    assert {"appointment.created", "appointment.attendance"} <= actions


async def test_an_offer_is_refused_when_the_client_has_booked_that_time_since(
    world: dict[str, Any],
) -> None:
    """Offered Alice's 10:00, the client then booked Bob's 10:00: accepting moved them into
    Alice's as well, two sessions at once. Refused, and the slot stays offered to others."""
    w, make = world, world["make"]
    me = await make.client(w["alice"])
    mine = await book(w, me, at(25, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed)
    offer = await EarlierSlotOffer.get(client_id=me.id)
    await book(w, me, at(12, 10), practitioner=w["bob"])
    with pytest.raises(Conflict, match="already have an appointment at that time"):
        await offers.do_accept_offer(await caller_of(me), offer)
    held = await Appointment.filter(client_id=me.id, attendance=Attendance.SCHEDULED)
    assert sorted(a.starts_at for a in held) == [at(12, 10), mine.starts_at]
    assert (await FreedSlot.get(appointment_id=freed.id)).status is SlotStatus.OFFERED


async def test_decline_keeps_the_appointment_on_the_list(world: dict[str, Any]) -> None:
    w, make = world, world["make"]
    client = await make.client(w["alice"])
    mine = await book(w, client, at(25, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed)
    offer = await EarlierSlotOffer.get(client_id=client.id)
    await offers.do_decline_offer(await caller_of(client), offer)
    assert (await EarlierSlotOffer.get(id=offer.id)).status is OfferStatus.DECLINED
    assert (await Appointment.get(id=mine.id)).attendance is Attendance.SCHEDULED
    with pytest.raises(Conflict):
        await offers.do_accept_offer(
            await caller_of(client), await EarlierSlotOffer.get(id=offer.id)
        )
    # Still waiting: the next freed slot is offered again.
    freed2 = await book(w, await make.client(w["alice"]), at(13, 10))
    await free(freed2)
    assert await offered_clients(freed2) == [client.id]


async def test_an_offer_is_valid_fifteen_days(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    w, make = world, world["make"]
    client = await make.client(w["alice"])
    await book(w, client, at(40, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(30, 10))
    await free(freed)
    offer = await EarlierSlotOffer.get(client_id=client.id)
    assert offer.expires_at - offer.sent_at == timedelta(days=15)
    later = offer.sent_at + timedelta(days=15)
    assert offers.effective_status(offer, later - timedelta(seconds=1)) is OfferStatus.SENT
    assert offers.effective_status(offer, later) is OfferStatus.EXPIRED
    monkeypatch.setattr(offers, "_now", lambda: later + timedelta(seconds=1))
    with pytest.raises(Conflict, match="expired"):
        await offers.do_accept_offer(await caller_of(client), offer)
    # An expired offer no longer counts as pending: the client can be offered another slot.
    assert not await offers.has_pending_offer(client.id, later)


async def test_an_offer_never_outlives_its_slot(world: dict[str, Any]) -> None:
    w, make = world, world["make"]
    client = await make.client(w["alice"])
    await book(w, client, at(25, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(3, 10))
    await free(freed)
    offer = await EarlierSlotOffer.get(client_id=client.id)
    assert offer.expires_at == at(3, 10)


async def test_cascade_over_three_levels(world: dict[str, Any]) -> None:
    w, make = world, world["make"]
    a, b, c = [await make.client(w["alice"]) for _ in range(3)]
    a1 = await book(w, a, at(14, 10), flag=True)
    b1 = await book(w, b, at(16, 10), flag=True)
    c1 = await book(w, c, at(18, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed)
    assert set(await offered_clients(freed)) == {a.id, b.id, c.id}
    # A takes 12 days: A's 14 days is freed and offered to B and C (later than it).
    await offers.do_accept_offer(await caller_of(a), await EarlierSlotOffer.get(client_id=a.id))
    await run_jobs()
    assert set(await offered_clients(a1)) == {b.id, c.id}
    offer_b = await EarlierSlotOffer.get(client_id=b.id, slot__appointment_id=a1.id)
    await offers.do_accept_offer(await caller_of(b), offer_b)
    await run_jobs()
    assert await offered_clients(b1) == [c.id]
    offer_c = await EarlierSlotOffer.get(client_id=c.id, slot__appointment_id=b1.id)
    await offers.do_accept_offer(await caller_of(c), offer_c)
    await run_jobs()
    # C's old date is freed too, with nobody left to offer it to.
    assert (await FreedSlot.get(appointment_id=c1.id)).status is SlotStatus.UNMATCHED
    now = {
        x.id: (await Appointment.get(client_id=x.id, attendance=Attendance.SCHEDULED)).starts_at
        for x in (a, b, c)
    }
    assert now == {a.id: at(12, 10), b.id: at(14, 10), c.id: at(16, 10)}


async def test_staff_booking_the_slot_withdraws_its_offers(
    world: dict[str, Any], capture_events: Any
) -> None:
    w, make = world, world["make"]
    client = await make.client(w["alice"])
    await book(w, client, at(25, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed)
    captured = capture_events()
    await book(w, await make.client(w["alice"]), at(12, 10))
    assert (await EarlierSlotOffer.get(client_id=client.id)).status is OfferStatus.WITHDRAWN
    account = await w["make"].portal_account(client)
    changed = captured.of_type("offer.changed")
    assert [(e.recipient, e.payload["status"]) for e in changed] == [
        (f"c:{account.id}", "withdrawn")
    ]


# --- time off --------------------------------------------------------------------------------


async def test_a_slot_freed_inside_time_off_is_not_offered(world: dict[str, Any]) -> None:
    """Alice is off sick on day 12 and cancels her 10:00 there: the round offered 10:00 on
    her sick day to the waiting list, and a client who accepted was moved into it."""
    w, make = world, world["make"]
    await book(w, await make.client(w["alice"]), at(25, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await agenda.do_add_time_off(
        None, w["alice"], starts_at=at(12, 0), ends_at=at(13, 0), reason="Sick"
    )
    await free(freed, Attendance.CANCELLED_BY_PRACTITIONER)
    assert not await EarlierSlotOffer.exists()
    assert (await FreedSlot.get(appointment_id=freed.id)).status is SlotStatus.CLOSED


async def test_time_off_withdraws_the_offers_it_covers(
    world: dict[str, Any], capture_events: Any
) -> None:
    """The slot was offered, then Alice took that day off: the offer stayed open, and
    accepting it moved the client's appointment into her time off."""
    w, make = world, world["make"]
    waiting = await make.client(w["alice"])
    mine = await book(w, waiting, at(25, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed)
    offer = await EarlierSlotOffer.get(client_id=waiting.id)
    captured = capture_events()
    await agenda.do_add_time_off(
        None, w["alice"], starts_at=at(12, 0), ends_at=at(13, 0), reason="Training"
    )
    assert (await EarlierSlotOffer.get(id=offer.id)).status is OfferStatus.WITHDRAWN
    assert (await FreedSlot.get(appointment_id=freed.id)).status is SlotStatus.CLOSED
    account = await make.portal_account(waiting)
    assert [(e.recipient, e.payload["status"]) for e in captured.of_type("offer.changed")] == [
        (f"c:{account.id}", "withdrawn")
    ]
    with pytest.raises(Conflict):
        await offers.do_accept_offer(await caller_of(waiting), offer)
    assert (await Appointment.get(id=mine.id)).attendance is Attendance.SCHEDULED
    assert not await Appointment.filter(
        practitioner_id=w["alice"].id, starts_at=at(12, 10), attendance=Attendance.SCHEDULED
    ).exists()


async def test_a_slot_time_off_closed_is_offered_once_the_time_off_goes(
    world: dict[str, Any],
) -> None:
    """Alice's sick day closed the 10:00 and 15:00 she had cancelled. She felt better and
    shortened it to the morning: the 15:00 stayed closed to the waiting list for good, and
    so did the 10:00 once she removed the time off altogether."""
    w, make = world, world["make"]
    waiting = await make.client(w["alice"])
    await book(w, waiting, at(25, 10), flag=True)
    morning = await book(w, await make.client(w["alice"]), at(12, 10))
    afternoon = await book(w, await make.client(w["alice"]), at(12, 15))
    sick = await agenda.do_add_time_off(
        None, w["alice"], starts_at=at(12, 0), ends_at=at(13, 0), reason="Sick"
    )
    await free(morning, Attendance.CANCELLED_BY_PRACTITIONER)
    await free(afternoon, Attendance.CANCELLED_BY_PRACTITIONER)
    assert not await EarlierSlotOffer.exists()
    await agenda.do_update_time_off(
        None, sick, starts_at=at(12, 0), ends_at=at(12, 13), reason="Sick"
    )
    await run_jobs()
    assert (await FreedSlot.get(appointment_id=morning.id)).status is SlotStatus.CLOSED
    assert await offered_clients(afternoon) == [waiting.id]
    # The 15:00 is now offered; removing the time off opens the 10:00 too, for the others.
    other = await make.client(w["alice"])
    await book(w, other, at(26, 10), flag=True)
    await agenda.do_remove_time_off(None, sick)
    await run_jobs()
    assert (await FreedSlot.get(appointment_id=morning.id)).status is SlotStatus.OFFERED
    assert other.id in await offered_clients(morning)


async def test_a_closed_slot_booked_meanwhile_stays_taken_when_the_time_off_goes(
    world: dict[str, Any],
) -> None:
    w, make = world, world["make"]
    await book(w, await make.client(w["alice"]), at(25, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed)
    sick = await agenda.do_add_time_off(
        None, w["alice"], starts_at=at(12, 0), ends_at=at(13, 0), reason="Sick"
    )
    # The front desk booked someone at 10:00 all the same (a booking is not refused by
    # time off: the desk decides).
    await book(w, await make.client(w["alice"]), at(12, 10))
    offers_before = await EarlierSlotOffer.filter(status=OfferStatus.SENT).count()
    await agenda.do_remove_time_off(None, sick)
    await run_jobs()
    assert (await FreedSlot.get(appointment_id=freed.id)).status is SlotStatus.TAKEN
    assert await EarlierSlotOffer.filter(status=OfferStatus.SENT).count() == offers_before


async def test_an_offer_left_open_over_time_off_cannot_be_accepted(
    world: dict[str, Any],
) -> None:
    """An offer still open over time off (added before time off withdrew offers): accepting
    it is refused under the practitioner's lock, and the client keeps her appointment."""
    w, make = world, world["make"]
    waiting = await make.client(w["alice"])
    mine = await book(w, waiting, at(25, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed)
    offer = await EarlierSlotOffer.get(client_id=waiting.id)
    await TimeOff.create(practitioner=w["alice"], starts_at=at(12, 0), ends_at=at(13, 0))
    with pytest.raises(Conflict, match="this slot has been taken"):
        await offers.do_accept_offer(await caller_of(waiting), offer)
    assert (await Appointment.get(id=mine.id)).attendance is Attendance.SCHEDULED
    assert (await EarlierSlotOffer.get(id=offer.id)).status is OfferStatus.SENT


async def test_the_client_who_freed_a_slot_is_not_told_what_others_do_with_it(
    world: dict[str, Any], capture_events: Any
) -> None:
    """The offer round and another client's acceptance redraw the cancelled appointment on
    the front desk's agenda (its "offered" badge); they also pushed it, unchanged, to the
    portal of the client who cancelled it, telling her when her old slot was offered to
    others and taken."""
    w, make = world, world["make"]
    waiting = await make.client(w["alice"])
    await book(w, waiting, at(25, 10), flag=True)
    leaver = await make.client(w["alice"])
    freed = await book(w, leaver, at(12, 10))
    await agenda.do_set_attendance(None, freed, Attendance.CANCELLED_BY_CLIENT)
    captured = capture_events()
    await run_jobs()  # the round: an offer goes to `waiting`
    offer = await EarlierSlotOffer.get(client_id=waiting.id)
    await offers.do_accept_offer(await caller_of(waiting), offer)
    leaver_account = await make.portal_account(leaver)
    assert f"c:{leaver_account.id}" not in captured.recipients()
    # The agenda still redraws her cancelled appointment, once offered and once taken.
    badge = [
        e
        for e in captured.of_type("appointment.changed")
        if e.recipient == f"s:{w['alice'].id}" and e.payload["id"] == freed.id
    ]
    assert [e.payload["slot_offer"] for e in badge] == ["offered", "taken"]


# --- two clients accept the same slot at the same moment ---------------------------------------


async def test_two_clients_accept_at_once_exactly_one_wins(
    world: dict[str, Any], live_server: LiveServer
) -> None:
    w, make = world, world["make"]
    clients = [await make.client(w["alice"]) for _ in range(2)]
    for i, c in enumerate(clients):
        await book(w, c, at(25 + i, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed)
    browsers = [httpx.AsyncClient(base_url=live_server.url) for _ in clients]
    try:
        for http, c in zip(browsers, clients, strict=True):
            await login(http, c)
        ids = [(await EarlierSlotOffer.get(client_id=c.id)).id for c in clients]

        async def accept(http: httpx.AsyncClient, offer_id: int) -> int:
            r = await http.post(
                f"/portal/offers/{offer_id}/accept",
                data={"csrf_token": http.headers["X-CSRF-Token"]},
            )
            return r.status_code

        statuses = await asyncio.gather(*(accept(h, i) for h, i in zip(browsers, ids, strict=True)))
    finally:
        for http in browsers:
            await http.aclose()
    assert sorted(statuses) == [303, 409]
    assert (
        await Appointment.filter(
            starts_at=at(12, 10).astimezone(UTC), attendance=Attendance.SCHEDULED
        ).count()
        == 1
    )
    statuses_after = sorted([o.status.value for o in await EarlierSlotOffer.filter(id__in=ids)])
    assert statuses_after == ["accepted", "withdrawn"]


# --- who may see and answer an offer -----------------------------------------------------------


async def test_a_client_sees_and_answers_only_their_own_offers(
    world: dict[str, Any], new_http: Any
) -> None:
    w, make = world, world["make"]
    mine, theirs = await make.client(w["alice"]), await make.client(w["alice"])
    await book(w, mine, at(25, 10), flag=True)
    freed = await book(w, theirs, at(12, 10))
    await free(freed)
    offer = await EarlierSlotOffer.get(client_id=mine.id)
    nobody = new_http()
    r = await nobody.get(f"/portal/offers/{offer.id}")
    assert r.status_code in (302, 303, 401)
    other = new_http()
    await login(other, theirs)
    assert (await other.get(f"/portal/offers/{offer.id}")).status_code == 404
    r = await other.post(
        f"/portal/offers/{offer.id}/accept", data={"csrf_token": other.headers["X-CSRF-Token"]}
    )
    assert r.status_code == 404
    assert (await EarlierSlotOffer.get(id=offer.id)).status is OfferStatus.SENT
    me = new_http()
    await login(me, mine)
    page = await me.get(f"/portal/offers/{offer.id}")
    assert page.status_code == 200 and "Accept and move my appointment" in page.text
    assert (await me.get(f"/portal/offers/{offer.id + 999}")).status_code == 404
    listing = await me.get("/portal/appointments")
    assert f'data-offer="{offer.id}"' in listing.text
    r = await me.post(
        f"/portal/offers/{offer.id}/decline", data={"csrf_token": me.headers["X-CSRF-Token"]}
    )
    assert r.status_code == 303
    page = await me.get(f"/portal/offers/{offer.id}")
    assert "You declined" in page.text


async def test_an_expired_link_says_so(world: dict[str, Any], http: httpx.AsyncClient) -> None:
    w, make = world, world["make"]
    client = await make.client(w["alice"])
    await book(w, client, at(25, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed)
    offer = await EarlierSlotOffer.get(client_id=client.id)
    await EarlierSlotOffer.filter(id=offer.id).update(
        expires_at=datetime.now(UTC) - timedelta(minutes=1)
    )
    await login(http, client)
    page = await http.get(f"/portal/offers/{offer.id}")
    assert "This offer has expired." in page.text
    r = await http.post(
        f"/portal/offers/{offer.id}/accept", data={"csrf_token": http.headers["X-CSRF-Token"]}
    )
    assert r.status_code == 409 and "expired" in r.text


async def test_the_client_sets_the_flag_on_the_portal(
    world: dict[str, Any], http: httpx.AsyncClient
) -> None:
    w, make = world, world["make"]
    client = await make.client(w["alice"])
    far = await book(w, client, at(25, 10))
    soon = await book(w, client, at(5, 10))
    await login(http, client)
    page = await http.get("/portal/appointments")
    assert f'action="/portal/appointments/{far.id}/earlier-alert"' in page.text
    assert f'action="/portal/appointments/{soon.id}/earlier-alert"' not in page.text
    csrf = http.headers["X-CSRF-Token"]
    r = await http.post(
        f"/portal/appointments/{far.id}/earlier-alert", data={"csrf_token": csrf, "on": "true"}
    )
    assert r.status_code == 303
    assert await WaitlistEntry.filter(appointment_id=far.id, is_active=True).exists()
    r = await http.post(
        f"/portal/appointments/{soon.id}/earlier-alert", data={"csrf_token": csrf, "on": "true"}
    )
    assert r.status_code == 422
    assert not await WaitlistEntry.filter(appointment_id=soon.id).exists()
    other = await book(w, await make.client(w["alice"]), at(26, 10))
    r = await http.post(
        f"/portal/appointments/{other.id}/earlier-alert", data={"csrf_token": csrf, "on": "true"}
    )
    assert r.status_code == 404


# --- staff: settings, the flag in the agenda, to whom a slot was offered, the fill rate ---------


async def test_the_owner_turns_alerts_on_with_a_minimum_delay(new_http: Any, make: Factory) -> None:
    owner = await make.owner()
    practice = await make.practice()
    assert practice.earlier_slot_alerts is False and practice.earlier_slot_min_days == 10
    http = new_http("10.9.3.1")
    me = await login(http, owner)
    form = {
        "csrf_token": me["csrf_token"],
        "name": practice.name,
        "cancellation_notice_hours": "24",
        "video_url_template": practice.video_url_template,
        "earlier_slot_alerts": "true",
        "earlier_slot_min_days": "7",
    }
    page = await http.get("/staff/practice")
    assert 'name="earlier_slot_alerts"' in page.text
    assert (await http.post("/staff/practice", data=form)).status_code == 303
    await practice.refresh_from_db()
    assert practice.earlier_slot_alerts is True and practice.earlier_slot_min_days == 7
    bad = await http.post("/staff/practice", data={**form, "earlier_slot_min_days": "0"})
    assert bad.status_code == 422
    # Unticked: off again.
    del form["earlier_slot_alerts"]
    assert (await http.post("/staff/practice", data=form)).status_code == 303
    await practice.refresh_from_db()
    assert practice.earlier_slot_alerts is False
    therapist = await make.therapist()
    other = new_http("10.9.3.2")
    await login(other, therapist)
    assert (await other.get("/staff/practice")).status_code in (403, 404)
    assert (await other.get("/staff/practice/fill-rate")).status_code in (403, 404)


async def test_staff_flag_an_appointment_when_booking_and_later(
    world: dict[str, Any], http: httpx.AsyncClient
) -> None:
    w, make = world, world["make"]
    owner = await make.owner()
    client = await make.client(w["alice"])
    await login(http, owner)
    body = {
        "practitioner_id": w["alice"].id,
        "client_id": client.id,
        "service_id": w["talk"].id,
        "location_id": w["lyon"].id,
        "starts_at": at(25, 10).isoformat(),
        "alert_earlier": True,
    }
    r = await http.post("/api/appointments", json=body)
    assert r.status_code == 200 and r.json()["alert_earlier"] is True
    # Too soon for the waiting list: refused, and nothing is booked.
    r = await http.post("/api/appointments", json={**body, "starts_at": at(5, 10).isoformat()})
    assert r.status_code == 422 and "alert_earlier" in r.json()["error"]["fields"]
    assert await Appointment.filter(client_id=client.id).count() == 1
    later = await book(w, client, at(26, 11))
    r = await http.post(f"/api/appointments/{later.id}/earlier-alert", json={"on": True})
    assert r.status_code == 200 and r.json() == {"id": later.id, "alert_earlier": True}
    r = await http.post(f"/api/appointments/{later.id}/earlier-alert", json={"on": False})
    assert r.json()["alert_earlier"] is False
    assert (
        await http.post("/api/appointments/99999/earlier-alert", json={"on": True})
    ).status_code == 404
    page = await http.get("/staff/agenda")
    assert 'name="alert_earlier"' in page.text


async def test_staff_see_to_whom_a_slot_was_offered(world: dict[str, Any], new_http: Any) -> None:
    w, make = world, world["make"]
    owner, admin = await make.owner(), await make.office_admin()
    carol = await make.therapist()
    first = await make.client(w["alice"], first_name="Zoé", last_name="Premier")
    second = await make.client(carol, first_name="Yann", last_name="Second")
    await book(w, first, at(25, 10), flag=True)
    await book(w, second, at(26, 10), flag=True)
    # The slot is made twice: booked, cancelled, booked again by another, cancelled again.
    one = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(one)
    await offers.do_decline_offer(
        await caller_of(first), await EarlierSlotOffer.get(client_id=first.id)
    )
    await offers.do_accept_offer(
        await caller_of(second), await EarlierSlotOffer.get(client_id=second.id)
    )
    taken = await Appointment.get(client_id=second.id, attendance=Attendance.SCHEDULED)
    await free(taken, Attendance.CANCELLED_BY_PRACTITIONER)
    for who in (owner, admin):
        http = new_http()
        await login(http, who)
        r = await http.get(f"/api/appointments/{one.id}/offers")
        assert r.status_code == 200
        rows = r.json()
        assert [row["appointment_id"] for row in rows] == [one.id, taken.id]
        assert [(o["client_name"], o["status"]) for o in rows[0]["offers"]] == [
            ("Zoé Premier", "declined"),
            ("Yann Second", "accepted"),
        ]
        assert all(o["sent_at"] and o["answered_at"] for o in rows[0]["offers"])
        # The second cancellation offered it to Zoé again (she declined, so is waiting).
        assert [(o["client_name"], o["status"]) for o in rows[1]["offers"]] == [
            ("Zoé Premier", "sent")
        ]
    # Alice sees her own clients by name; Carol's client stays unnamed for her.
    http = new_http()
    await login(http, w["alice"])
    rows = (await http.get(f"/api/appointments/{one.id}/offers")).json()
    assert [o["client_name"] for o in rows[0]["offers"]] == ["Zoé Premier", ""]
    # Nor by id: an id names a file as well as a name does (it reappears in every link).
    assert [o["client_id"] for o in rows[0]["offers"]] == [first.id, None]
    # Carol sees Alice's session with Alice's client as private in the agenda: it has no
    # offers list for her (her own client's offer is in her client's file).
    http = new_http()
    await login(http, carol)
    assert (await http.get(f"/api/appointments/{one.id}/offers")).status_code == 404
    assert (await http.get("/api/appointments/99999/offers")).status_code == 404
    # The client may not use the staff API.
    http = new_http()
    await login(http, first)
    assert (await http.get(f"/api/appointments/{one.id}/offers")).status_code in (401, 403, 404)


async def test_the_agenda_shows_the_slot_offered_then_booked(
    world: dict[str, Any], http: httpx.AsyncClient, capture_events: Any
) -> None:
    w, make = world, world["make"]
    owner = await make.owner()
    waiting = await make.client(w["alice"])
    await book(w, waiting, at(25, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await agenda.do_set_attendance(None, freed, Attendance.CANCELLED_BY_CLIENT)
    captured = capture_events()
    await run_jobs()
    staff_views = [
        e.payload
        for e in captured.of_type("appointment.changed")
        if e.recipient == f"s:{owner.id}" and e.payload["id"] == freed.id
    ]
    assert [v["slot_offer"] for v in staff_views] == ["offered"]
    # The client's own view of their cancelled appointment says nothing of it.
    assert all(
        "slot_offer" not in e.payload
        for e in captured.events
        if e.recipient.startswith("c:") and e.type == "appointment.changed"
    )
    await login(http, owner)
    day = at(12, 10).date().isoformat()
    data = (await http.get(f"/api/agenda?start={day}&days=1")).json()
    block = next(a for a in data["appointments"] if a["id"] == freed.id)
    assert block["slot_offer"] == "offered"
    captured = capture_events()
    await offers.do_accept_offer(
        await caller_of(waiting), await EarlierSlotOffer.get(client_id=waiting.id)
    )
    views = [
        e.payload for e in captured.of_type("appointment.changed") if e.recipient == f"s:{owner.id}"
    ]
    assert any(v["id"] == freed.id and v["slot_offer"] == "taken" for v in views)
    assert any(
        v["starts_at"].startswith(at(12, 10).astimezone(UTC).isoformat()[:16])
        and v["attendance"] == "scheduled"
        for v in views
    )


async def test_fill_rate_counts_freed_offered_refilled(
    world: dict[str, Any], http: httpx.AsyncClient
) -> None:
    w, make = world, world["make"]
    owner = await make.owner()
    waiting = await make.client(w["alice"])
    await book(w, waiting, at(25, 10), flag=True)
    refilled = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(refilled)
    await offers.do_accept_offer(
        await caller_of(waiting), await EarlierSlotOffer.get(client_id=waiting.id)
    )
    await run_jobs()  # the moved-from slot (25 days) is freed and offered to nobody
    unoffered = await book(w, await make.client(w["alice"]), at(13, 10))
    await free(unoffered)
    await login(http, owner)
    page = await http.get("/staff/practice/fill-rate?days=30")
    assert page.status_code == 200 and "<svg" in page.text
    assert 'data-figure="freed">3<' in page.text
    assert 'data-figure="offered">1<' in page.text
    assert 'data-figure="refilled">1<' in page.text
    assert 'data-figure="rate">33 %<' in page.text


async def test_offers_answers_and_moves_are_on_the_clients_log(
    world: dict[str, Any], http: httpx.AsyncClient
) -> None:
    w, make = world, world["make"]
    owner = await make.owner()
    client = await make.client(w["alice"])
    await book(w, client, at(25, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed)
    await offers.do_accept_offer(
        await caller_of(client), await EarlierSlotOffer.get(client_id=client.id)
    )
    await login(http, owner)
    page = await http.get(f"/staff/clients/{client.id}/logs")
    assert page.status_code == 200
    for text in (
        "asked to be alerted of an earlier slot",
        "Cabinet (automatic)</strong> offered an earlier slot",
        "accepted an earlier slot",
        "An earlier slot is free",  # the email
        "Your appointment is moved",  # the confirmation
    ):
        assert text in page.text, text


async def test_cancelling_the_waiting_appointment_voids_its_offer(world: dict[str, Any]) -> None:
    w, make = world, world["make"]
    client = await make.client(w["alice"])
    mine = await book(w, client, at(25, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed)
    await agenda.do_set_attendance(None, mine, Attendance.CANCELLED_BY_CLIENT)
    offer = await EarlierSlotOffer.get(client_id=client.id)
    assert offer.status is OfferStatus.WITHDRAWN
    assert not await WaitlistEntry.filter(appointment_id=mine.id, is_active=True).exists()


async def test_a_deleted_waiting_appointment_blocks_nothing(world: dict[str, Any]) -> None:
    w, make = world, world["make"]
    client = await make.client(w["alice"])
    mine = await book(w, client, at(25, 10), flag=True)
    await book(w, client, at(27, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed)
    await agenda.do_delete_appointment(None, mine)
    assert not await offers.has_pending_offer(client.id, datetime.now(UTC))
    freed2 = await book(w, await make.client(w["alice"]), at(13, 10))
    await free(freed2)
    assert await offered_clients(freed2) == [client.id]


async def test_the_client_asks_for_alerts_when_booking_online(
    world: dict[str, Any], http: httpx.AsyncClient
) -> None:
    w, make = world, world["make"]
    client = await make.client(w["alice"])
    await login(http, client)
    page = await http.get(
        f"/portal/book/{w['alice'].id}?location={w['lyon'].id}&service={w['talk'].id}&alert=1"
    )
    assert 'name="alert" value="1" checked' in page.text
    assert 'name="alert_earlier" value="true"' in page.text

    async def post(start: datetime) -> httpx.Response:
        return await http.post(
            f"/portal/book/{w['alice'].id}",
            data={
                "csrf_token": http.headers["X-CSRF-Token"],
                "service_id": str(w["talk"].id),
                "location_id": str(w["lyon"].id),
                "starts_at": start.astimezone(UTC).isoformat(),
                "alert_earlier": "true",
            },
        )

    r = await post(at(30, 9))
    assert r.status_code == 303, r.text
    booked = await Appointment.get(client_id=client.id)
    assert await WaitlistEntry.filter(appointment_id=booked.id, is_active=True).exists()
    # Too soon to wait for an earlier slot: booked without the alert (the confirmation says
    # why; tests/test_booking.py).
    r = await post(at(3, 9))
    assert r.status_code == 303
    soon = await Appointment.get(client_id=client.id, starts_at=at(3, 9))
    assert not await WaitlistEntry.filter(appointment_id=soon.id).exists()


async def test_staff_endpoints_need_a_staff_session(world: dict[str, Any], new_http: Any) -> None:
    w, make = world, world["make"]
    appointment = await book(w, await make.client(w["alice"]), at(25, 10))
    nobody = new_http()
    assert (await nobody.get(f"/api/appointments/{appointment.id}/offers")).status_code == 401
    r = await nobody.post(f"/api/appointments/{appointment.id}/earlier-alert", json={"on": True})
    assert r.status_code in (401, 403)
    admin = new_http()
    await login(admin, await make.office_admin())
    r = await admin.post(f"/api/appointments/{appointment.id}/earlier-alert", json={"on": True})
    assert r.status_code == 200 and r.json()["alert_earlier"] is True


async def test_two_accepts_in_parallel_transactions_one_wins(world: dict[str, Any]) -> None:
    """The same race without HTTP: two tasks, each in its own transaction (its own
    connection on PostgreSQL), started together."""
    w, make = world, world["make"]
    clients = [await make.client(w["alice"]) for _ in range(3)]
    for i, c in enumerate(clients):
        await book(w, c, at(25 + i, 10), flag=True)
    freed = await book(w, await make.client(w["alice"]), at(12, 10))
    await free(freed)
    callers = [await caller_of(c) for c in clients]
    pending = [await EarlierSlotOffer.get(client_id=c.id) for c in clients]

    async def accept(i: int) -> str:
        try:
            await offers.do_accept_offer(callers[i], pending[i])
        except Conflict:
            return "gone"
        return "won"

    results = await asyncio.gather(*(accept(i) for i in range(3)))
    assert sorted(results) == ["gone", "gone", "won"]
    winner = clients[results.index("won")]
    held = await Appointment.filter(
        starts_at=at(12, 10).astimezone(UTC), attendance=Attendance.SCHEDULED
    )
    assert [a.client_id for a in held] == [winner.id]  # type: ignore[attr-defined]
    for c in clients:
        if c is not winner:
            assert (
                await Appointment.filter(client_id=c.id, attendance=Attendance.SCHEDULED).count()
                == 1
            )


# --- SMS ----------------------------------------------------------------------------------------


async def _quiet(practice_id: int, start: int, end: int, *, sms: bool = True) -> None:
    settings = await reminders.messaging_settings(practice_id)
    await MessagingSettings.filter(id=settings.id).update(
        sms_on_earlier_slot_offers=sms, quiet_start_minute=start, quiet_end_minute=end
    )


async def test_offers_go_by_sms_too_when_the_practice_says_so(world: dict[str, Any]) -> None:
    w, make = world, world["make"]
    texted = await make.client(w["alice"])
    await PhoneNumber.create(client=texted, number="+33612345678", for_sms=True)
    no_number = await make.client(w["alice"])
    await book(w, texted, at(30, 10), flag=True)
    await book(w, no_number, at(31, 10), flag=True)
    # Off by default: email only.
    await free(await book(w, await make.client(w["alice"]), at(12, 10)))
    assert await OutboxMessage.filter(purpose="offer.sent", channel="sms").count() == 0
    assert await OutboxMessage.filter(purpose="offer.sent", channel="email").count() == 2

    # Both decline (an offer awaiting an answer would keep them out of the next round).
    for client in (texted, no_number):
        offer = await EarlierSlotOffer.get(client_id=client.id)
        await offers.do_decline_offer(await caller_of(client), offer)

    await _quiet(w["practice"].id, 0, 0)  # on, no quiet hours
    await free(await book(w, await make.client(w["alice"]), at(13, 10)))
    await run_jobs()
    assert await OutboxMessage.filter(purpose="offer.sent", channel="email").count() == 4
    texts = await OutboxMessage.filter(purpose="offer.sent", channel="sms")
    # Only the client with a number marked for reminders gets a text.
    assert [t.to for t in texts] == ["+33612345678"]
    assert "/portal/offers/" in texts[0].body_text
    assert texts[0].client_id == texted.id


async def test_an_offer_sms_waits_for_the_morning_and_not_for_a_gone_offer(
    world: dict[str, Any],
) -> None:
    w, make = world, world["make"]
    texted = await make.client(w["alice"])
    await PhoneNumber.create(client=texted, number="+33612345678", for_sms=True)
    await book(w, texted, at(30, 10), flag=True)
    # Quiet hours around the present moment, whatever the time the test runs.
    local = datetime.now(PARIS)
    minute = local.hour * 60 + local.minute
    start, end = (minute - 60) % (24 * 60), (minute + 60) % (24 * 60)
    await _quiet(w["practice"].id, start, end)
    await free(await book(w, await make.client(w["alice"]), at(12, 10)))
    job = await Job.get(key__startswith="offer-sms:")
    assert job.status is JobStatus.PENDING
    expected_end = (local + timedelta(minutes=60)).replace(second=0, microsecond=0)
    assert abs((job.run_at - expected_end).total_seconds()) < 61
    assert await OutboxMessage.filter(channel="sms").count() == 0  # the email went at once
    assert await OutboxMessage.filter(purpose="offer.sent", channel="email").count() == 1

    # The client accepts from the email before the morning: no text at all afterwards.
    offer = await EarlierSlotOffer.get(client_id=texted.id)
    await offers.do_accept_offer(await caller_of(texted), offer)
    await _quiet(w["practice"].id, 0, 0)
    await jobs.run_due(now=job.run_at + timedelta(minutes=1))
    assert await OutboxMessage.filter(channel="sms").count() == 0
    assert (await Job.get(id=job.id)).status is JobStatus.DONE


@pytest.mark.skipif(not IS_POSTGRES, reason="SQLite runs one write transaction at a time")
async def test_a_booking_into_a_slot_whose_round_is_running_waits_for_it(
    world: dict[str, Any],
) -> None:
    """The worker holds a round's job row while it locks the freed slot; a booking into that
    slot took the slot, then the job (to call the round off): on PostgreSQL each waited for
    the other, and one of them failed with a deadlock. Now the booking waits for the round,
    then takes the slot and withdraws what the round offered."""
    w, make = world, world["make"]
    cancelled = await book(w, await make.client(w["alice"]), at(20, 10))
    await agenda.do_set_attendance(None, cancelled, Attendance.CANCELLED_BY_CLIENT)
    slot = await FreedSlot.get(appointment_id=cancelled.id)
    job = await Job.get(key=f"offers.round:{slot.id}")
    newcomer = await make.client(w["alice"])
    holding = asyncio.Event()

    async def worker() -> None:  # what jobs._run_one and offer_slot lock, in their order
        async with atomic():
            await Job.filter(id=job.id).select_for_update().first()
            holding.set()
            await asyncio.sleep(0.5)  # the booking comes in meanwhile
            await FreedSlot.filter(id=slot.id).select_for_update().first()

    async def booking() -> Appointment:
        await holding.wait()
        return await book(w, newcomer, at(20, 10))

    results = await asyncio.gather(worker(), booking(), return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert (await FreedSlot.get(id=slot.id)).status is SlotStatus.TAKEN
    assert (await Job.get(id=job.id)).status is JobStatus.CANCELLED
