"""Online booking by a client on the portal: the slot check, the appointment, the waiting-list
flag, the confirmation email and the SMS hooks, in one transaction.

The free-slot check runs before the transaction (it reads many rows); the booking itself
re-checks inside it (``agenda.do_book_or_find`` serialises bookings per practitioner and
looks again at appointments, time off and open hours), so two clients racing for the last
place get one appointment and one Conflict, and time off added meanwhile wins.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from models.accounts import Practice, StaffUser
from models.agenda import Appointment, Attendance, Location, Service
from models.clients import Client
from server.actions import agenda, offers, reminders
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import Conflict, ValidationFailed
from server.i18n import format_datetime, ngettext
from server.i18n import gettext as _
from server.mail import queue_email
from server.queries.agenda import slots_for, video_link

# How far ahead clients can book online (the portal offers slots up to this many days out).
HORIZON_DAYS = 42


def _now() -> datetime:
    return datetime.now(UTC)


def earliest_online_start(practice: Practice, now: datetime) -> datetime:
    """The first time a client may book online: beyond the practice's cancellation notice,
    so that a slot booked by mistake can still be cancelled online at once (can_cancel).
    Sooner than that, the client calls the practice."""
    return now + timedelta(hours=practice.cancellation_notice_hours)


def slot_gone() -> Conflict:
    """The one answer for a slot the client cannot have: taken, closed, or never offered
    (it says nothing of who took it)."""
    return Conflict(_("Sorry, this slot is no longer free. Please choose another one."))


async def do_book_online(
    caller: Caller,
    practitioner: StaffUser,
    client: Client,
    service: Service,
    *,
    starts_at: datetime,
    location_id: int | None,
    alert_earlier: bool,
) -> Appointment:
    """Book if the time is one of the free slots offered right now, and send the confirmation.

    The caller has already checked that the practitioner offers ``service`` at
    ``location_id`` to this client. ``alert_earlier``: put it on the earlier-slot waiting
    list, when it may wait (offers.join_refusal), else book it without.

    Raises Conflict, its message for the client, when the slot is not offered (any more):
    taken, in the past or within the cancellation notice, beyond the booking horizon, or at
    a location the practice closed; when the client already holds another appointment at
    that time (with anyone), or as many upcoming online bookings as the practice allows."""
    practice = await Practice.get(id=caller.practice_id)
    tz = ZoneInfo(practice.time_zone)
    try:
        start = starts_at.astimezone(UTC)
        day = start.astimezone(tz).date()
    except OverflowError:  # a time at the very edge of the calendar
        raise ValidationFailed(
            _("Please choose one of the times offered."), {"starts_at": _("Not a time offered.")}
        ) from None
    today = datetime.now(tz).date()
    location = await Location.get_or_none(id=location_id, is_active=True) if location_id else None
    if not today <= day <= today + timedelta(days=HORIZON_DAYS) or (location_id and not location):
        # Never offered on the portal: the same answer as a slot someone else took.
        raise slot_gone()
    free = await slots_for(
        practitioner.id,
        service.id,
        timedelta(minutes=service.duration_minutes),
        tz,
        day,
        day,
        location_id=location_id,
        exact_location=True,  # at that location, or remote when none
        now=earliest_online_start(practice, _now()),
    )
    if not any(s.start == start for s in free):
        # The same booking sent again (a phone that lost the answer and retried, a double
        # tap): the client already holds this very time. Say it is booked, once, instead of
        # "no longer free", which sent people to book a second slot.
        mine = await _own_booking(client, practitioner, service, start)
        if mine is not None:
            return mine
        raise slot_gone()
    async with atomic():
        # The practitioner's row lock first, then the client's (check_client_free), the
        # order do_book_or_find and do_accept_offer take them in.
        await StaffUser.filter(id=practitioner.id).select_for_update().first()
        # A double tap: both taps found the slot free above, the first booked it while
        # this one waited for the lock. Booked, as for a retry, not "no longer free".
        mine = await _own_booking(client, practitioner, service, start)
        if mine is not None:
            return mine
        await agenda.check_client_free(
            client.id, start, start + timedelta(minutes=service.duration_minutes)
        )
        await _check_online_limit(practice, client)
        try:
            appointment, booked = await agenda.do_book_or_find(
                caller,
                practitioner=practitioner,
                client=client,
                service=service,
                starts_at=start,
                location=location,
                # Time off or changed hours committed since the free-slot check above.
                within_hours=True,
            )
        except Conflict:
            # Its message names what the slot collides with: another client's session.
            raise slot_gone() from None
        if not booked:
            # The client's own group place (found above already, under the same lock):
            # confirmed once already.
            return appointment
        if alert_earlier and offers.join_refusal(practice, appointment, _now()) is None:
            # Not for a session already soon (or a group): the alert is an extra, and its
            # refusal rolled back the booking itself. The booking goes through without it;
            # the confirmation says why (portal/booking.py).
            await offers.do_set_earlier_alert(caller, appointment, True)
        assert caller.account is not None
        when = format_datetime(start, "full")
        await queue_email(
            caller.account.email,
            _("Your appointment on %(when)s") % {"when": when},
            # Not the service's name, as in reminders: a shared mailbox or a phone's lock
            # screen would say which therapy ("EMDR (trauma)"); the portal shows it.
            _("Your appointment with %(name)s is booked for %(when)s.")
            % {"name": practitioner.full_name, "when": when}
            + "\n"
            + where(appointment, practice, location, client),
            purpose="appointment.confirmation",
            client_id=client.id,
            practice_id=practice.id,
        )
        await reminders.on_online_booking(appointment)
    return appointment


async def _check_online_limit(practice: Practice, client: Client) -> None:
    """Refuse (409) a booking beyond the practice's number of upcoming appointments a client
    may hold booked online: without it one client (or one stolen session) took every free
    hour of a practitioner. Counts what the client booked themselves (no staff member
    booked it: created_by is empty), still scheduled and to come; the front desk's bookings
    do not count. Call holding the client's row lock (agenda.check_client_free), so two
    bookings at once cannot both pass."""
    limit = practice.online_bookings_per_client
    if not limit:
        return
    held = await Appointment.filter(
        client_id=client.id,
        created_by_id=None,
        deleted_at=None,
        attendance=Attendance.SCHEDULED,
        starts_at__gt=_now(),
    ).count()
    if held >= limit:
        raise Conflict(
            ngettext(
                "You already have %(num)d upcoming appointment booked online: please contact "
                "the practice to book another one.",
                "You already have %(num)d upcoming appointments booked online: please contact "
                "the practice to book another one.",
                held,
            )
            % {"num": held}
        )


async def _own_booking(
    client: Client, practitioner: StaffUser, service: Service, start: datetime
) -> Appointment | None:
    """The client's scheduled appointment with this practitioner, for this service, at this
    very time: the same booking, sent before."""
    return await Appointment.filter(
        client_id=client.id,
        practitioner_id=practitioner.id,
        service_id=service.id,
        starts_at=start,
        attendance=Attendance.SCHEDULED,
        deleted_at=None,
    ).first()


def where(
    appointment: Appointment, practice: Practice, location: Location | None, client: Client
) -> str:
    """Where it takes place, as said in confirmations: the video link for a
    teleconsultation, the client's address for a home visit, else the location."""
    if appointment.video_room:
        if appointment.attendance is not Attendance.SCHEDULED or appointment.ends_at < _now():
            # Cancelled, moved, missed or over: nothing to join (the portal's list showed
            # the link on a cancelled teleconsultation).
            return _("Remote (video)")
        return _("Join by video: %(link)s") % {
            "link": video_link(practice.video_url_template, appointment.video_room)
        }
    if location is None:
        address = ", ".join(p for p in (client.address_line1, client.postal_code, client.city) if p)
        return _("At your address: %(address)s") % {"address": address or "—"}
    return _("Where: %(place)s") % {
        "place": f"{location.name}, {location.address}" if location.address else location.name
    }
