"""The jobs behind reminders, confirmations and notices (the worker imports this module).

Each handler looks at the appointment, the preferences and the conversation as they are
*now*: a cancelled session sends nothing, a moved or changed one the corrected details, a
message read in the meantime no notice. It queues the email or SMS in the job's own
transaction (``server/jobs.py`` marks the job done in it), so a worker killed halfway
leaves nothing behind and the job runs again, once. SMS falling in the practice's quiet
hours raise ``jobs.Defer`` until they end.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from models.accounts import PortalAccount, Practice, StaffUser
from models.agenda import Appointment, Location, is_upcoming
from models.clients import Client
from models.jobs import Job
from models.messaging import (
    Conversation,
    Message,
    MessageRead,
    Participant,
    ParticipantRole,
)
from models.reminders import (
    Channel,
    PractitionerSms,
    SmsTemplate,
)
from server import jobs
from server.actions.reminders import (
    BOOKING_NOTICE,
    CONFIRMATION,
    REMINDER,
    UNREAD,
    client_locale,
    confirmation_number,
    queue_sms,
    reminder_recipients,
    reminder_text,
    sms_allowed_from,
    sms_number,
)
from server.mail import queue_email
from server.queries.agenda import video_link
from server.reminder_texts import (
    DEFAULT_CONFIRMATION,
    PRACTITIONER_BOOKING_SMS,
    UNREAD_NOTICE,
    language,
    render,
    render_html,
    when_values,
)
from server.settings import get_settings


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


def _moment(job: Job) -> datetime:
    """When this run happens: the job's time, or now if the worker is late."""
    return max(job.run_at, datetime.now(UTC))


async def _live_appointment(job: Job) -> Appointment | None:
    appointment = await Appointment.get_or_none(id=job.payload.get("appointment"))
    if appointment is None or not is_upcoming(appointment, _moment(job)):
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
            appointment=appointment,
        )
    else:
        await queue_sms(
            practice,
            r.address,
            render(text.body, values),
            purpose="reminder",
            client_id=client.id,
            appointment=appointment,
        )


@jobs.handler(CONFIRMATION)
async def send_confirmation(job: Job) -> None:
    appointment = await _live_appointment(job)
    if appointment is None:
        return  # deleted in the window: nothing is sent
    practice = await Practice.get(id=appointment.practice_id)  # type: ignore[attr-defined]
    client = await Client.get(id=appointment.client_id)  # type: ignore[attr-defined]
    if job.payload.get("marked_only"):
        number = await sms_number(client_id=client.id)
    else:
        number = await confirmation_number(client)
    if not number:
        return
    if not await _defer_for_quiet_hours(job, practice, appointment):
        return
    locale = await client_locale(client, practice)
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
        appointment=appointment,
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
    # Not to someone who left the practice since (the text waited for quiet hours to end).
    practitioner = await StaffUser.get_or_none(
        id=appointment.practitioner_id,  # type: ignore[attr-defined]
        is_active=True,
    )
    if practitioner is None:
        return
    practice = await Practice.get(id=appointment.practice_id)  # type: ignore[attr-defined]
    if not await _defer_for_quiet_hours(job, practice, appointment):
        return
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
        appointment=appointment,
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
    at = _moment(job)
    if job.payload.get("participant"):
        target = await Participant.get_or_none(id=job.payload["participant"], left_at=None)
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
        number = await sms_number(client_id=client.id) if by_sms else ""
        await _notice(
            practice,
            account.email,
            number,
            locale,
            f"{public}/portal/messages",
            client_id,
            at,
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
    # The texts that quiet hours held back (below): only those people, in the morning.
    only = set(job.payload.get("staff_ids") or [])
    held: list[int] = []
    for p in staff:
        user = await StaffUser.get_or_none(id=p.staff_user_id, is_active=True)  # type: ignore[attr-defined]
        if user is None or (only and user.id not in only):
            continue
        prefs = await PractitionerSms.get_or_none(practitioner_id=user.id)
        number = prefs.mobile if prefs is not None and prefs.notices_by_sms else ""
        if number and not await _sms_window_open(practice, at):
            held.append(user.id)
            continue
        locale = language(user.locale, practice.locale)
        link = f"{public}/staff/messages"
        await _notice(practice, user.email, number, locale, link, client_id, at)
    if held:
        # Quiet hours hold a colleague's text, not everyone else's email: the texts go in a
        # job of their own at the end of quiet hours (still only if unread by then).
        await jobs.schedule(
            UNREAD,
            await sms_allowed_from(practice, at),
            {"conversation": conversation.id, "staff_ids": held},
            key=f"notice:{conversation.id}:staff-sms",
            practice_id=practice.id,
            again_if_done=True,
        )


async def _notice(
    practice: Practice,
    email: str,
    number: str,
    locale: str,
    link: str,
    client_id: int | None,
    at: datetime,
) -> None:
    text = UNREAD_NOTICE[locale]
    if number:
        if not await _sms_window_open(practice, at):
            raise jobs.Defer(await sms_allowed_from(practice, at))
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


async def _sms_window_open(practice: Practice, at: datetime) -> bool:
    return await sms_allowed_from(practice, at) <= at
