"""Reminders, confirmations and unread notices: scheduled with the change, sent once, to the
right people, in their language, within quiet hours and credits, and logged."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from email import message_from_bytes
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from models.accounts import PortalAccount, Practice, StaffUser
from models.agenda import Appointment, Attendance
from models.clients import Client
from models.jobs import Job, JobStatus
from models.messaging import ConversationKind, Participant
from models.notifications import OutboxMessage, OutboxStatus
from models.reminders import Channel, MessagingSettings, PractitionerSms
from server import jobs
from server.actions import (
    agenda,
    circle,
    client_file,
    messaging,
    reminder_jobs,  # noqa: F401 - registers the job handlers
    reminders,
)
from server.actions.client_file import ContactIn, EmailIn, PhoneIn
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import ValidationFailed
from server.queries.logs import client_logs
from server.reminder_texts import Text, check_template, render
from server.sms import count_segments
from tests.conftest import Factory, login

PARIS = ZoneInfo("Europe/Paris")


def in_days(days: int, hour: int = 10) -> datetime:
    """A time ``days`` from now, at ``hour`` Paris time (a weekday is not needed: the agenda
    books any time that does not clash)."""
    day = (datetime.now(PARIS) + timedelta(days=days)).date()
    return datetime.combine(day, time(hour), PARIS).astimezone(UTC)


@pytest.fixture
async def setup(make: Factory) -> dict[str, Any]:
    practice = await make.practice()
    await agenda.ensure_builtin_categories(practice)
    owner = await make.owner(first_name="Olivia")
    alice = await make.therapist(first_name="Alice", last_name="Martin")
    office = await agenda.do_create_location(
        None, practice, name="Cabinet Lyon", address="12 rue des Lilas"
    )
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    client = await make.client(alice, first_name="Camille", email="camille@example.org")
    return {
        "practice": practice,
        "owner": owner,
        "alice": alice,
        "office": office,
        "talk": talk,
        "client": client,
    }


async def set_prefs(
    client: Client, email_hours: int | None, sms_hours: int | None, phone: str = "+33611111111"
) -> None:
    """Through the client file's own action, as the contact details tab does."""
    await client_file.do_update_contact_details(
        Caller.acting_as(await client.therapist),  # type: ignore[arg-type]
        client,
        ContactIn(
            first_name=client.first_name,
            last_name=client.last_name,
            reminder_email_hours=email_hours,
            reminder_sms_hours=sms_hours,
            phones=[PhoneIn(number=phone, for_sms=True, is_primary=True)] if phone else [],
            emails=[EmailIn(address=client.email or "", is_primary=True)] if client.email else [],
        ),
    )


async def book(s: dict[str, Any], starts_at: datetime, client: Client | None = None) -> Appointment:
    return await agenda.do_book_appointment(
        None,
        practitioner=s["alice"],
        client=client or s["client"],
        service=s["talk"],
        starts_at=starts_at,
        location=s["office"],
    )


async def pending(prefix: str = "reminder:") -> dict[str, datetime]:
    rows = await Job.filter(key__startswith=prefix, status=JobStatus.PENDING)
    return {str(j.key): j.run_at for j in rows}


async def run_all(at: datetime) -> int:
    total = 0
    while n := await jobs.run_due("test", now=at):
        total += n
    return total


async def test_reminders_follow_create_move_cancel_delete_and_preferences(
    setup: dict[str, Any],
) -> None:
    s = setup
    client = s["client"]
    await set_prefs(client, 24, 2)
    start = in_days(3)
    appt = await book(s, start)
    assert await pending() == {
        f"reminder:{appt.id}:client-{client.id}:email": start - timedelta(hours=24),
        f"reminder:{appt.id}:client-{client.id}:sms": start - timedelta(hours=2),
    }
    # Moving reschedules: the old appointment's reminders go, the new one's come.
    later = in_days(4, 15)
    moved = await agenda.do_move_appointment(None, appt, later)
    assert await pending() == {
        f"reminder:{moved.id}:client-{client.id}:email": later - timedelta(hours=24),
        f"reminder:{moved.id}:client-{client.id}:sms": later - timedelta(hours=2),
    }
    # A preference change applies to every upcoming session.
    other = await book(s, in_days(6))
    await set_prefs(client, 48, None)
    assert await pending() == {
        f"reminder:{moved.id}:client-{client.id}:email": later - timedelta(hours=48),
        f"reminder:{other.id}:client-{client.id}:email": other.starts_at - timedelta(hours=48),
    }
    # Cancelling and deleting cancel; back to scheduled schedules again, once.
    await agenda.do_set_attendance(None, moved, Attendance.CANCELLED_BY_CLIENT)
    await agenda.do_delete_appointment(None, other)
    assert await pending() == {}
    await agenda.do_set_attendance(None, moved, Attendance.SCHEDULED)
    await agenda.do_set_attendance(None, moved, Attendance.SCHEDULED)
    assert list(await pending()) == [f"reminder:{moved.id}:client-{client.id}:email"]
    assert await Job.filter(key__startswith=f"reminder:{moved.id}:").count() == 2  # email, sms
    # Off: nothing left; and a session booked too late for its reminder gets none.
    await set_prefs(client, None, None)
    assert await pending() == {}
    await set_prefs(client, 72, None)
    await book(s, datetime.now(UTC) + timedelta(hours=5))
    assert len(await pending()) == 1


async def test_a_rolled_back_booking_schedules_nothing(setup: dict[str, Any]) -> None:
    await set_prefs(setup["client"], 24, None)
    with pytest.raises(ZeroDivisionError):
        async with atomic():
            await book(setup, in_days(3))
            1 / 0  # noqa: B018
    assert await Job.all().count() == 0


async def test_circle_of_care_members_get_reminders_for_every_session(
    setup: dict[str, Any],
) -> None:
    s = setup
    client = s["client"]
    actor = Caller.acting_as(s["alice"])
    mum = await circle.do_add_circle_contact(
        actor,
        client,
        circle.CircleContactIn(
            first_name="Marie",
            last_name="Dupont",
            email="marie@example.org",
            reminder_email_hours=24,
            reminder_sms_hours=3,
            phones=[
                PhoneIn(number="+33600000001", is_primary=True),
                PhoneIn(number="+33600000002", for_sms=True),
            ],
        ),
    )
    # Reminders off for this one: never a recipient.
    await circle.do_add_circle_contact(
        actor, client, circle.CircleContactIn(first_name="Paul", last_name="D", email="p@x.org")
    )
    start = in_days(2)
    appt = await book(s, start)
    assert set(await pending()) == {
        f"reminder:{appt.id}:contact-{mum.id}:email",
        f"reminder:{appt.id}:contact-{mum.id}:sms",
    }
    assert await run_all(start - timedelta(hours=1)) >= 2, [
        (j.key, j.status) for j in await Job.all()
    ]
    assert {j.status for j in await Job.all()} == {JobStatus.DONE}
    sent = await OutboxMessage.filter(client_id=client.id, purpose="reminder").order_by("channel")
    assert [(m.channel, m.to) for m in sent] == [
        ("email", "marie@example.org"),
        ("sms", "+33600000002"),  # the number marked for SMS, not the primary one
    ]
    assert "Camille" in sent[0].body_text and "Alice Martin" in sent[0].body_text
    # Removing the contact cancels their reminders for the next sessions.
    nxt = await book(s, in_days(5))
    assert len(await pending(f"reminder:{nxt.id}:")) == 2
    await circle.do_remove_circle_contact(actor, mum)
    assert await pending(f"reminder:{nxt.id}:") == {}


async def test_a_reminder_runs_once_and_never_for_a_cancelled_session(
    setup: dict[str, Any],
) -> None:
    s = setup
    await set_prefs(s["client"], 24, None)
    start = in_days(2)
    appt = await book(s, start)
    # The job is claimed, and the session is cancelled before the handler runs.
    await jobs.claim("A", start - timedelta(hours=23), 10)
    await Appointment.filter(id=appt.id).update(attendance=Attendance.CANCELLED_BY_CLIENT)
    await run_all(start)
    assert await OutboxMessage.filter(purpose="reminder").count() == 0
    second = await book(s, in_days(3))
    await run_all(second.starts_at - timedelta(hours=1))
    await run_all(second.starts_at - timedelta(minutes=30))
    assert await OutboxMessage.filter(purpose="reminder").count() == 1


async def test_templates_render_in_each_language_and_the_practice_wording(
    setup: dict[str, Any],
) -> None:
    s = setup
    client = s["client"]
    await set_prefs(client, 24, 24)
    await PortalAccount.filter(client_id=client.id).update(locale="fr")
    start = in_days(2)  # 10:00 Paris
    await book(s, start)
    await run_all(start - timedelta(hours=23))
    email = await OutboxMessage.get(channel="email", purpose="reminder")
    assert email.subject.startswith("Rappel : rendez-vous le ")
    assert "à 10:00" in email.subject
    assert "Cabinet Lyon, 12 rue des Lilas" in email.body_text
    assert email.body_html and "<br>" in email.body_html
    assert 'href="http://testserver/portal/"' in email.body_html
    sms = await OutboxMessage.get(channel="sms")
    assert sms.body_text.startswith("Rappel : Camille, rendez-vous avec Alice Martin le ")
    assert sms.segments == count_segments(sms.body_text).count
    # The practice's own English wording, with the client back in English.
    await PortalAccount.filter(client_id=client.id).update(locale="en")
    await reminders.do_save_reminder_templates(
        Caller.acting_as(s["owner"]),
        s["practice"],
        {
            (Channel.EMAIL, "en"): Text(
                "See you {date}", "Hi {first_name} <b>, {time} with {practitioner}"
            )
        },
    )
    later = in_days(4, 9)
    await book(s, later)
    await run_all(later - timedelta(hours=23))
    mine = await OutboxMessage.filter(channel="email", purpose="reminder").order_by("-id").first()
    assert mine is not None and mine.subject.startswith("See you ")
    assert mine.body_text == "Hi Camille <b>, 9:00 AM with Alice Martin"
    assert mine.body_html is not None and "Hi Camille &lt;b&gt;" in mine.body_html


def test_templates_refuse_unknown_placeholders() -> None:
    assert check_template("Hello {first_name}", "body") == "Hello {first_name}"
    for bad in ("{client.__class__}", "{first_name!r}", "{date:%Y}", "{nope}", "{oops"):
        with pytest.raises(Exception, match="not valid"):
            check_template(bad, "body")
    assert render("{first_name} {unknown}", {"first_name": "A"}) == "A {unknown}"


def test_segments_gsm7_and_ucs2() -> None:
    assert count_segments("a" * 160).count == 1
    assert count_segments("a" * 161).count == 2
    assert count_segments("a" * 306).count == 2
    assert count_segments("a" * 307).count == 3
    assert count_segments("€" * 80).count == 1  # two septets each: 160
    assert count_segments("€" * 81).count == 2
    assert count_segments("Rendez-vous à 10:00, Hélène").encoding == "GSM-7"
    ucs = count_segments("Cœur " + "a" * 66)
    assert (ucs.encoding, ucs.count) == ("UCS-2", 2)
    assert count_segments("ç" * 70).count == 1 and count_segments("🙂" * 35).count == 1
    assert count_segments("🙂" * 36).count == 2


async def test_quiet_hours_hold_sms_until_morning_but_not_email(setup: dict[str, Any]) -> None:
    s = setup
    await set_prefs(s["client"], 12, 12)
    start = in_days(3, 9)  # reminders due at 21:00 Paris the evening before
    await book(s, start)
    await run_all(start - timedelta(hours=12))
    assert await OutboxMessage.filter(channel="email").count() == 1
    assert await OutboxMessage.filter(channel="sms").count() == 0
    job = await Job.get(key__endswith=":sms")
    morning = datetime.combine(start.astimezone(PARIS).date(), time(8), PARIS)
    assert job.status == JobStatus.PENDING and job.run_at == morning.astimezone(UTC)
    await run_all(morning)
    assert await OutboxMessage.filter(channel="sms").count() == 1
    # A practice without quiet hours sends at once.
    await MessagingSettings.filter(practice_id=s["practice"].id).update(
        quiet_start_minute=0, quiet_end_minute=0
    )
    other = in_days(5, 9)
    await book(s, other)
    await run_all(other - timedelta(hours=12))
    assert await OutboxMessage.filter(channel="sms").count() == 2


async def test_a_circle_contacts_text_waits_for_the_morning_and_follows_their_wishes(
    setup: dict[str, Any],
) -> None:
    """A parent's SMS reminder keeps the practice's quiet hours as the client's does, and
    one turned off while it waited for the morning is not sent."""
    s = setup
    actor = Caller.acting_as(s["alice"])
    wanted = circle.CircleContactIn(
        first_name="Marie",
        last_name="Dupont",
        email="marie@example.org",
        reminder_email_hours=12,
        reminder_sms_hours=12,
        phones=[PhoneIn(number="06 12 34 56 78", for_sms=True)],
    )
    mum = await circle.do_add_circle_contact(actor, s["client"], wanted)
    start = in_days(3, 9)  # due at 21:00 Paris the evening before, in quiet hours
    await book(s, start)
    await run_all(start - timedelta(hours=12))
    assert await OutboxMessage.filter(channel="email").values_list("to", flat=True) == [
        "marie@example.org"
    ]
    assert await OutboxMessage.filter(channel="sms").count() == 0
    morning = datetime.combine(start.astimezone(PARIS).date(), time(8), PARIS)
    assert (await Job.get(key__endswith=":sms")).run_at == morning.astimezone(UTC)
    await run_all(morning)
    assert await OutboxMessage.filter(channel="sms").values_list("to", flat=True) == [
        "+33612345678"
    ]
    # Another session; she asks for no more texts while the reminder waits for the morning.
    other = in_days(5, 9)
    await book(s, other)
    await run_all(other - timedelta(hours=12))
    await circle.do_update_circle_contact(
        actor, mum, wanted.model_copy(update={"reminder_sms_hours": None})
    )
    await run_all(datetime.combine(other.astimezone(PARIS).date(), time(8), PARIS))
    assert await OutboxMessage.filter(channel="sms").count() == 1


async def test_sms_credits_run_out_the_owner_is_told_and_adding_resumes(
    setup: dict[str, Any],
) -> None:
    s = setup
    await set_prefs(s["client"], None, 24)
    settings = await reminders.messaging_settings(s["practice"].id)
    await MessagingSettings.filter(id=settings.id).update(sms_credits=1)
    for d in (2, 3, 4):
        await book(s, in_days(d))
    await run_all(in_days(2) - timedelta(hours=23))
    sms = await OutboxMessage.get(channel="sms")
    assert sms.status == OutboxStatus.QUEUED and sms.segments == 1
    await run_all(in_days(3) - timedelta(hours=23))
    refused = await OutboxMessage.filter(channel="sms").order_by("-id").first()
    assert refused is not None
    assert refused.status == OutboxStatus.FAILED and "credits" in refused.error
    told = await OutboxMessage.filter(purpose="sms.credits")
    assert [m.to for m in told] == [s["owner"].email]
    settings = await MessagingSettings.get(id=settings.id)
    assert settings.sms_credits == 0 and settings.credits_exhausted_at is not None
    await run_all(in_days(4) - timedelta(hours=23))
    assert await OutboxMessage.filter(purpose="sms.credits").count() == 1  # told once
    assert await reminders.do_add_sms_credits(Caller.acting_as(s["owner"]), s["practice"], 10) == 10
    assert (await MessagingSettings.get(id=settings.id)).credits_exhausted_at is None


async def test_the_owner_is_told_of_the_credits_in_their_own_language(
    setup: dict[str, Any], make: Factory
) -> None:
    # The words were typed in the code, one copy per language, and outside the catalog:
    # the French came with a typewriter apostrophe ("n'a plus") the catalog never allows.
    s = setup
    await StaffUser.filter(id=s["owner"].id).update(locale="fr")
    english = await make.owner(first_name="Edith")
    await StaffUser.filter(id=english.id).update(locale="en")
    await set_prefs(s["client"], None, 24)
    settings = await reminders.messaging_settings(s["practice"].id)
    await MessagingSettings.filter(id=settings.id).update(sms_credits=0)
    await book(s, in_days(2))
    await run_all(in_days(2) - timedelta(hours=23))
    told = {m.to: m for m in await OutboxMessage.filter(purpose="sms.credits")}
    french = told[s["owner"].email]
    assert french.subject == "Plus de crédits SMS"
    assert f"Le cabinet {s['practice'].name} n’a plus de crédits SMS" in french.body_text
    assert "/staff/settings/sms" in french.body_text
    assert told[english.email].subject == "No SMS credits left"
    assert "has no SMS credits left" in told[english.email].body_text


async def test_confirm_by_sms_waits_so_a_mistake_can_be_undone(setup: dict[str, Any]) -> None:
    s = setup
    # No quiet hours: the delay is what this checks, and a run in the evening would see the
    # confirmation held until morning (quiet hours have their own test above).
    quiet = await reminders.messaging_settings(s["practice"].id)
    quiet.quiet_start_minute = quiet.quiet_end_minute = 0
    await quiet.save()
    actor = Caller.acting_as(s["alice"])
    await set_prefs(s["client"], None, None, phone="+33622222222")
    template = await reminders.do_save_sms_template(
        actor,
        s["practice"],
        None,
        title="Standard",
        description="",
        sender_name="CabMartin",
        body="Booked: {date} {time}, {place}",
    )
    booking = {"practitioner": s["alice"], "service": s["talk"], "location": s["office"]}
    # Deleted within the window: nothing is sent.
    appt = await reminders.do_book_with_confirmation(
        actor, template=template, client=s["client"], starts_at=in_days(2), **booking
    )
    job = await Job.get(key=f"confirmation:{appt.id}")
    assert timedelta(minutes=4) < job.run_at - datetime.now(UTC) <= timedelta(minutes=5)
    await agenda.do_delete_appointment(actor, appt)
    await run_all(datetime.now(UTC) + timedelta(minutes=6))
    assert await OutboxMessage.filter(channel="sms").count() == 0
    # Moved within the window: one SMS, with the new time.
    appt = await reminders.do_book_with_confirmation(
        actor, template=template, client=s["client"], starts_at=in_days(3, 10), **booking
    )
    moved = await agenda.do_move_appointment(actor, appt, in_days(3, 14))
    await run_all(datetime.now(UTC) + timedelta(minutes=6))
    sms = await OutboxMessage.get(channel="sms")
    assert "2:00 PM" in sms.body_text and "10:00" not in sms.body_text
    assert sms.to == "+33622222222" and sms.sender == "CabMartin"
    assert sms.purpose == "confirmation" and sms.client_id == s["client"].id
    assert moved.id != appt.id
    # No phone: refused before anything is booked.
    nophone = await Client.create(
        practice=s["practice"], first_name="No", last_name="Phone", therapist=s["alice"]
    )
    with pytest.raises(Exception, match="not valid"):
        await reminders.do_book_with_confirmation(
            actor, template=None, client=nophone, starts_at=in_days(5), **booking
        )
    assert await Appointment.filter(client_id=nophone.id).count() == 0


async def test_unread_notices_are_sent_when_due_cancelled_by_reading_and_never_with_content(
    setup: dict[str, Any], make: Factory
) -> None:
    s = setup
    alice_caller = Caller.acting_as(s["alice"])
    account = await PortalAccount.get(client_id=s["client"].id)
    conversation = await messaging.do_create_conversation(
        alice_caller,
        kind=ConversationKind.CLIENT,
        subject="Séance",
        client=s["client"],
        staff=[s["alice"]],
    )
    parts = {p.role.value: p for p in await Participant.filter(conversation_id=conversation.id)}
    staff_p, client_p = parts["staff"], parts["client"]
    secret = "My anxiety got worse this week"
    await messaging.do_send_message(alice_caller, conversation, staff_p, secret, "u1")
    await messaging.do_send_message(alice_caller, conversation, staff_p, secret + "!", "u2")
    notices = await Job.filter(key__startswith="notice:")
    assert len(notices) == 1  # one per conversation until read
    # Read in time: nothing goes out.
    client_caller = Caller.acting_as((account, s["client"]))
    await messaging.do_mark_read(client_caller, conversation, client_p)
    await run_all(datetime.now(UTC) + timedelta(hours=2))
    assert await OutboxMessage.filter(purpose="message.notice").count() == 0
    # Unread: one notice when due, not before, and a second message adds none.
    await messaging.do_send_message(alice_caller, conversation, staff_p, secret, "u3")
    await run_all(datetime.now(UTC) + timedelta(minutes=30))
    assert await OutboxMessage.filter(purpose="message.notice").count() == 0
    await run_all(datetime.now(UTC) + timedelta(minutes=61))
    await messaging.do_send_message(alice_caller, conversation, staff_p, secret, "u4")
    await run_all(datetime.now(UTC) + timedelta(hours=3))
    notices_sent = await OutboxMessage.filter(purpose="message.notice")
    assert [m.to for m in notices_sent] == [account.email]
    n = notices_sent[0]
    assert "secure message" in n.subject and "http://testserver/portal/messages" in n.body_text
    assert "anxiety" not in (n.body_text + n.subject + (n.body_html or ""))
    # Once read, the next unread message brings a new notice; a client's message notifies
    # the staff side.
    await messaging.do_mark_read(client_caller, conversation, client_p)
    await messaging.do_send_message(alice_caller, conversation, staff_p, secret, "u5")
    await messaging.do_send_message(client_caller, conversation, client_p, secret, "u6")
    await run_all(datetime.now(UTC) + timedelta(hours=2))
    to = sorted(m.to for m in await OutboxMessage.filter(purpose="message.notice"))
    assert to == sorted([account.email, account.email, s["alice"].email])
    for m in await OutboxMessage.filter(purpose="message.notice"):
        assert "anxiety" not in m.body_text


async def test_online_booking_confirms_by_sms_and_tells_the_practitioner(
    setup: dict[str, Any],
) -> None:
    s = setup
    owner = Caller.acting_as(s["owner"])
    await set_prefs(s["client"], None, None, phone="+33633333333")
    await reminders.do_update_messaging_settings(
        owner, s["practice"], {"sms_on_online_booking": True}
    )
    await reminders.do_set_practitioner_sms(
        owner,
        s["alice"],
        default_template=None,
        mobile="+33699999999",
        notify_online_bookings=True,
        notices_by_sms=False,
    )
    account = await PortalAccount.get(client_id=s["client"].id)
    appt = await book(s, in_days(2, 11))
    async with atomic():
        await reminders.on_online_booking(appt)
    noon = datetime.combine(datetime.now(PARIS).date() + timedelta(days=1), time(12), PARIS)
    await run_all(noon.astimezone(UTC))
    texts = {m.to: m for m in await OutboxMessage.filter(channel="sms")}
    assert set(texts) == {"+33633333333", "+33699999999"}
    assert "Camille" not in texts["+33699999999"].body_text  # no client name on a lock screen
    assert "11:00" in texts["+33633333333"].body_text
    assert account is not None


async def test_logs_show_each_message_with_purpose_status_and_reason(
    setup: dict[str, Any], http: Any
) -> None:
    s = setup
    await set_prefs(s["client"], 24, 24)
    start = in_days(2)
    await book(s, start)
    await reminders.messaging_settings(s["practice"].id)
    await MessagingSettings.filter(practice_id=s["practice"].id).update(sms_credits=0)
    await run_all(start - timedelta(hours=23))
    logs = await client_logs(s["client"], clinical=True)
    assert {(m.channel, m.status.value) for m in logs["sent"]} == {
        ("email", "queued"),
        ("sms", "failed"),
    }
    await login(http, s["alice"])
    page = await http.get(f"/staff/clients/{s['client'].id}/logs")
    assert page.status_code == 200
    assert "No SMS credits left." in page.text and "Reminder" in page.text
    assert "+33611111111" in page.text


async def test_sent_reminders_reach_a_real_smtp_server_as_text_and_html(
    setup: dict[str, Any], settings: Any
) -> None:
    from dataclasses import replace

    from aiosmtpd.controller import Controller

    from server import mail
    from server.settings import set_settings
    from tests.conftest import free_port

    received: list[bytes] = []

    class Keep:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(envelope.content)
            return "250 OK"

    port = free_port()
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        set_settings(replace(settings, smtp_url=f"smtp://127.0.0.1:{port}?from=cab@example.org"))
        await set_prefs(s := setup["client"], 24, None)
        start = in_days(2)
        await book(setup, start)
        await run_all(start - timedelta(hours=23))
        assert await mail.deliver_due() == 1
    finally:
        controller.stop()
        set_settings(settings)
    assert len(received) == 1
    msg = message_from_bytes(received[0])
    assert msg["To"] == s.email and msg["Subject"].startswith("Reminder: appointment on")
    assert msg.is_multipart()
    types = [part.get_content_type() for part in msg.walk()]
    assert "text/plain" in types and "text/html" in types
    assert (await OutboxMessage.get(purpose="reminder")).status == OutboxStatus.SENT


async def test_settings_pages_are_the_owners(
    setup: dict[str, Any], make: Factory, new_http: Any
) -> None:
    s = setup
    admin = await make.office_admin()
    for who, status in ((s["owner"], 200), (s["alice"], 403), (admin, 403)):
        http = new_http()
        await login(http, who)
        for url in ("/staff/settings/reminders", "/staff/settings/sms"):
            assert (await http.get(url)).status_code == status, (who.role, url)
        outbox = await http.get("/staff/outbox")
        assert outbox.status_code == (403 if who is s["alice"] else 200)
        await http.aclose()
    client_http = new_http()
    await login(client_http, s["client"])
    assert (await client_http.get("/staff/settings/sms")).status_code in (302, 303, 401, 403)
    await client_http.aclose()
    nobody = new_http()
    assert (await nobody.get("/staff/settings/reminders")).status_code in (302, 303, 401)
    await nobody.aclose()


async def test_owner_edits_templates_and_sms_settings_in_the_browser_forms(
    setup: dict[str, Any], http: Any
) -> None:
    s = setup
    await login(http, s["owner"])
    page = await http.get("/staff/settings/reminders")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    # The sample's size in real plurals (it said "1 segment(s)").
    assert re.search(r"With sample details: \d+ characters, GSM-7, 1 segment\.", page.text)
    french = await http.get("/staff/settings/reminders", headers={"Accept-Language": "fr-FR"})
    assert "Avec des données d’exemple\u00a0:" in french.text and "(s)" not in french.text
    bad = await http.post(
        "/staff/settings/reminders",
        data={"csrf_token": token, "sms_fr_body": "Rappel {oops.x}", "quiet_start": "21:00"},
    )
    assert bad.status_code == 422 and "Unknown placeholder" in bad.text
    for quiet in ("25:00", "9:75", "-1:30", "21:-5"):
        # Each said beside the field it is about, not saved as another time.
        bad = await http.post(
            "/staff/settings/reminders",
            data={"csrf_token": token, "quiet_start": quiet, "quiet_end": "08:00"},
        )
        assert bad.status_code == 422, quiet
        assert 'class="field-error">Enter a time such as 21:00.' in bad.text, quiet
    ok = await http.post(
        "/staff/settings/reminders",
        data={
            "csrf_token": token,
            "sms_fr_body": "RDV {date} {time}",
            "quiet_start": "22:00",
            "quiet_end": "07:30",
            "confirmation_delay_minutes": "10",
            "unread_notice_minutes": "60",
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303
    st = await MessagingSettings.get(practice_id=s["practice"].id)
    assert (st.quiet_start_minute, st.quiet_end_minute) == (22 * 60, 7 * 60 + 30)
    assert st.confirmation_delay_minutes == 10
    text = await reminders.reminder_text(s["practice"].id, Channel.SMS, "fr")
    assert text.body == "RDV {date} {time}"
    created = await http.post(
        "/staff/settings/sms",
        data={
            "csrf_token": token,
            "title": "Standard",
            "description": "Most sessions",
            "sender_name": "Cabinet",
            "body": "Booked {date} {time}",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303
    sms_page = await http.get("/staff/settings/sms")
    assert "Standard" in sms_page.text and "segment" in sms_page.text
    practice = await Practice.get(id=s["practice"].id)
    assert practice is not None


async def test_booking_with_confirm_by_sms_through_the_api(
    setup: dict[str, Any], http: Any
) -> None:
    from models.reminders import SmsTemplate

    s = setup
    await set_prefs(s["client"], None, None, phone="+33644444444")
    elsewhere = await Practice.create(name="Another practice")
    foreign = await SmsTemplate.create(practice=elsewhere, title="Theirs", body="x")
    mine = await SmsTemplate.create(practice=s["practice"], title="Ours", body="Booked {time}")
    await login(http, s["alice"])
    body = {
        "practitioner_id": s["alice"].id,
        "client_id": s["client"].id,
        "service_id": s["talk"].id,
        "location_id": s["office"].id,
        "starts_at": in_days(3).isoformat(),
        "confirm_sms": True,
        "sms_template_id": foreign.id,
    }
    # Another practice's template is not found, and nothing is booked.
    assert (await http.post("/api/appointments", json=body)).status_code == 404
    assert await Appointment.all().count() == 0
    booked = await http.post("/api/appointments", json={**body, "sms_template_id": mine.id})
    assert booked.status_code == 200, booked.text
    job = await Job.get(key=f"confirmation:{booked.json()['id']}")
    assert job.payload["template"] == mine.id
    # Without "confirm by SMS": no confirmation job.
    plain = await http.post(
        "/api/appointments",
        json={**body, "confirm_sms": False, "starts_at": in_days(4).isoformat()},
    )
    assert plain.status_code == 200
    assert await Job.filter(key=f"confirmation:{plain.json()['id']}").count() == 0


async def test_confirm_by_sms_is_refused_when_the_only_number_is_a_landline(
    setup: dict[str, Any], http: Any
) -> None:
    """Without a number marked for texts, a confirmation goes to the primary phone: a home
    landline took the booking's "confirm by SMS", and the text failed at the provider where
    nobody saw it. The booking dialog says so instead, and nothing is booked."""
    s = setup
    await client_file.do_update_contact_details(
        Caller.acting_as(s["alice"]),
        s["client"],
        ContactIn(
            first_name=s["client"].first_name,
            last_name=s["client"].last_name,
            phones=[PhoneIn(number="04 78 00 00 00", label="home", is_primary=True)],
        ),
    )
    await login(http, s["alice"])
    body = {
        "practitioner_id": s["alice"].id,
        "client_id": s["client"].id,
        "service_id": s["talk"].id,
        "location_id": s["office"].id,
        "starts_at": in_days(3).isoformat(),
        "confirm_sms": True,
    }
    r = await http.post("/api/appointments", json=body)
    assert r.status_code == 422
    assert "landline" in r.json()["error"]["fields"]["confirm_sms"]
    assert await Appointment.all().count() == 0


async def test_the_demo_practice_has_reminders_scheduled(db: None) -> None:
    from server.demo import create_demo

    await create_demo()
    keys = [
        str(k) for k in await Job.filter(status=JobStatus.PENDING).values_list("key", flat=True)
    ]
    mine = [k for k in keys if k.startswith("reminder:")]
    assert any(k.endswith(":email") for k in mine) and any(k.endswith(":sms") for k in mine)
    # The demo's unread messages wait for their notices too.
    assert all(k.startswith(("reminder:", "notice:")) for k in keys)


async def test_quiet_hours_hold_a_colleagues_text_not_everyone_elses_email(
    setup: dict[str, Any], make: Factory
) -> None:
    """Quiet hours hold texts, never email. Bob takes his notices by SMS; during quiet hours
    his text deferred the whole notice job, and Alice's email, queued in it, was rolled back
    with it until the morning. Now Alice's email goes at once and Bob's text once quiet
    hours end, still only if the message is unread then."""
    from server.actions import messaging

    s = setup
    bob = await make.therapist(first_name="Bob")
    await reminders.do_set_practitioner_sms(
        Caller.acting_as(s["owner"]),
        bob,
        default_template=None,
        mobile="+33622222222",
        notify_online_bookings=False,
        notices_by_sms=True,
    )
    here = datetime.now(PARIS)
    minute = here.hour * 60 + here.minute
    await reminders.messaging_settings(s["practice"].id)
    await MessagingSettings.filter(practice_id=s["practice"].id).update(
        quiet_start_minute=(minute - 60) % 1440, quiet_end_minute=(minute + 180) % 1440
    )
    conversation = await messaging.do_create_conversation(
        Caller.acting_as(s["alice"]),
        kind=ConversationKind.CLIENT,
        subject="Hello",
        group_name="Care team",
        client=s["client"],
        staff=[s["alice"], bob],
    )
    client_p = await Participant.get(conversation_id=conversation.id, role="client")
    account = await PortalAccount.get(client_id=s["client"].id)
    await messaging.do_send_message(
        Caller.acting_as((account, s["client"])), conversation, client_p, "hi", "c1"
    )

    async def sent(channel: str) -> list[str]:
        rows = await OutboxMessage.filter(purpose="message.notice", channel=channel)
        return [m.to for m in rows]

    await run_all(datetime.now(UTC) + timedelta(minutes=120))
    assert await sent("email") == [s["alice"].email]
    assert await sent("sms") == []
    await run_all(datetime.now(UTC) + timedelta(minutes=200))
    assert await sent("sms") == ["+33622222222"]
    assert await sent("email") == [s["alice"].email]  # nothing twice


@pytest.mark.parametrize("marked", [False, True])
async def test_an_automatic_booking_text_goes_only_to_a_number_marked_for_sms(
    setup: dict[str, Any], marked: bool
) -> None:
    """With "SMS on online booking" on, a client who had marked no number for texts got one
    on her primary phone (a home landline, a work or a family phone). The practice's
    automatic text now goes only to a number the client marked for SMS."""
    s = setup
    client = s["client"]
    await client_file.do_update_contact_details(
        Caller.acting_as(s["alice"]),
        client,
        ContactIn(
            first_name=client.first_name,
            last_name=client.last_name,
            phones=[
                PhoneIn(number="+33611223344", label="mobile", for_sms=marked, is_primary=True)
            ],
            emails=[EmailIn(address=client.email or "", is_primary=True)],
        ),
    )
    await reminders.do_update_messaging_settings(
        Caller.acting_as(s["owner"]), s["practice"], {"sms_on_online_booking": True}
    )
    appointment = await book(s, in_days(2, 11))
    async with atomic():
        await reminders.on_online_booking(appointment)
    noon = datetime.combine(datetime.now(PARIS).date() + timedelta(days=1), time(12), PARIS)
    await run_all(noon.astimezone(UTC))
    texts = [m.to for m in await OutboxMessage.filter(channel="sms", purpose="confirmation")]
    assert texts == (["+33611223344"] if marked else [])


async def test_a_practitioner_who_left_is_not_texted_a_booking(setup: dict[str, Any]) -> None:
    """The practitioner's "booked online" text waited for quiet hours to end; switched off
    meanwhile, she still got it on her own mobile."""
    from server.actions import accounts

    s = setup
    owner = Caller.acting_as(s["owner"])
    await reminders.do_set_practitioner_sms(
        owner,
        s["alice"],
        default_template=None,
        mobile="+33699999999",
        notify_online_bookings=True,
        notices_by_sms=False,
    )
    appointment = await book(s, in_days(2, 11))
    async with atomic():
        await reminders.on_online_booking(appointment)
    await accounts.do_set_staff_active(owner, s["alice"], False)
    noon = datetime.combine(datetime.now(PARIS).date() + timedelta(days=1), time(12), PARIS)
    await run_all(noon.astimezone(UTC))
    assert not await OutboxMessage.filter(channel="sms", to="+33699999999").exists()


@pytest.mark.parametrize(
    ("sender", "ok"),
    [
        ("Cabinet", True),
        ("Cab Martin", True),
        ("Cabinet 12", True),
        ("Cabinet Léa", False),  # carriers take ASCII only: every text was refused
        ("Cab²", False),
        ("0612345678", False),  # all digits reads as a phone number
        ("Cabinet-Lyon", False),
        ("Cabinet Lyon", False),  # over 11
    ],
)
def test_sms_sender_names_carriers_accept(sender: str, ok: bool) -> None:
    try:
        reminders.check_sms_template("Standard", "Booked {date}", sender)
    except ValidationFailed as exc:
        assert not ok and "sender_name" in exc.fields
    else:
        assert ok


async def test_a_stale_reminders_form_does_not_undo_a_newer_change(
    setup: dict[str, Any], http: Any
) -> None:
    """The form posts every text and setting: saved from a page opened before another
    change (a second tab, another owner), it put the old wording back without a word."""
    s = setup
    await login(http, s["owner"])
    page = (await http.get("/staff/settings/reminders")).text
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    stale = page.split('name="version" value="')[1].split('"')[0]
    form = {"csrf_token": token, "quiet_start": "21:00", "quiet_end": "08:00", "version": stale}
    shown = await reminders.reminder_text(s["practice"].id, Channel.SMS, "fr")
    r = await http.post(
        "/staff/settings/reminders", data={**form, "sms_fr_body": "RDV {date} {time}"}
    )
    assert r.status_code == 303
    r = await http.post(
        "/staff/settings/reminders",
        data={**form, "quiet_start": "22:00", "sms_fr_body": shown.body},
    )
    assert r.status_code == 409 and "changed meanwhile" in r.text
    text = await reminders.reminder_text(s["practice"].id, Channel.SMS, "fr")
    assert text.body == "RDV {date} {time}"
    settings = await MessagingSettings.get(practice_id=s["practice"].id)
    assert settings.quiet_start_minute == 21 * 60
    # Saved from the page the 409 showed, the change goes through and keeps the other.
    fresh = r.text.split('name="version" value="')[1].split('"')[0]
    r = await http.post(
        "/staff/settings/reminders",
        data={**form, "quiet_start": "22:00", "version": fresh, "sms_fr_body": text.body},
    )
    assert r.status_code == 303
    await settings.refresh_from_db()
    assert settings.quiet_start_minute == 22 * 60
    assert (await reminders.reminder_text(s["practice"].id, Channel.SMS, "fr")).body == text.body


async def test_a_reminder_waiting_in_the_outbox_is_dropped_when_its_session_is_called_off(
    setup: dict[str, Any],
) -> None:
    """A queued reminder went out whatever became of its session meanwhile: the provider or
    the mail server down for hours, the session cancelled or moved in the meantime, and the
    client was reminded of a time that no longer stood. Now it is dropped, not sent, and its
    SMS credits come back."""
    from server import mail
    from server.sms import deliver_due_sms

    s = setup
    # No quiet hours: a run in the evening would hold the texts (their own test is below).
    settings = await reminders.messaging_settings(s["practice"].id)
    await MessagingSettings.filter(id=settings.id).update(quiet_start_minute=0, quiet_end_minute=0)
    await set_prefs(s["client"], 24, 24)
    cancelled, moved, kept = [await book(s, in_days(d)) for d in (3, 4, 5)]
    for a in (cancelled, moved, kept):
        await run_all(a.starts_at - timedelta(hours=24))
    assert await OutboxMessage.filter(status=OutboxStatus.QUEUED).count() == 6
    credits = (await reminders.messaging_settings(s["practice"].id)).sms_credits
    await agenda.do_set_attendance(None, cancelled, Attendance.CANCELLED_BY_CLIENT)
    await agenda.do_move_appointment(None, moved, in_days(6))
    assert await deliver_due_sms() == 1
    assert await mail.deliver_due() == 1
    by_appointment = {
        (m.appointment_id, m.channel): m for m in await OutboxMessage.filter(purpose="reminder")
    }
    for a in (cancelled, moved):
        for channel in ("sms", "email"):
            m = by_appointment[(a.id, channel)]
            assert m.status is OutboxStatus.DROPPED and m.sent_at is None
            assert "cancelled or moved" in m.error
    for channel in ("sms", "email"):
        assert by_appointment[(kept.id, channel)].status is OutboxStatus.SENT
    # The two texts never sent are paid back; the one sent is not.
    assert (await reminders.messaging_settings(s["practice"].id)).sms_credits == credits + 2
    # The client's Logs tab says so.
    logs = await client_logs(s["client"], clinical=False)
    assert sorted(m.status.value for m in logs["sent"] if m.purpose == "reminder") == [
        "dropped",
        "dropped",
        "dropped",
        "dropped",
        "sent",
        "sent",
    ]


async def test_texting_preferences_are_only_for_the_practices_active_clinicians(
    setup: dict[str, Any], http: Any, make: Factory
) -> None:
    """The SMS page lists the owners and therapists who practise; its form took any staff id,
    so a crafted post gave the front desk or someone who had left texts about bookings."""
    s = setup
    desk = await make.office_admin()
    gone = await make.therapist(first_name="Gone")
    gone.is_active = False
    await gone.save()
    await login(http, s["owner"])
    form = {"mobile": "+33611111111", "notify_online_bookings": "true"}
    for who in (desk, gone):
        response = await http.post(f"/staff/settings/sms/practitioners/{who.id}", data=form)
        assert response.status_code == 404
    assert not await PractitionerSms.filter(practitioner_id__in=[desk.id, gone.id]).exists()
    response = await http.post(f"/staff/settings/sms/practitioners/{s['alice'].id}", data=form)
    assert response.status_code == 303
    prefs = await PractitionerSms.get(practitioner_id=s["alice"].id)
    assert prefs.mobile == "+33611111111" and prefs.notify_online_bookings


async def test_a_refused_practitioner_row_keeps_what_was_typed(
    setup: dict[str, Any], http: Any, make: Factory
) -> None:
    """A landline given as a practitioner's mobile is refused (422): the page came back with
    the error at the top only, and the row as saved: the number, the default confirmation
    and the two boxes had to be given again, without seeing which row was wrong."""
    s = setup
    alice = s["alice"]
    await login(http, s["owner"])
    form = {"mobile": "04 78 00 00 00", "notify_online_bookings": "true", "notices_by_sms": "true"}
    response = await http.post(f"/staff/settings/sms/practitioners/{alice.id}", data=form)
    assert response.status_code == 422, response.text
    row = re.search(rf'<tr data-practitioner="{alice.id}">.*?</tr>', response.text, re.S)
    assert row is not None
    assert re.search(r'name="mobile"[^>]*value="04 78 00 00 00"', row.group(0))
    assert re.search(r'<span class="field-error">[^<]*landline', row.group(0))
    for box in ("notify_online_bookings", "notices_by_sms"):
        assert re.search(rf'name="{box}" value="true"[^>]*checked', row.group(0)), box
    assert not await PractitionerSms.filter(practitioner_id=alice.id).exists()


async def test_refused_credits_keep_what_was_typed(setup: dict[str, Any], http: Any) -> None:
    """A 422 on "Add credits" (more than the 100,000 a purchase may add) showed the error at
    the top of the page and an empty box: nothing said which number was refused, nor what
    it was."""
    s = setup
    before = (await reminders.messaging_settings(s["practice"].id)).sms_credits
    await login(http, s["owner"])
    r = await http.post("/staff/settings/sms/credits", data={"credits": "250000"})
    assert r.status_code == 422, r.text
    box = r.text.split('action="/staff/settings/sms/credits"', 1)[1].split("</form>", 1)[0]
    assert re.search(r'name="credits"[^>]*value="250000"[^>]*><span class="field-error">', box)
    assert (await reminders.messaging_settings(s["practice"].id)).sms_credits == before


async def test_a_refused_reminders_page_keeps_the_settings_typed(
    setup: dict[str, Any], http: Any
) -> None:
    """A text refused (an unknown placeholder) kept the texts as typed, but the quiet hours,
    the delays and the boxes went back to what is saved, to be changed again."""
    s = setup
    await login(http, s["owner"])
    form = {
        "quiet_start": "22:30",
        "quiet_end": "07:15",
        "confirmation_delay_minutes": "45",
        "unread_notice_minutes": "95",
        "sms_on_online_booking": "true",
        "sms_on_earlier_slot_offers": "true",
        "sms_fr_body": "RDV le {jour} à {time}",  # {jour} is no placeholder: refused
    }
    r = await http.post("/staff/settings/reminders", data=form)
    assert r.status_code == 422, r.text
    page = r.text
    assert re.search(
        r'name="sms_fr_body"[^>]*>RDV le \{jour\}[^<]*</textarea><span class="field-error">', page
    )
    for name in ("quiet_start", "quiet_end", "confirmation_delay_minutes", "unread_notice_minutes"):
        assert re.search(rf'name="{name}"[^>]*value="{form[name]}"', page), name
    for box in ("sms_on_online_booking", "sms_on_earlier_slot_offers"):
        assert re.search(rf'name="{box}" value="true" checked', page), box
    after = await reminders.messaging_settings(s["practice"].id)
    assert after.quiet_start_minute != 22 * 60 + 30 and after.confirmation_delay_minutes != 45
    assert not after.sms_on_online_booking
