"""Reminders, SMS confirmations and unread-message notices: scheduled, sent once, logged.

Scheduling side: the agenda, client-file, circle and messaging actions call one function
here inside their transaction (``sync_appointment``, ``sync_client``, ``on_moved``,
``on_message_sent``, ``on_messages_read``); each writes or cancels jobs keyed by the work
itself, ``reminder:<appointment>:<recipient>:<channel>``, so there are never two.

Running side: the job handlers below (registered on import; the worker imports this module)
look at the appointment as it is *now*, so a cancelled session sends nothing and a changed
one sends the corrected details, and queue the email or SMS in the outbox in the job's own
transaction. Quiet hours defer SMS (``jobs.Defer``); credits are taken per segment in the
same transaction, under a row lock, so two workers cannot overspend them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from models.accounts import PortalAccount, Practice, StaffRole, StaffUser
from models.agenda import Appointment, Attendance, Location
from models.clients import AlternateContact, Client, PhoneNumber
from models.jobs import Job, JobStatus
from models.messaging import (
    Conversation,
    ConversationKind,
    Message,
    MessageRead,
    Participant,
    ParticipantRole,
)
from models.notifications import OutboxMessage, OutboxStatus
from models.reminders import (
    Channel,
    MessagingSettings,
    PractitionerSms,
    ReminderTemplate,
    SmsTemplate,
)
from server import jobs
from server.actions import audit
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import ValidationFailed
from server.i18n import gettext as _
from server.mail import queue_email
from server.queries.agenda import video_link
from server.quiet_hours import next_allowed
from server.reminder_texts import (
    DEFAULT_CONFIRMATION,
    DEFAULT_REMINDERS,
    PRACTITIONER_BOOKING_SMS,
    UNREAD_NOTICE,
    Text,
    check_template,
    language,
    render,
    render_html,
    when_values,
)
from server.settings import get_settings
from server.sms import count_segments, gsm_friendly

REMINDER = "reminder.send"
CONFIRMATION = "confirmation.send"
BOOKING_NOTICE = "booking.practitioner_sms"
UNREAD = "notice.unread"


# --- settings ---------------------------------------------------------------------------------


async def messaging_settings(practice_id: int) -> MessagingSettings:
    found = await MessagingSettings.get_or_none(practice_id=practice_id)
    if found is not None:
        return found
    row, _created = await MessagingSettings.get_or_create(practice_id=practice_id)
    return row


def _minute_time(minute: int) -> time:
    return time(minute // 60, minute % 60)


async def sms_allowed_from(practice: Practice, at: datetime) -> datetime:
    """``at``, or the end of the practice's quiet hours if ``at`` falls in them. Everyone is
    taken to live in the practice's time zone (people have no time zone of their own)."""
    s = await messaging_settings(practice.id)
    return next_allowed(
        at,
        ZoneInfo(practice.time_zone),
        _minute_time(s.quiet_start_minute),
        _minute_time(s.quiet_end_minute),
    )


# --- recipients -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    key: str  # "client-7" or "contact-3"
    channel: Channel
    hours: int
    address: str
    locale: str


async def _client_locale(client: Client, practice: Practice) -> str:
    account = await PortalAccount.get_or_none(client_id=client.id)
    return language(account.locale if account else None, client.locale, practice.locale)


async def _sms_number(*, client_id: int | None = None, alternate_id: int | None = None) -> str:
    query = PhoneNumber.filter(for_sms=True)
    query = (
        query.filter(client_id=client_id)
        if client_id is not None
        else query.filter(alternate_contact_id=alternate_id)
    )
    phone = await query.first()
    return phone.number.strip() if phone else ""


async def reminder_recipients(client: Client, practice: Practice) -> list[Recipient]:
    """The client and each circle-of-care contact with reminders on, per channel. SMS only
    to a number marked for reminders, email only to an address on file."""
    locale = await _client_locale(client, practice)
    out: list[Recipient] = []
    if client.reminder_email_hours and client.email:
        out.append(
            Recipient(
                f"client-{client.id}",
                Channel.EMAIL,
                client.reminder_email_hours,
                client.email,
                locale,
            )
        )
    if client.reminder_sms_hours:
        number = await _sms_number(client_id=client.id)
        if number:
            out.append(
                Recipient(
                    f"client-{client.id}", Channel.SMS, client.reminder_sms_hours, number, locale
                )
            )
    for contact in await AlternateContact.filter(client_id=client.id, deleted_at=None):
        # A contact has no language of their own: they get the client's.
        if contact.reminder_email_hours and contact.email:
            out.append(
                Recipient(
                    f"contact-{contact.id}",
                    Channel.EMAIL,
                    contact.reminder_email_hours,
                    contact.email,
                    locale,
                )
            )
        if contact.reminder_sms_hours:
            number = await _sms_number(alternate_id=contact.id)
            if number:
                out.append(
                    Recipient(
                        f"contact-{contact.id}",
                        Channel.SMS,
                        contact.reminder_sms_hours,
                        number,
                        locale,
                    )
                )
    return out


# --- scheduling (called inside the caller's transaction) ------------------------------------


def _upcoming(appointment: Appointment, now: datetime) -> bool:
    return (
        appointment.deleted_at is None
        and appointment.attendance is Attendance.SCHEDULED
        and appointment.starts_at > now
    )


async def sync_appointment(appointment: Appointment) -> None:
    """Make the appointment's reminder jobs match it: one per recipient and channel for an
    upcoming session, none for a cancelled, moved or deleted one. Call inside ``atomic()``.

    A reminder whose time has already passed (a session booked at short notice) is not
    sent: it would arrive as a second confirmation, not a reminder."""
    now = datetime.now(UTC)
    prefix = f"reminder:{appointment.id}:"
    if not _upcoming(appointment, now):
        await jobs.cancel_prefix(prefix)
        await jobs.cancel(f"confirmation:{appointment.id}")
        return
    client = await Client.get(id=appointment.client_id)  # type: ignore[attr-defined]
    practice = await Practice.get(id=appointment.practice_id)  # type: ignore[attr-defined]
    keep: list[str] = []
    for r in await reminder_recipients(client, practice):
        run_at = appointment.starts_at - timedelta(hours=r.hours)
        if run_at <= now:
            continue
        key = f"{prefix}{r.key}:{r.channel.value}"
        keep.append(key)
        await jobs.schedule(
            REMINDER,
            run_at,
            {"appointment": appointment.id, "recipient": r.key, "channel": r.channel.value},
            key=key,
            practice_id=practice.id,
        )
    stale = (
        Job.filter(key__startswith=prefix, status__in=[JobStatus.PENDING, JobStatus.RUNNING])
        .exclude(key__in=keep or [""])
        .values_list("key", flat=True)
    )
    await jobs.cancel([str(k) for k in await stale])


async def sync_client(client: Client) -> None:
    """A reminder preference of the client or of their circle changed: apply it to every
    upcoming session. Call inside ``atomic()``."""
    now = datetime.now(UTC)
    for appointment in await Appointment.filter(
        client_id=client.id, deleted_at=None, attendance=Attendance.SCHEDULED, starts_at__gt=now
    ):
        await sync_appointment(appointment)


async def sync_client_of(alternate: AlternateContact) -> None:
    await sync_client(await Client.get(id=alternate.client_id))  # type: ignore[attr-defined]


async def on_moved(old: Appointment, new: Appointment) -> None:
    """A pending "confirm by SMS" follows the appointment to its new time (the client gets
    the corrected details, once). Call inside ``atomic()``, after the move."""
    # The old appointment's own sync has just cancelled it (it is no longer upcoming).
    job = await Job.get_or_none(
        key=f"confirmation:{old.id}",
        status__in=[JobStatus.PENDING, JobStatus.CANCELLED],
        run_at__gt=datetime.now(UTC),
    )
    if job is None:
        return
    await jobs.cancel(f"confirmation:{old.id}")
    await jobs.schedule(
        CONFIRMATION,
        job.run_at,
        {**job.payload, "appointment": new.id},
        key=f"confirmation:{new.id}",
        practice_id=job.practice_id,
    )


async def schedule_confirmation(
    appointment: Appointment, template: SmsTemplate | None, *, delay: timedelta | None = None
) -> None:
    """Send an SMS confirmation after the practice's delay. Call inside ``atomic()``."""
    settings = await messaging_settings(appointment.practice_id)  # type: ignore[attr-defined]
    wait = delay if delay is not None else timedelta(minutes=settings.confirmation_delay_minutes)
    await jobs.schedule(
        CONFIRMATION,
        datetime.now(UTC) + wait,
        {"appointment": appointment.id, "template": template.id if template else None},
        key=f"confirmation:{appointment.id}",
        practice_id=appointment.practice_id,  # type: ignore[attr-defined]
    )


async def on_online_booking(appointment: Appointment) -> None:
    """A client booked on the portal: an SMS confirmation if the practice turned them on,
    and a text to the practitioner if they asked for one. Call inside ``atomic()``."""
    settings = await messaging_settings(appointment.practice_id)  # type: ignore[attr-defined]
    prefs = await PractitionerSms.get_or_none(
        practitioner_id=appointment.practitioner_id  # type: ignore[attr-defined]
    )
    if settings.sms_on_online_booking:
        template = None
        if prefs is not None and prefs.default_template_id is not None:  # type: ignore[attr-defined]
            template = await SmsTemplate.get_or_none(
                id=prefs.default_template_id,  # type: ignore[attr-defined]
                deleted_at=None,
            )
        await schedule_confirmation(appointment, template, delay=timedelta(0))
    if prefs is not None and prefs.notify_online_bookings and prefs.mobile:
        await jobs.schedule(
            BOOKING_NOTICE,
            datetime.now(UTC),
            {"appointment": appointment.id},
            key=f"booking-notice:{appointment.id}",
            practice_id=appointment.practice_id,  # type: ignore[attr-defined]
        )


# --- unread-message notices -------------------------------------------------------------------


def _notice_key(conversation: Conversation, participant: Participant | None) -> str:
    side = f"p{participant.id}" if participant is not None else "staff"
    return f"notice:{conversation.id}:{side}"


async def on_message_sent(conversation: Conversation, sender: Participant) -> None:
    """Schedule the "a message is waiting" notice for the other side, unless one is already
    waiting or went out and has not been read since. Call inside ``atomic()``."""
    if conversation.kind is not ConversationKind.CLIENT:
        return
    settings = await messaging_settings(conversation.practice_id)  # type: ignore[attr-defined]
    run_at = datetime.now(UTC) + timedelta(minutes=settings.unread_notice_minutes)
    if sender.role is ParticipantRole.STAFF:
        targets: list[Participant | None] = list(
            await Participant.filter(
                conversation_id=conversation.id,
                role__in=[ParticipantRole.CLIENT, ParticipantRole.LINKED],
            )
        )
    else:
        targets = [None]  # the staff of the conversation, as one
    for target in targets:
        key = _notice_key(conversation, target)
        existing = await Job.get_or_none(key=key)
        if existing is not None and existing.status is not JobStatus.CANCELLED:
            continue  # one notice per conversation until the person has read it
        await jobs.schedule(
            UNREAD,
            run_at,
            {"conversation": conversation.id, "participant": target.id if target else None},
            key=key,
            practice_id=conversation.practice_id,  # type: ignore[attr-defined]
        )


async def on_messages_read(conversation: Conversation, reader: Participant) -> None:
    """The reader caught up: cancel their pending notice, and let the next message bring a
    new one. Call inside ``atomic()``."""
    key = _notice_key(conversation, None if reader.role is ParticipantRole.STAFF else reader)
    await jobs.cancel(key)
    # Free the key of a notice that went out, so the next unread message gets its own.
    await Job.filter(key=key, status=JobStatus.DONE).update(key=None)


# --- queueing what goes out (inside a job's or an action's transaction) ----------------------


async def queue_sms(
    practice: Practice,
    to: str,
    body: str,
    *,
    purpose: str,
    client_id: int | None,
    sender: str = "",
) -> OutboxMessage:
    """Queue one SMS, paying its segments from the practice's credits. With too few credits
    it is recorded as failed (so the Logs tab says why) and the owner is told, once."""
    body = gsm_friendly(body)
    segments = count_segments(body).count
    settings = (
        await MessagingSettings.filter(practice_id=practice.id).select_for_update().first()
    ) or await messaging_settings(practice.id)
    common: dict[str, Any] = {
        "channel": "sms",
        "to": to,
        "body_text": body,
        "purpose": purpose,
        "client_id": client_id,
        "practice_id": practice.id,
        "segments": segments,
        "sender": sender,
    }
    if settings.sms_credits < segments:
        if settings.credits_exhausted_at is None:
            await _tell_owners_credits_ran_out(practice)
            await MessagingSettings.filter(id=settings.id).update(
                credits_exhausted_at=datetime.now(UTC)
            )
        return await OutboxMessage.create(
            **common, status=OutboxStatus.FAILED, error="No SMS credits left."
        )
    await MessagingSettings.filter(id=settings.id).update(
        sms_credits=settings.sms_credits - segments
    )
    return await OutboxMessage.create(**common, next_attempt_at=datetime.now(UTC))


async def _tell_owners_credits_ran_out(practice: Practice) -> None:
    url = f"{get_settings().public_url}/staff/settings/sms"
    for owner in await StaffUser.filter(
        practice_id=practice.id, role=StaffRole.OWNER, is_active=True
    ):
        if language(owner.locale, practice.locale) == "fr":
            subject = "Plus de crédits SMS"
            body = (
                f"Le cabinet {practice.name} n'a plus de crédits SMS : les rappels et "
                f"confirmations par SMS ne partent plus. Ajoutez des crédits : {url}\n"
            )
        else:
            subject = "No SMS credits left"
            body = (
                f"{practice.name} has no SMS credits left: SMS reminders and confirmations "
                f"are not being sent. Add credits: {url}\n"
            )
        await queue_email(
            owner.email, subject, body, purpose="sms.credits", practice_id=practice.id
        )


# --- job handlers -----------------------------------------------------------------------------


async def appointment_values(
    appointment: Appointment, practice: Practice, client: Client, locale: str
) -> dict[str, str]:
    """The placeholders' values for one appointment, in ``locale`` and the practice's zone."""
    practitioner = await StaffUser.get(id=appointment.practitioner_id)  # type: ignore[attr-defined]
    location = await Location.get_or_none(id=appointment.location_id)  # type: ignore[attr-defined]
    if appointment.video_room:
        place = video_link(practice.video_url_template, appointment.video_room)
    elif location is None:
        place = ", ".join(p for p in (client.address_line1, client.postal_code, client.city) if p)
    else:
        place = f"{location.name}, {location.address}" if location.address else location.name
    return {
        "first_name": client.preferred_name or client.first_name,
        "practitioner": practitioner.full_name,
        "place": place,
        "portal_link": f"{get_settings().public_url}/portal/",
        **when_values(appointment.starts_at, ZoneInfo(practice.time_zone), locale),
    }


async def reminder_text(practice_id: int, channel: Channel, locale: str) -> Text:
    own = await ReminderTemplate.get_or_none(
        practice_id=practice_id, channel=channel, locale=locale
    )
    if own is not None:
        return Text(own.subject, own.body)
    return DEFAULT_REMINDERS[(channel, locale)]


def _moment(job: Job) -> datetime:
    """When this run happens: the job's time, or now if the worker is late."""
    return max(job.run_at, datetime.now(UTC))


async def _live_appointment(job: Job) -> Appointment | None:
    appointment = await Appointment.get_or_none(id=job.payload.get("appointment"))
    if appointment is None or not _upcoming(appointment, _moment(job)):
        return None  # cancelled, moved, deleted or past: nothing to say
    return appointment


async def _defer_for_quiet_hours(job: Job, practice: Practice, appointment: Appointment) -> bool:
    """Raise ``Defer`` until morning; ``False`` if the morning is too late to be useful."""
    moment = _moment(job)
    allowed = await sms_allowed_from(practice, moment)
    if allowed <= moment:
        return True
    if allowed >= appointment.starts_at:
        return False
    raise jobs.Defer(allowed)


@jobs.handler(REMINDER)
async def send_reminder(job: Job) -> None:
    appointment = await _live_appointment(job)
    if appointment is None:
        return
    practice = await Practice.get(id=appointment.practice_id)  # type: ignore[attr-defined]
    client = await Client.get(id=appointment.client_id)  # type: ignore[attr-defined]
    channel = Channel(job.payload["channel"])
    # The recipient as they are now: a preference turned off since is honoured.
    wanted = [
        r
        for r in await reminder_recipients(client, practice)
        if r.key == job.payload["recipient"] and r.channel is channel
    ]
    if not wanted:
        return
    r = wanted[0]
    if channel is Channel.SMS and not await _defer_for_quiet_hours(job, practice, appointment):
        return
    values = await appointment_values(appointment, practice, client, r.locale)
    text = await reminder_text(practice.id, channel, r.locale)
    if channel is Channel.EMAIL:
        await queue_email(
            r.address,
            render(text.subject, values),
            render(text.body, values),
            body_html=render_html(text.body, values),
            purpose="reminder",
            client_id=client.id,
            practice_id=practice.id,
        )
    else:
        await queue_sms(
            practice,
            r.address,
            render(text.body, values),
            purpose="reminder",
            client_id=client.id,
        )


async def confirmation_number(client: Client) -> str:
    """Where a confirmation SMS goes: the number marked for SMS, else the primary phone."""
    return await _sms_number(client_id=client.id) or (client.phone or "").strip()


@jobs.handler(CONFIRMATION)
async def send_confirmation(job: Job) -> None:
    appointment = await _live_appointment(job)
    if appointment is None:
        return  # deleted in the window: nothing is sent
    practice = await Practice.get(id=appointment.practice_id)  # type: ignore[attr-defined]
    client = await Client.get(id=appointment.client_id)  # type: ignore[attr-defined]
    number = await confirmation_number(client)
    if not number:
        return
    if not await _defer_for_quiet_hours(job, practice, appointment):
        return
    locale = await _client_locale(client, practice)
    template = None
    if job.payload.get("template"):
        template = await SmsTemplate.get_or_none(id=job.payload["template"], deleted_at=None)
    body = template.body if template else DEFAULT_CONFIRMATION[locale]
    values = await appointment_values(appointment, practice, client, locale)
    await queue_sms(
        practice,
        number,
        render(body, values),
        purpose="confirmation",
        client_id=client.id,
        sender=template.sender_name if template else "",
    )


@jobs.handler(BOOKING_NOTICE)
async def send_booking_notice(job: Job) -> None:
    appointment = await _live_appointment(job)
    if appointment is None:
        return
    prefs = await PractitionerSms.get_or_none(
        practitioner_id=appointment.practitioner_id  # type: ignore[attr-defined]
    )
    if prefs is None or not prefs.notify_online_bookings or not prefs.mobile:
        return
    practice = await Practice.get(id=appointment.practice_id)  # type: ignore[attr-defined]
    if not await _defer_for_quiet_hours(job, practice, appointment):
        return
    practitioner = await StaffUser.get(id=appointment.practitioner_id)  # type: ignore[attr-defined]
    locale = language(practitioner.locale, practice.locale)
    # No client name: a text on a lock screen should not say who sees a therapist.
    body = render(
        PRACTITIONER_BOOKING_SMS[locale],
        when_values(appointment.starts_at, ZoneInfo(practice.time_zone), locale),
    )
    await queue_sms(
        practice,
        prefs.mobile,
        body,
        purpose="booking.practitioner",
        client_id=appointment.client_id,  # type: ignore[attr-defined]
    )


async def _unread_by(conversation_id: int, readers: list[Participant], from_staff: bool) -> bool:
    """Is there a message from the other side that none of ``readers`` has read?"""
    senders = Participant.filter(conversation_id=conversation_id)
    senders = (
        senders.filter(role=ParticipantRole.STAFF)
        if from_staff
        else senders.filter(role__in=[ParticipantRole.CLIENT, ParticipantRole.LINKED])
    )
    sender_ids = [int(str(i)) for i in await senders.values_list("id", flat=True)]
    messages = await Message.filter(
        conversation_id=conversation_id, deleted_at=None, sender_id__in=sender_ids or [0]
    ).values_list("id", flat=True)
    if not messages:
        return False
    read = set(
        await MessageRead.filter(
            message_id__in=list(messages), participant_id__in=[p.id for p in readers] or [0]
        ).values_list("message_id", flat=True)
    )
    return any(m not in read for m in messages)


@jobs.handler(UNREAD)
async def send_unread_notice(job: Job) -> None:
    conversation = await Conversation.get_or_none(id=job.payload["conversation"])
    if conversation is None:
        return
    practice = await Practice.get(id=conversation.practice_id)  # type: ignore[attr-defined]
    public = get_settings().public_url
    client_id = conversation.client_id  # type: ignore[attr-defined]
    if job.payload.get("participant"):
        target = await Participant.get_or_none(id=job.payload["participant"])
        if target is None or not await _unread_by(conversation.id, [target], from_staff=True):
            return
        account = await PortalAccount.get_or_none(
            id=target.portal_account_id,  # type: ignore[attr-defined]
            is_active=True,
        )
        if account is None:
            return
        client = await Client.get(id=account.client_id)  # type: ignore[attr-defined]
        locale = language(account.locale, client.locale, practice.locale)
        # The person's choice: SMS if they chose SMS reminders only, otherwise email.
        by_sms = client.reminder_sms_hours is not None and client.reminder_email_hours is None
        number = await _sms_number(client_id=client.id) if by_sms else ""
        await _notice(
            practice, account.email, number, locale, f"{public}/portal/messages", client_id
        )
        return
    staff = [
        p
        for p in await Participant.filter(
            conversation_id=conversation.id, role=ParticipantRole.STAFF
        )
    ]
    if not staff or not await _unread_by(conversation.id, staff, from_staff=False):
        return
    for p in staff:
        user = await StaffUser.get_or_none(id=p.staff_user_id, is_active=True)  # type: ignore[attr-defined]
        if user is None:
            continue
        prefs = await PractitionerSms.get_or_none(practitioner_id=user.id)
        number = prefs.mobile if prefs is not None and prefs.notices_by_sms else ""
        locale = language(user.locale, practice.locale)
        await _notice(practice, user.email, number, locale, f"{public}/staff/messages", client_id)


async def _notice(
    practice: Practice, email: str, number: str, locale: str, link: str, client_id: int | None
) -> None:
    text = UNREAD_NOTICE[locale]
    if number:
        if not await _sms_window_open(practice):
            raise jobs.Defer(await sms_allowed_from(practice, datetime.now(UTC)))
        body = render(text.subject + ". {link}", {"link": link})
        await queue_sms(practice, number, body, purpose="message.notice", client_id=client_id)
        return
    await queue_email(
        email,
        text.subject,
        render(text.body, {"link": link}),
        body_html=render_html(text.body, {"link": link}),
        purpose="message.notice",
        client_id=client_id,
        practice_id=practice.id,
    )


async def _sms_window_open(practice: Practice) -> bool:
    now = datetime.now(UTC)
    return await sms_allowed_from(practice, now) <= now


# --- actions: booking with a confirmation, settings, templates, credits, provider status ----


async def do_book_with_confirmation(
    actor: Caller,
    *,
    template: SmsTemplate | None,
    **booking: Any,
) -> Appointment:
    """Book (as the agenda does) and send an SMS confirmation after the practice's delay."""
    from server.actions import agenda

    client: Client = booking["client"]
    if not await confirmation_number(client):
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"confirm_sms": _("This client has no phone number for SMS.")},
        )
    async with atomic():
        appointment = await agenda.do_book_appointment(actor, **booking)
        await schedule_confirmation(appointment, template)
    return appointment


async def do_save_reminder_templates(
    actor: Caller, practice: Practice, texts: dict[tuple[Channel, str], Text]
) -> None:
    """Save the practice's reminder wording; a text equal to the built-in one is stored as
    "use the built-in" so later improvements to it reach the practice."""
    for (channel, locale), text in texts.items():
        check_template(text.body, f"{channel.value}_{locale}_body")
        check_template(text.subject, f"{channel.value}_{locale}_subject")
        if not text.body.strip():
            raise ValidationFailed(
                _("Some fields are missing."), {f"{channel.value}_{locale}_body": _("Required.")}
            )
    async with atomic():
        for (channel, locale), text in texts.items():
            if text == DEFAULT_REMINDERS[(channel, locale)]:
                await ReminderTemplate.filter(
                    practice_id=practice.id, channel=channel, locale=locale
                ).delete()
                continue
            await ReminderTemplate.update_or_create(
                practice_id=practice.id,
                channel=channel,
                locale=locale,
                defaults={"subject": text.subject, "body": text.body},
            )
        await audit.record(actor, "reminders.templates_updated", practice_id=practice.id)


async def do_save_reminder_settings(
    actor: Caller,
    practice: Practice,
    texts: dict[tuple[Channel, str], Text],
    values: dict[str, Any],
) -> None:
    """Settings > Reminders in one go: the wording and the sending settings, or nothing."""
    async with atomic():
        await do_save_reminder_templates(actor, practice, texts)
        await do_update_messaging_settings(actor, practice, values)


async def do_update_messaging_settings(
    actor: Caller, practice: Practice, values: dict[str, Any]
) -> MessagingSettings:
    allowed = {
        "quiet_start_minute",
        "quiet_end_minute",
        "confirmation_delay_minutes",
        "sms_on_online_booking",
        "unread_notice_minutes",
    }
    for k in ("quiet_start_minute", "quiet_end_minute"):
        if k in values and not 0 <= int(values[k]) < 24 * 60:
            raise ValidationFailed(_("Some fields are not valid."), {k: _("Choose a time.")})
    if (
        "confirmation_delay_minutes" in values
        and not 0 <= values["confirmation_delay_minutes"] <= 120
    ):
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"confirmation_delay_minutes": _("Between 0 and 120 minutes.")},
        )
    if (
        "unread_notice_minutes" in values
        and not 5 <= values["unread_notice_minutes"] <= 7 * 24 * 60
    ):
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"unread_notice_minutes": _("Between 5 minutes and a week.")},
        )
    async with atomic():
        settings = await messaging_settings(practice.id)
        changes = {k: v for k, v in values.items() if k in allowed}
        await MessagingSettings.filter(id=settings.id).update(**changes)
        await audit.record(
            actor,
            "reminders.settings_updated",
            practice_id=practice.id,
            detail={"fields": sorted(changes)},
        )
    return await MessagingSettings.get(id=settings.id)


async def do_add_sms_credits(actor: Caller, practice: Practice, credits: int) -> int:
    """Record credits bought from the provider; SMS resume at once."""
    if not 1 <= credits <= 100_000:
        raise ValidationFailed(
            _("Some fields are not valid."), {"credits": _("Between 1 and 100,000.")}
        )
    async with atomic():
        settings = await messaging_settings(practice.id)
        locked = await MessagingSettings.filter(id=settings.id).select_for_update().first()
        assert locked is not None
        balance = locked.sms_credits + credits
        await MessagingSettings.filter(id=settings.id).update(
            sms_credits=balance, credits_exhausted_at=None
        )
        await audit.record(
            actor, "sms.credits_added", practice_id=practice.id, detail={"credits": credits}
        )
    return balance


def check_sms_template(title: str, body: str, sender_name: str) -> None:
    if not title.strip():
        raise ValidationFailed(_("Some fields are missing."), {"title": _("Give it a title.")})
    if not body.strip():
        raise ValidationFailed(_("Some fields are missing."), {"body": _("Write the text.")})
    check_template(body, "body")
    if sender_name and (len(sender_name) > 11 or not sender_name.replace(" ", "").isalnum()):
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"sender_name": _("Up to 11 letters or digits.")},
        )


async def do_save_sms_template(
    actor: Caller,
    practice: Practice,
    template: SmsTemplate | None,
    *,
    title: str,
    description: str,
    sender_name: str,
    body: str,
) -> SmsTemplate:
    check_sms_template(title, body, sender_name)
    values: dict[str, Any] = {
        "title": title.strip(),
        "description": description.strip(),
        "sender_name": sender_name.strip(),
        "body": body.strip(),
    }
    async with atomic():
        if template is None:
            template = await SmsTemplate.create(practice_id=practice.id, **values)
        else:
            template.update_from_dict(values)
            await template.save()
        await audit.record(
            actor,
            "sms.template_saved",
            object_type="sms_template",
            object_id=template.id,
            practice_id=practice.id,
        )
    return template


async def do_delete_sms_template(actor: Caller, template: SmsTemplate) -> None:
    async with atomic():
        template.deleted_at = datetime.now(UTC)
        await template.save(update_fields=["deleted_at", "updated_at"])
        await PractitionerSms.filter(default_template_id=template.id).update(
            default_template_id=None
        )
        await audit.record(
            actor, "sms.template_deleted", object_type="sms_template", object_id=template.id
        )


async def do_set_practitioner_sms(
    actor: Caller,
    practitioner: StaffUser,
    *,
    default_template: SmsTemplate | None,
    mobile: str,
    notify_online_bookings: bool,
    notices_by_sms: bool,
) -> PractitionerSms:
    mobile = mobile.strip()
    if (notify_online_bookings or notices_by_sms) and not mobile:
        raise ValidationFailed(
            _("Some fields are missing."), {"mobile": _("Add a mobile number for texts.")}
        )
    async with atomic():
        prefs, _created = await PractitionerSms.get_or_create(practitioner_id=practitioner.id)
        prefs.default_template = default_template  # type: ignore[assignment]
        prefs.mobile = mobile
        prefs.notify_online_bookings = notify_online_bookings
        prefs.notices_by_sms = notices_by_sms
        await prefs.save()
        await audit.record(
            actor,
            "sms.practitioner_updated",
            object_type="staff_user",
            object_id=practitioner.id,
        )
    return prefs


# Twilio's statuses, as ours: the others (accepted, queued, sending) change nothing.
PROVIDER_STATUS = {
    "sent": OutboxStatus.SENT,
    "delivered": OutboxStatus.DELIVERED,
    "undelivered": OutboxStatus.FAILED,
    "failed": OutboxStatus.FAILED,
}


async def do_record_sms_status(provider_ref: str, status: str, error_code: str = "") -> bool:
    """The provider told us what became of an SMS. Returns whether we knew the message."""
    mapped = PROVIDER_STATUS.get(status)
    if not provider_ref:
        return False
    async with atomic():
        msg = await OutboxMessage.filter(provider_ref=provider_ref, channel="sms").first()
        if msg is None:
            return False
        if mapped is None or msg.status is OutboxStatus.DELIVERED:
            return True  # a late "sent" never undoes "delivered"
        changes: dict[str, Any] = {"status": mapped}
        if mapped is OutboxStatus.DELIVERED:
            changes["delivered_at"] = datetime.now(UTC)
        if mapped is OutboxStatus.FAILED:
            changes["error"] = f"The provider reports it {status}" + (
                f" (error {error_code})" if error_code else ""
            )
        await OutboxMessage.filter(id=msg.id).update(**changes)
    return True
