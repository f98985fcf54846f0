"""Reminders, SMS confirmations and unread-message notices: scheduled, sent once, logged.

Scheduling side: the agenda, client-file, circle and messaging actions call one function
here inside their transaction (``sync_appointment``, ``sync_client``, ``on_moved``,
``on_message_sent``, ``on_messages_read``); each writes or cancels jobs keyed by the work
itself, ``reminder:<appointment>:<recipient>:<channel>``, so there are never two.

Running side: the job handlers are in ``server/actions/reminder_jobs.py``; what they share
with the scheduling side (the recipients, ``queue_sms`` with its credits, the quiet hours)
is here. Credits are taken per segment in the job's transaction, under a row lock, so two
workers cannot overspend them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from models.accounts import PortalAccount, Practice, StaffRole, StaffUser
from models.agenda import Appointment, Attendance, is_upcoming
from models.clients import AlternateContact, Client, PhoneNumber
from models.jobs import Job, JobStatus
from models.messaging import (
    Conversation,
    ConversationKind,
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
from server import jobs, outbox
from server.actions import audit
from server.auth.sessions import Caller
from server.db import atomic, connection, placeholders
from server.errors import Conflict, ValidationFailed
from server.i18n import gettext as _
from server.i18n import writing_in
from server.mail import queue_email
from server.phones import for_sending, practice_region, region_of, sms_problem
from server.quiet_hours import next_allowed
from server.reminder_texts import (
    DEFAULT_REMINDERS,
    LOCALES,
    Text,
    check_template,
    language,
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


async def client_locale(client: Client, practice: Practice) -> str:
    account = await PortalAccount.get_or_none(client_id=client.id)
    return language(account.locale if account else None, client.locale, practice.locale)


async def sms_number(*, client_id: int | None = None, alternate_id: int | None = None) -> str:
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
    locale = await client_locale(client, practice)
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
        number = await sms_number(client_id=client.id)
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
            number = await sms_number(alternate_id=contact.id)
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


async def sync_appointment(appointment: Appointment) -> None:
    """Make the appointment's reminder jobs match it: one per recipient and channel for an
    upcoming session, none for a cancelled, moved or deleted one. Call inside ``atomic()``.

    A reminder whose time has already passed (a session booked at short notice) is not
    sent: it would arrive as a second confirmation, not a reminder."""
    now = datetime.now(UTC)
    prefix = f"reminder:{appointment.id}:"
    if not is_upcoming(appointment, now):
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
    appointment: Appointment,
    template: SmsTemplate | None,
    *,
    delay: timedelta | None = None,
    marked_only: bool = False,
) -> None:
    """Send an SMS confirmation after the practice's delay. Call inside ``atomic()``.

    ``marked_only``: only to a number the client marked for SMS, for a confirmation nobody
    asked for at that moment (the practice's setting for online bookings); a person who
    ticks "confirm by SMS" may send it to the primary phone."""
    settings = await messaging_settings(appointment.practice_id)  # type: ignore[attr-defined]
    wait = delay if delay is not None else timedelta(minutes=settings.confirmation_delay_minutes)
    payload: dict[str, Any] = {
        "appointment": appointment.id,
        "template": template.id if template else None,
    }
    if marked_only:
        payload["marked_only"] = True
    await jobs.schedule(
        CONFIRMATION,
        datetime.now(UTC) + wait,
        payload,
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
        # A landline, a work or a family phone may be the primary one: the client's own
        # choice of a number for texts is what an automatic text goes to.
        await schedule_confirmation(appointment, template, delay=timedelta(0), marked_only=True)
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


async def on_message_sent(
    conversation: Conversation,
    sender: Participant,
    participants: Sequence[Participant] | None = None,
) -> None:
    """Schedule the "a message is waiting" notice for the other side, unless one is already
    waiting or went out and has not been read since. Call inside ``atomic()``."""
    if conversation.kind is not ConversationKind.CLIENT:
        return
    if participants is None:
        participants = await Participant.filter(conversation_id=conversation.id, left_at=None)
    await on_messages_sent([(conversation, sender, participants)])


async def on_messages_sent(
    sent: Sequence[tuple[Conversation, Participant, Sequence[Participant]]],
) -> None:
    """``on_message_sent`` for the messages of one group commit: (conversation, sender,
    the conversation's participants) each. One read of the notices already waiting for all
    of them; a notice is scheduled only where none waits. Call inside ``atomic()``."""
    wanted: dict[str, tuple[Conversation, Participant | None]] = {}
    for conversation, sender, participants in sent:
        for key, target in unread_notices(conversation, sender, participants):
            wanted.setdefault(key, (conversation, target))
    if not wanted:
        return
    # Hand-written: this runs in every group commit, and building the query through the ORM
    # cost more than the rest of the lookup (docs/performance.md, sixth round).
    keys = list(wanted)
    rows = await connection().execute_query_dict(
        f"SELECT \"key\" FROM job WHERE status <> '{JobStatus.CANCELLED.value}'"
        f' AND "key" IN ({", ".join(placeholders(len(keys)))})',
        keys,
    )
    waiting = {str(row["key"]) for row in rows}
    due: dict[int, datetime] = {}  # when a notice falls due, by practice
    notices: list[jobs.KeyedJob] = []
    for key, (conversation, target) in wanted.items():
        if key in waiting:
            continue  # one notice per conversation until the person has read it
        practice_id: int = conversation.practice_id  # type: ignore[attr-defined]
        if practice_id not in due:
            due[practice_id] = datetime.now(UTC) + timedelta(
                minutes=await _unread_notice_minutes(practice_id)
            )
        notices.append(
            jobs.KeyedJob(key, due[practice_id], notice_payload(conversation, target), practice_id)
        )
    await jobs.schedule_unless_waiting(UNREAD, notices)


def unread_notices(
    conversation: Conversation, sender: Participant, participants: Sequence[Participant]
) -> list[tuple[str, Participant | None]]:
    """The notices a new message of ``sender`` calls for: (key, person; None for the staff
    of the conversation, as one). Client conversations only: the staff's message is for
    the client and the linked people, the others' for the staff."""
    if conversation.kind is not ConversationKind.CLIENT:
        return []
    if sender.role is ParticipantRole.STAFF:
        targets: list[Participant | None] = [
            p for p in participants if p.role in (ParticipantRole.CLIENT, ParticipantRole.LINKED)
        ]
    else:
        targets = [None]
    return [(_notice_key(conversation, target), target) for target in targets]


def notice_payload(conversation: Conversation, target: Participant | None) -> dict[str, Any]:
    return {"conversation": conversation.id, "participant": target.id if target else None}


def pg_schedule_unread_notices(wanted: str, now: str) -> str:
    """PostgreSQL: ``on_messages_sent``'s scheduling as one part of a bigger statement, for
    the notices of a query ``wanted`` with columns key, payload (jsonb) and practice_id, one
    row a key. Each falls due after its practice's delay (the default where the practice
    has not chosen one); a key already waiting is left alone (``jobs``)."""
    rows = (
        f"SELECT w.key, w.payload, w.practice_id, {now} + make_interval(mins => "
        f"coalesce(s.unread_notice_minutes, {_DEFAULT_NOTICE_MINUTES})) AS run_at "
        f"FROM ({wanted}) w LEFT JOIN messaging_settings s ON s.practice_id = w.practice_id"
    )
    return jobs.pg_schedule_unless_waiting(UNREAD, rows, now)


_DEFAULT_NOTICE_MINUTES = int(
    MessagingSettings._meta.fields_map["unread_notice_minutes"].default  # type: ignore[arg-type]
)


async def _unread_notice_minutes(practice_id: int) -> int:
    """The practice's delay before an unread notice, read by hand (every group commit that
    schedules a notice asks), else through ``messaging_settings`` (which creates the row)."""
    rows = await connection().execute_query_dict(
        "SELECT unread_notice_minutes FROM messaging_settings WHERE practice_id = "
        f"{placeholders(1)[0]}",
        [practice_id],
    )
    if rows:
        return int(rows[0]["unread_notice_minutes"])
    return (await messaging_settings(practice_id)).unread_notice_minutes


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
    appointment: Appointment | None = None,
    send_before: datetime | None = None,
) -> OutboxMessage:
    """Queue one SMS, paying its segments from the practice's credits. With too few credits
    it is recorded as failed (so the Logs tab says why) and the owner is told, once.

    A text about ``appointment`` is not sent once it is cancelled, moved or has begun; one
    with ``send_before`` not from then on (server/outbox.py). Dropped, it costs nothing."""
    body = gsm_friendly(body)
    to = for_sending(to, region_of(practice.time_zone))
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
        "appointment_id": appointment.id if appointment else None,
        "send_before": appointment.starts_at if appointment else send_before,
    }
    if settings.sms_credits < segments:
        if settings.credits_exhausted_at is None:
            await _tell_owners_credits_ran_out(practice)
            await MessagingSettings.filter(id=settings.id).update(
                credits_exhausted_at=datetime.now(UTC)
            )
        return await OutboxMessage.create(
            **common, status=OutboxStatus.FAILED, error=outbox.NO_CREDITS
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
        with writing_in(language(owner.locale, practice.locale)):
            subject = _("No SMS credits left")
            body = _(
                "%(practice)s has no SMS credits left: SMS reminders and confirmations "
                "are not being sent. Add credits: %(link)s"
            ) % {"practice": practice.name, "link": url}
        await queue_email(
            owner.email, subject, body + "\n", purpose="sms.credits", practice_id=practice.id
        )


# --- what a reminder says, where a confirmation goes ------------------------------------------


async def reminder_text(practice_id: int, channel: Channel, locale: str) -> Text:
    own = await ReminderTemplate.get_or_none(
        practice_id=practice_id, channel=channel, locale=locale
    )
    if own is not None:
        return Text(own.subject, own.body)
    return DEFAULT_REMINDERS[(channel, locale)]


async def confirmation_number(client: Client) -> str:
    """Where a confirmation SMS goes: the number marked for SMS, else the primary phone."""
    return await sms_number(client_id=client.id) or (client.phone or "").strip()


# --- actions: booking with a confirmation, settings, templates, credits, provider status ----


async def check_can_confirm(client: Client) -> None:
    """422 on ``confirm_sms`` when the client has no number a confirmation could go to, or
    only one texts cannot reach (the primary phone, a landline, when none is marked for
    texts: the confirmation would fail at the provider, unseen)."""
    number = await confirmation_number(client)
    if not number:
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"confirm_sms": _("This client has no phone number for SMS.")},
        )
    if problem := sms_problem(number, await practice_region(client.practice_id)):  # type: ignore[attr-defined]
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"confirm_sms": _("%(number)s: %(problem)s") % {"number": number, "problem": problem}},
        )


async def do_book_with_confirmation(
    actor: Caller,
    *,
    template: SmsTemplate | None,
    **booking: Any,
) -> Appointment:
    """Book (as the agenda does) and send an SMS confirmation after the practice's delay."""
    from server.actions import agenda

    return await agenda.do_book_with_options(
        actor, confirm_sms=True, sms_template=template, **booking
    )


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


REMINDER_SETTINGS = (
    "quiet_start_minute",
    "quiet_end_minute",
    "confirmation_delay_minutes",
    "unread_notice_minutes",
    "sms_on_online_booking",
    "sms_on_earlier_slot_offers",
)


async def reminder_settings_version(practice_id: int) -> str:
    """A fingerprint of what Settings > Reminders shows, which its form posts back: the
    form sends every text and setting, so a stale one (another tab, another owner) would
    silently put back what was changed since it was shown."""
    settings = await messaging_settings(practice_id)
    shown: list[Any] = [getattr(settings, f) for f in REMINDER_SETTINGS]
    for channel in Channel:
        for locale in LOCALES:
            text = await reminder_text(practice_id, channel, locale)
            shown += [text.subject, text.body]
    return hashlib.sha256(json.dumps(shown).encode()).hexdigest()


async def do_save_reminder_settings(
    actor: Caller,
    practice: Practice,
    texts: dict[tuple[Channel, str], Text],
    values: dict[str, Any],
    version: str | None = None,
) -> None:
    """Settings > Reminders in one go: the wording and the sending settings, or nothing.
    Conflict when ``version`` is given and is not the current one."""
    async with atomic():
        settings = await messaging_settings(practice.id)
        # Two saves at once: the second sees the first's version.
        await MessagingSettings.filter(id=settings.id).select_for_update().first()
        if version is not None and version != await reminder_settings_version(practice.id):
            raise Conflict(
                _("These settings were changed meanwhile: see them below, then save again.")
            )
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
        "sms_on_earlier_slot_offers",
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
    # What carriers take as an SMS sender name: ASCII letters and digits, at least one
    # letter ("Léa" or "²" passed isalnum() and every text sent with it was refused; all
    # digits reads as a phone number).
    plain = sender_name.replace(" ", "")
    if sender_name and (
        len(sender_name) > 11
        or not (plain.isascii() and plain.isalnum())
        or not any(c.isalpha() for c in plain)
    ):
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
    region = await practice_region(practitioner.practice_id)  # type: ignore[attr-defined]
    if mobile and (problem := sms_problem(mobile, region)):
        raise ValidationFailed(_("Some fields are not valid."), {"mobile": problem})
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
