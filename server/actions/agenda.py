"""Agenda writes: setup (categories, services, locations, availability) and appointments.

Bookings for one practitioner are serialised (a row lock on the practitioner on PostgreSQL;
SQLite runs one write transaction at a time), so two bookings racing for the same time end
with one appointment and one clear 409.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from models.accounts import PortalAccount, Practice, StaffUser
from models.agenda import (
    HOLDS_SLOT,
    Appointment,
    Attendance,
    Availability,
    BuiltinCategory,
    Location,
    Service,
    ServiceCategory,
    TimeOff,
)
from models.clients import Client
from models.notes import SessionNote
from models.reminders import SmsTemplate
from realtime.events import client_recipient, emit, staff_recipient
from server.actions import audit, offers, reminders
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import Conflict, ValidationFailed
from server.i18n import format_datetime, lazy
from server.i18n import gettext as _
from server.queries.agenda import has_time_off, holding, windows_around
from server.queries.agenda_view import appointment_views, client_view, staff_audiences

BUILTIN_NAMES = {
    BuiltinCategory.TELECONSULTATION: lazy("Teleconsultation"),
    BuiltinCategory.HOME_VISIT: lazy("Home visit"),
    BuiltinCategory.GROUP: lazy("Group"),
}


# Distinct at a glance on the agenda grid.
BUILTIN_COLORS = {
    BuiltinCategory.TELECONSULTATION: "#7c3aed",
    BuiltinCategory.HOME_VISIT: "#c2410c",
    BuiltinCategory.GROUP: "#15803d",
}


def _name(name: str) -> str:
    """A name as stored: trimmed, and never blank (the agenda, the hours and the booking
    pages show it; a blank one is a row nobody can tell apart)."""
    name = name.strip()
    if not name:
        raise ValidationFailed(
            _("Some fields are missing."), {"name": _("This field is required.")}
        )
    return name


async def ensure_builtin_categories(practice: Practice) -> dict[BuiltinCategory, ServiceCategory]:
    """The three built-in categories of a practice, created on first use."""
    out: dict[BuiltinCategory, ServiceCategory] = {}
    for kind, name in BUILTIN_NAMES.items():
        out[kind], _created = await ServiceCategory.get_or_create(
            practice=practice, builtin=kind, defaults={"name": name, "color": BUILTIN_COLORS[kind]}
        )
    return out


async def do_create_service(
    actor: Caller | None,
    practice: Practice,
    *,
    name: str,
    duration_minutes: int,
    price: Decimal,
    category: ServiceCategory | None = None,
) -> Service:
    if not 5 <= duration_minutes <= 24 * 60:
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"duration_minutes": _("Between 5 minutes and 24 hours.")},
        )
    async with atomic():
        service = await Service.create(
            practice=practice,
            name=_name(name),
            duration_minutes=duration_minutes,
            price=price,
            category=category,
        )
        await audit.record(
            actor,
            "service.created",
            object_type="service",
            object_id=service.id,
            practice_id=practice.id,
        )
    return service


async def do_create_location(
    actor: Caller | None, practice: Practice, *, name: str, address: str = ""
) -> Location:
    async with atomic():
        location = await Location.create(practice=practice, name=_name(name), address=address)
        await audit.record(
            actor,
            "location.created",
            object_type="location",
            object_id=location.id,
            practice_id=practice.id,
        )
    return location


async def do_add_availability(
    actor: Caller | None,
    practitioner: StaffUser,
    *,
    services: Sequence[Service],
    start_time: time,
    end_time: time,
    weekday: int | None = None,
    on_date: date | None = None,
    location: Location | None = None,
    valid_from: date | None = None,
    valid_until: date | None = None,
    is_group_slot: bool = False,
    capacity: int = 1,
) -> Availability:
    if (weekday is None) == (on_date is None):
        raise ValidationFailed(
            _("Some fields are not valid."), {"weekday": _("Choose a weekday or a date.")}
        )
    if end_time <= start_time:
        raise ValidationFailed(
            _("Some fields are not valid."), {"end_time": _("The end comes after the start.")}
        )
    if is_group_slot and capacity < 2:
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"capacity": _("A group slot has room for at least two people.")},
        )
    # The hours as stored: what a second "Add the hours" is compared on, and what is created.
    hours: dict[str, Any] = {
        "location_id": location.id if location else None,
        "weekday": weekday,
        "on_date": on_date,
        "start_minute": start_time.hour * 60 + start_time.minute,
        "end_minute": end_time.hour * 60 + end_time.minute,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "is_group_slot": is_group_slot,
        "capacity": capacity if is_group_slot else 1,
    }
    async with atomic():
        await _lock_practitioner(practitioner.id)
        # "Add the hours" sent twice (a double click, a reload) made two identical rows, and
        # the portal listed each free time twice: the same hours for the same services are
        # the ones already there. Hours that only overlap stay allowed (a group slot over
        # ordinary hours is a practice's choice).
        same = await Availability.filter(
            practitioner_id=practitioner.id, deleted_at=None, **hours
        ).prefetch_related("services")
        wanted = {s.id for s in services}
        for existing in same:
            if {s.id for s in existing.services} == wanted:
                return existing
        await notify_hours_changed(practitioner.id)
        availability = await Availability.create(practitioner=practitioner, **hours)
        await availability.services.add(*services)
        await audit.record(
            actor,
            "availability.added",
            object_type="availability",
            object_id=availability.id,
            practice_id=practitioner.practice_id,  # type: ignore[attr-defined]
        )
    return availability


# --- appointments ----------------------------------------------------------------------------


async def _category(service: Service) -> BuiltinCategory | None:
    if service.category_id is None:  # type: ignore[attr-defined]
        return None
    category = await ServiceCategory.get(id=service.category_id)  # type: ignore[attr-defined]
    return category.builtin


# Booked with no location: what hours without one may offer.
REMOTE = (BuiltinCategory.TELECONSULTATION, BuiltinCategory.HOME_VISIT)


def needs_location(kind: BuiltinCategory | None) -> bool:
    """Whether a session of this kind is booked only at a location: all but those that take
    place elsewhere (REMOTE). The one rule do_book_or_find applies, and the setup checks
    hours against."""
    return kind not in REMOTE


async def needing_a_location(services: Sequence[Service]) -> list[Service]:
    """Those of ``services`` that hours without a location offer in vain: every booking of
    them there is refused (needs_location)."""
    ids = {s.category_id for s in services} - {None}  # type: ignore[attr-defined]
    builtin = dict(
        await ServiceCategory.filter(id__in=ids).values_list("id", "builtin") if ids else []
    )
    return [s for s in services if needs_location(builtin.get(s.category_id))]  # type: ignore[attr-defined]


async def _group_capacity(
    practitioner: StaffUser,
    service: Service,
    start: datetime,
    end: datetime,
    location_id: int | None,
) -> int | None:
    """How many people the group session ``start``-``end`` holds: the capacity of the group
    slot it lies in (that day's, at that location); outside the group slots (a session the
    front desk sets up at another time), the largest of the service's group slots, as
    before. None when the service has no group slot at all."""
    practice = await Practice.get(id=practitioner.practice_id)  # type: ignore[attr-defined]
    around = [
        w
        for w in await windows_around(practitioner.id, ZoneInfo(practice.time_zone), start, end)
        if w.is_group and service.id in w.service_ids and w.location_id == location_id
    ]
    if around:
        return max(w.capacity for w in around)
    rows = await Availability.filter(
        practitioner_id=practitioner.id,
        is_group_slot=True,
        deleted_at=None,
        services__id=service.id,
    )
    return max((a.capacity for a in rows), default=None)


async def _check_free(
    practitioner: StaffUser,
    service: Service,
    start: datetime,
    end: datetime,
    *,
    is_group: bool,
    location_id: int | None,
    ignore: int | None = None,
    client_id: int | None = None,
) -> None:
    """Refuse a double booking with a 409 that says what it collides with; in a group
    session, also a second place for ``client_id`` (a move or a session set back to
    scheduled, into a session where the client already has one)."""
    query = holding(start, end, practitioner_id=practitioner.id)
    if ignore is not None:
        query = query.exclude(id=ignore)
    others = await query.prefetch_related("service")
    # One group session: the same service, times and place (one practitioner cannot hold
    # it in two places at once).
    shared = [
        a
        for a in others
        if is_group
        and a.is_group
        and a.service.id == service.id
        and (a.starts_at, a.ends_at) == (start, end)
        and a.location_id == location_id  # type: ignore[attr-defined]
    ]
    clash = next((a for a in others if a not in shared), None)
    if clash is not None:
        raise Conflict(
            _("%(name)s already has %(service)s at %(when)s.")
            % {
                "name": practitioner.full_name,
                "service": clash.service.name,
                "when": format_datetime(clash.starts_at, "short"),
            }
        )
    if is_group and any(a.client_id == client_id for a in shared):  # type: ignore[attr-defined]
        raise Conflict(_("This client already has a place in that group session."))
    if is_group:
        capacity = await _group_capacity(practitioner, service, start, end, location_id)
        if capacity is None:
            raise Conflict(_("A group service needs a group slot."))
        if len(shared) >= capacity:
            raise Conflict(_("This group slot is full."))


async def check_client_free(
    client_id: int, start: datetime, end: datetime, *, ignore: int | None = None
) -> None:
    """Refuse (409) a time at which the client already holds another appointment, with any
    practitioner: a client booking for themselves (online, or taking an earlier slot) cannot
    be in two rooms at once. The front desk's own bookings do not call this: the desk may
    mean it (a session split between two colleagues) and sees the agenda. Call inside
    ``atomic()``, holding the practitioner's row lock: this takes the client's (in that
    order, as everywhere), so two bookings of one client wait for each other."""
    await Client.filter(id=client_id).select_for_update().first()
    query = holding(start, end, client_id=client_id)
    if ignore is not None:
        query = query.exclude(id=ignore)
    if await query.exists():
        raise Conflict(
            _("You already have an appointment at that time. Please choose another one.")
        )


async def _check_open(
    practitioner: StaffUser,
    service: Service,
    start: datetime,
    end: datetime,
    location_id: int | None,
) -> None:
    """Refuse (409) a time that time off covers or that the open hours no longer offer for
    ``service`` at ``location_id``. For a client's own booking: the front desk may book
    outside the hours. Call holding the practitioner's row lock."""
    practice = await Practice.get(id=practitioner.practice_id)  # type: ignore[attr-defined]
    tz = ZoneInfo(practice.time_zone)
    offered = any(
        service.id in w.service_ids and w.location_id == location_id
        for w in await windows_around(practitioner.id, tz, start, end)
    )
    if not offered or await has_time_off(practitioner.id, start, end):
        raise Conflict(_("Sorry, this slot is no longer free. Please choose another one."))


async def notify_hours_changed(practitioner_id: int) -> None:
    """Queue ``hours.changed`` for the practice's staff: open agendas fetch the shaded hours
    again. Call inside ``atomic()``; it goes out once the block commits."""
    practitioner = await StaffUser.get(id=practitioner_id)
    staff_ids = await StaffUser.filter(
        practice_id=practitioner.practice_id,  # type: ignore[attr-defined]
        is_active=True,
    ).values_list("id", flat=True)
    await emit(
        [staff_recipient(int(i)) for i in staff_ids],  # type: ignore[call-overload]
        "hours.changed",
        {"practitioner_id": practitioner_id},
    )


async def notify_appointment_changed(appointment: Appointment, *, staff_only: bool = False) -> None:
    """Queue ``appointment.changed`` for every active staff member of the practice (it is the
    practice's agenda), each as their agenda shows it (in full, or private for a therapist
    outside the client's caseload), and the client's portal account, with only their own
    appointment.

    ``staff_only``: for what only the agenda shows (what became of the slot a cancelled
    appointment freed), the client is not told: her view of it has not changed, and the
    signal alone would tell her when other clients were offered or took her old slot.

    Call inside ``atomic()``, after the write: the event goes out once the block commits.
    """
    audiences = await staff_audiences(
        Appointment.filter(id=appointment.id),
        appointment.practice_id,  # type: ignore[attr-defined]
    )
    for staff_ids, shown in audiences:
        # A therapist is told of a colleague's session as the agenda shows it to them:
        # private (queries/agenda_view.private_view).
        await emit([staff_recipient(i) for i in staff_ids], "appointment.changed", shown)
    if staff_only:
        return
    view = next((v for _ids, v in audiences if not v["private"]), None)
    if view is None:  # nobody on staff sees it in full (every colleague switched off)
        (view,) = await appointment_views(Appointment.filter(id=appointment.id))
    account = await PortalAccount.get_or_none(
        client_id=appointment.client_id,  # type: ignore[attr-defined]
        is_active=True,
    )
    if account is not None:
        await emit([client_recipient(account.id)], "appointment.changed", client_view(view))


async def do_book_appointment(
    actor: Caller | None,
    *,
    practitioner: StaffUser,
    client: Client,
    service: Service,
    starts_at: datetime,
    location: Location | None = None,
    replacing: Appointment | None = None,
) -> Appointment:
    """Book one client. No double booking of the practitioner, except clients sharing a
    group slot up to its capacity (409 otherwise, naming what it collides with). With
    ``replacing`` (a move), that appointment's own time does not count as taken. A client
    who already has a place in that group session keeps it: it is returned."""
    appointment, _booked = await do_book_or_find(
        actor,
        practitioner=practitioner,
        client=client,
        service=service,
        starts_at=starts_at,
        location=location,
        replacing=replacing,
    )
    return appointment


async def do_book_or_find(
    actor: Caller | None,
    *,
    practitioner: StaffUser,
    client: Client,
    service: Service,
    starts_at: datetime,
    location: Location | None = None,
    replacing: Appointment | None = None,
    within_hours: bool = False,
) -> tuple[Appointment, bool]:
    """``do_book_appointment``, saying whether it booked: False when the client already had
    a place in this group session (a double tap, a double click, a retry), which is
    returned instead of a second place, so the caller confirms nothing twice.

    ``within_hours``: also refuse (409) a time that time off covers or the open hours do not
    offer, checked under the lock (a client booking online, whose free-slot check ran before
    this transaction)."""
    kind = await _category(service)
    # The hours the client chose from: a teleconsultation may be offered in a location's.
    hours_location_id = location.id if location is not None else None
    if kind is BuiltinCategory.TELECONSULTATION:
        location = None  # takes place remotely
    elif location is None and needs_location(kind):
        raise ValidationFailed(
            _("Some fields are missing."), {"location_id": _("Choose a location.")}
        )
    starts_at = starts_at.astimezone(UTC)
    ends_at = starts_at + timedelta(minutes=service.duration_minutes)
    is_group = kind is BuiltinCategory.GROUP
    location_id = location.id if location is not None else None
    async with atomic():
        # Serialise bookings per practitioner: the check and the insert must not interleave.
        await StaffUser.filter(id=practitioner.id).select_for_update().first()
        if is_group and replacing is None:
            mine = await Appointment.get_or_none(
                practitioner_id=practitioner.id,
                client_id=client.id,
                service_id=service.id,
                location_id=location_id,
                starts_at=starts_at,
                ends_at=ends_at,
                is_group=True,
                deleted_at=None,
                attendance__in=list(HOLDS_SLOT),
            )
            if mine is not None:
                return mine, False
        await _check_free(
            practitioner,
            service,
            starts_at,
            ends_at,
            is_group=is_group,
            location_id=location_id,
            ignore=replacing.id if replacing is not None else None,
            client_id=client.id,
        )
        if within_hours:
            await _check_open(practitioner, service, starts_at, ends_at, hours_location_id)
        appointment = await Appointment.create(
            practice_id=practitioner.practice_id,  # type: ignore[attr-defined]
            practitioner=practitioner,
            client=client,
            service=service,
            location=location,
            starts_at=starts_at,
            ends_at=ends_at,
            is_group=is_group,
            video_room=secrets.token_urlsafe(16)
            if kind is BuiltinCategory.TELECONSULTATION
            else "",
            created_by=actor.staff if actor else None,
        )
        await audit.record(
            actor,
            "appointment.created",
            object_type="appointment",
            object_id=appointment.id,
            client_id=client.id,
            practice_id=practitioner.practice_id,  # type: ignore[attr-defined]
            detail={"starts_at": starts_at.isoformat(), "service_id": service.id},
        )
        await notify_appointment_changed(appointment)
        await offers.on_appointment_booked(appointment)
        await reminders.sync_appointment(appointment)
    return appointment, True


# Which attendance may follow which. "Moved" is final: the new date is a new appointment.
TRANSITIONS: dict[Attendance, frozenset[Attendance]] = {
    Attendance.SCHEDULED: frozenset(Attendance) - {Attendance.SCHEDULED},
    Attendance.ATTENDED: frozenset({Attendance.SCHEDULED, Attendance.NO_SHOW}),
    Attendance.NO_SHOW: frozenset({Attendance.SCHEDULED, Attendance.ATTENDED}),
    Attendance.CANCELLED_BY_CLIENT: frozenset({Attendance.SCHEDULED}),
    Attendance.CANCELLED_BY_PRACTITIONER: frozenset({Attendance.SCHEDULED}),
    Attendance.MOVED: frozenset(),
}


async def do_book_with_options(
    actor: Caller | None,
    *,
    alert_earlier: bool = False,
    confirm_sms: bool = False,
    sms_template: SmsTemplate | None = None,
    practitioner: StaffUser,
    client: Client,
    service: Service,
    starts_at: datetime,
    location: Location | None = None,
) -> Appointment:
    """The agenda's booking dialog: book and, in the same transaction, put the appointment on
    the earlier-slot waiting list and schedule its SMS confirmation. All or nothing: a refused
    option (422 on ``alert_earlier`` or ``confirm_sms``) books nothing."""
    if confirm_sms:
        await reminders.check_can_confirm(client)
    async with atomic():
        appointment, booked = await do_book_or_find(
            actor,
            practitioner=practitioner,
            client=client,
            service=service,
            starts_at=starts_at,
            location=location,
        )
        if not booked:
            # A second click on the same group booking: its options went with the first.
            return appointment
        if alert_earlier:
            await offers.do_set_earlier_alert(actor, appointment, True)
        if confirm_sms:
            await reminders.schedule_confirmation(appointment, sms_template)
    return appointment


async def do_set_attendance(
    actor: Caller | None, appointment: Appointment, attendance: Attendance
) -> Appointment:
    if attendance == appointment.attendance:
        return appointment
    if attendance not in TRANSITIONS[appointment.attendance]:
        raise Conflict(
            _("This attendance cannot follow the current one (%(now)s → %(then)s).")
            % {"now": appointment.attendance.value, "then": attendance.value}
        )
    async with atomic():
        if attendance in HOLDS_SLOT and appointment.attendance not in HOLDS_SLOT:
            # Back to scheduled: only if nobody took the freed slot meanwhile.
            practitioner = await StaffUser.get(id=appointment.practitioner_id)  # type: ignore[attr-defined]
            service = await Service.get(id=appointment.service_id)  # type: ignore[attr-defined]
            await StaffUser.filter(id=practitioner.id).select_for_update().first()
            await _check_free(
                practitioner,
                service,
                appointment.starts_at,
                appointment.ends_at,
                is_group=appointment.is_group,
                location_id=appointment.location_id,  # type: ignore[attr-defined]
                ignore=appointment.id,
                client_id=appointment.client_id,  # type: ignore[attr-defined]
            )
        before = appointment.attendance
        # Claimed from the state the caller saw: two changes of one appointment at once (two
        # moves, a move and the client's cancellation) must not both pass, the second
        # writing over the first.
        claimed = await Appointment.filter(id=appointment.id, attendance=before).update(
            attendance=attendance, updated_at=datetime.now(UTC)
        )
        if not claimed:
            raise Conflict(_("This appointment was changed meanwhile: reload to see it."))
        appointment.attendance = attendance
        await audit.record(
            actor,
            "appointment.attendance",
            object_type="appointment",
            object_id=appointment.id,
            client_id=appointment.client_id,  # type: ignore[attr-defined]
            detail={"from": before.value, "to": attendance.value},
        )
        await notify_appointment_changed(appointment)
        await offers.on_attendance_changed(actor, appointment, before)
        await reminders.sync_appointment(appointment)
    return appointment


async def do_move_appointment(
    actor: Caller | None, appointment: Appointment, starts_at: datetime
) -> Appointment:
    """Move to another date: the old one is marked moved (its slot is free again) and a new
    appointment holds the new time, so the file keeps both."""
    if appointment.attendance is not Attendance.SCHEDULED:
        raise Conflict(_("Only a scheduled appointment can be moved."))
    practitioner = await StaffUser.get(id=appointment.practitioner_id)  # type: ignore[attr-defined]
    async with atomic():
        new = await do_book_appointment(
            actor,
            practitioner=practitioner,
            client=await Client.get(id=appointment.client_id),  # type: ignore[attr-defined]
            service=await Service.get(id=appointment.service_id),  # type: ignore[attr-defined]
            starts_at=starts_at,
            location=await Location.get_or_none(id=appointment.location_id),  # type: ignore[attr-defined]
            replacing=appointment,
        )
        await Appointment.filter(id=new.id).update(moved_from_id=appointment.id)
        new.moved_from_id = appointment.id  # type: ignore[attr-defined]
        await do_set_attendance(actor, appointment, Attendance.MOVED)
        # A move within the old time (09:00 to 09:30) frees only what the new one leaves:
        # the freed slot it overlaps is taken at once, and never offered.
        await offers.slot_taken(new)
        await offers.on_appointment_moved(appointment, new)
        await reminders.on_moved(appointment, new)
    return new


async def do_delete_appointment(actor: Caller | None, appointment: Appointment) -> None:
    """Soft: the appointment leaves the agenda, its record and log stay. Not one with a
    session note: a removed session leaves the file's sessions and its export, and a
    clinical record must not leave with it (a session that did not take place is cancelled,
    which keeps it in the file)."""
    if appointment.deleted_at is not None:
        return
    async with atomic():
        # The row lock do_save_draft takes before it starts a note: no note starts meanwhile.
        locked = await Appointment.filter(id=appointment.id).select_for_update().first()
        if locked is None or locked.deleted_at is not None:
            return
        if await SessionNote.exists(appointment_id=appointment.id):
            raise Conflict(
                _(
                    "This session has a session note, and a clinical record must not vanish "
                    "from the file: mark the session as cancelled instead of deleting it."
                )
            )
        appointment.deleted_at = datetime.now(UTC)
        await appointment.save(update_fields=["deleted_at", "updated_at"])
        await audit.record(
            actor,
            "appointment.deleted",
            object_type="appointment",
            object_id=appointment.id,
            client_id=appointment.client_id,  # type: ignore[attr-defined]
        )
        await notify_appointment_changed(appointment)
        await reminders.sync_appointment(appointment)


# --- setup: categories, services, locations, availability, time off ----------------------------
# (Edits from the setup pages, /staff/setup and /api/setup. Handlers check who may call.)


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(_("Some fields are not valid."), {field: message})


async def do_create_category(
    actor: Caller | None, practice: Practice, *, name: str, color: str
) -> ServiceCategory:
    async with atomic():
        category = await ServiceCategory.create(practice=practice, name=_name(name), color=color)
        await audit.record(
            actor,
            "service_category.created",
            object_type="service_category",
            object_id=category.id,
            practice_id=practice.id,
        )
    return category


async def do_update_category(
    actor: Caller | None, category: ServiceCategory, *, name: str, color: str
) -> ServiceCategory:
    """Rename or recolour one of the practice's own categories (the built-in ones are fixed:
    their meaning drives how an appointment takes place)."""
    if category.builtin is not None:
        raise Conflict(_("The built-in categories cannot be changed."))
    async with atomic():
        category.name, category.color = _name(name), color
        await category.save(update_fields=["name", "color", "updated_at"])
        await audit.record(
            actor,
            "service_category.updated",
            object_type="service_category",
            object_id=category.id,
            practice_id=category.practice_id,  # type: ignore[attr-defined]
        )
    return category


async def do_update_service(
    actor: Caller | None,
    service: Service,
    *,
    name: str,
    duration_minutes: int,
    price: Decimal,
    category: ServiceCategory | None,
    is_active: bool,
) -> Service:
    """Change a service; ``is_active=False`` takes it out of new bookings (never deleted:
    past appointments keep pointing at it)."""
    if not 5 <= duration_minutes <= 24 * 60:
        raise _invalid("duration_minutes", _("Between 5 minutes and 24 hours."))
    was = await _category(service)
    kind = category.builtin if category is not None else None
    was_group = was is BuiltinCategory.GROUP
    if (kind is BuiltinCategory.GROUP) != was_group:
        await _check_group_change(service)
    elif was_group and duration_minutes != service.duration_minutes:
        await _check_group_length(service)
    if was in REMOTE and kind not in REMOTE:
        await _check_remote_change(service)
    async with atomic():
        service.name = _name(name)
        service.duration_minutes = duration_minutes
        service.price = price
        service.category = category  # type: ignore[assignment]
        service.is_active = is_active
        await service.save()
        await audit.record(
            actor,
            "service.updated",
            object_type="service",
            object_id=service.id,
            practice_id=service.practice_id,  # type: ignore[attr-defined]
            detail={"is_active": is_active},
        )
    return service


async def _check_group_change(service: Service) -> None:
    """Refuse to move a service into or out of the Group category while hours offer it or
    sessions are booked: a group service is booked into group slots only (that is where its
    capacity is), so the hours would offer a service nobody can book, or a group slot would
    take one client where it took several, and its booked sessions would collide."""
    in_hours = await Availability.exists(services__id=service.id, deleted_at=None)
    booked = await Appointment.exists(
        service_id=service.id,
        deleted_at=None,
        attendance=Attendance.SCHEDULED,
        starts_at__gt=datetime.now(UTC),
    )
    if in_hours or booked:
        raise _invalid(
            "category_id",
            _(
                "Hours or upcoming sessions use this service: to make it a group service or "
                "no longer one, add a new service instead."
            ),
        )


async def _check_remote_change(service: Service) -> None:
    """Refuse to make a teleconsultation or home visit a session at the practice while hours
    without a location offer it: they would show slots no booking can take (a session at
    the practice needs a location)."""
    if await Availability.exists(services__id=service.id, deleted_at=None, location_id=None):
        raise _invalid(
            "category_id",
            _(
                "Hours without a location offer this service: give them a location, or "
                "take the service out of them, first."
            ),
        )


async def _check_group_length(service: Service) -> None:
    """Refuse a new length for a group service with upcoming sessions: clients join a group
    session that has the same start and end, so at the new length the sessions already
    booked would take nobody more (the slot shows as taken, a booking collides)."""
    if await Appointment.exists(
        service_id=service.id,
        deleted_at=None,
        is_group=True,
        attendance=Attendance.SCHEDULED,
        starts_at__gt=datetime.now(UTC),
    ):
        raise _invalid(
            "duration_minutes",
            _(
                "Group sessions of this service are booked at its current length: for a "
                "new length, add a new service."
            ),
        )


async def do_update_location(
    actor: Caller | None, location: Location, *, name: str, address: str, is_active: bool
) -> Location:
    """Change a location; deactivated, it is offered no more (past appointments keep it)."""
    async with atomic():
        location.name, location.address, location.is_active = _name(name), address, is_active
        await location.save(update_fields=["name", "address", "is_active", "updated_at"])
        await audit.record(
            actor,
            "location.updated",
            object_type="location",
            object_id=location.id,
            practice_id=location.practice_id,  # type: ignore[attr-defined]
            detail={"is_active": is_active},
        )
    return location


async def _lock_practitioner(practitioner_id: int) -> None:
    """Take the practitioner's row lock, which every booking takes first: closing hours
    (time off, hours changed or removed) then never interleaves with a booking that checks
    them under the lock. Take it before any other row lock, as bookings do. (SQLite runs one
    write transaction at a time.)"""
    await StaffUser.filter(id=practitioner_id).select_for_update().first()


async def _practice_of(practitioner_id: int) -> int:
    practitioner = await StaffUser.get(id=practitioner_id)
    return practitioner.practice_id  # type: ignore[attr-defined,no-any-return]


async def do_update_availability(
    actor: Caller | None,
    availability: Availability,
    *,
    services: Sequence[Service],
    start_time: time,
    end_time: time,
    weekday: int | None = None,
    on_date: date | None = None,
    location: Location | None = None,
    valid_from: date | None = None,
    valid_until: date | None = None,
    is_group_slot: bool = False,
    capacity: int = 1,
) -> Availability:
    """Replace an availability's hours and services. Appointments already booked stay."""
    if (weekday is None) == (on_date is None):
        raise _invalid("weekday", _("Choose a weekday or a date."))
    if end_time <= start_time:
        raise _invalid("end_time", _("The end comes after the start."))
    if is_group_slot and capacity < 2:
        raise _invalid("capacity", _("A group slot has room for at least two people."))
    async with atomic():
        await _lock_practitioner(availability.practitioner_id)  # type: ignore[attr-defined]
        await notify_hours_changed(availability.practitioner_id)  # type: ignore[attr-defined]
        availability.location = location  # type: ignore[assignment]
        availability.weekday = weekday
        availability.on_date = on_date
        availability.start_minute = start_time.hour * 60 + start_time.minute
        availability.end_minute = end_time.hour * 60 + end_time.minute
        availability.valid_from = valid_from
        availability.valid_until = valid_until
        availability.is_group_slot = is_group_slot
        availability.capacity = capacity if is_group_slot else 1
        await availability.save()
        await availability.services.clear()
        await availability.services.add(*services)
        await audit.record(
            actor,
            "availability.updated",
            object_type="availability",
            object_id=availability.id,
            practice_id=await _practice_of(availability.practitioner_id),  # type: ignore[attr-defined]
        )
    return availability


async def do_remove_availability(actor: Caller | None, availability: Availability) -> None:
    """Soft: the hours stop being offered; the row stays for the record."""
    if availability.deleted_at is not None:
        return
    async with atomic():
        await _lock_practitioner(availability.practitioner_id)  # type: ignore[attr-defined]
        await notify_hours_changed(availability.practitioner_id)  # type: ignore[attr-defined]
        availability.deleted_at = datetime.now(UTC)
        await availability.save(update_fields=["deleted_at", "updated_at"])
        await audit.record(
            actor,
            "availability.removed",
            object_type="availability",
            object_id=availability.id,
            practice_id=await _practice_of(availability.practitioner_id),  # type: ignore[attr-defined]
        )


def _check_time_off(starts_at: datetime, ends_at: datetime) -> None:
    if ends_at <= starts_at:
        raise _invalid("ends_at", _("The end comes after the start."))


async def do_add_time_off(
    actor: Caller | None,
    practitioner: StaffUser,
    *,
    starts_at: datetime,
    ends_at: datetime,
    reason: str = "",
) -> TimeOff:
    """Close a practitioner's hours between two aware datetimes (stored in UTC).
    Appointments already booked in that time stay: the agenda shows them as they are; freed
    slots in it are offered no more."""
    _check_time_off(starts_at, ends_at)
    async with atomic():
        await _lock_practitioner(practitioner.id)
        await notify_hours_changed(practitioner.id)
        time_off = await TimeOff.create(
            practitioner=practitioner,
            starts_at=starts_at.astimezone(UTC),
            ends_at=ends_at.astimezone(UTC),
            reason=reason.strip(),
        )
        await offers.on_time_off(time_off)
        await audit.record(
            actor,
            "time_off.added",
            object_type="time_off",
            object_id=time_off.id,
            practice_id=practitioner.practice_id,  # type: ignore[attr-defined]
        )
    return time_off


async def do_update_time_off(
    actor: Caller | None, time_off: TimeOff, *, starts_at: datetime, ends_at: datetime, reason: str
) -> TimeOff:
    _check_time_off(starts_at, ends_at)
    async with atomic():
        await _lock_practitioner(time_off.practitioner_id)  # type: ignore[attr-defined]
        await notify_hours_changed(time_off.practitioner_id)  # type: ignore[attr-defined]
        was = (time_off.starts_at, time_off.ends_at)
        time_off.starts_at = starts_at.astimezone(UTC)
        time_off.ends_at = ends_at.astimezone(UTC)
        time_off.reason = reason.strip()
        await time_off.save(update_fields=["starts_at", "ends_at", "reason", "updated_at"])
        await offers.on_time_off(time_off)
        await offers.reopen_slots(time_off.practitioner_id, *was)  # type: ignore[attr-defined]
        await audit.record(
            actor,
            "time_off.updated",
            object_type="time_off",
            object_id=time_off.id,
            practice_id=await _practice_of(time_off.practitioner_id),  # type: ignore[attr-defined]
        )
    return time_off


async def do_remove_time_off(actor: Caller | None, time_off: TimeOff) -> None:
    """Time off has no history worth keeping beyond the audit entry: the row goes."""
    async with atomic():
        await _lock_practitioner(time_off.practitioner_id)  # type: ignore[attr-defined]
        await notify_hours_changed(time_off.practitioner_id)  # type: ignore[attr-defined]
        await audit.record(
            actor,
            "time_off.removed",
            object_type="time_off",
            object_id=time_off.id,
            practice_id=await _practice_of(time_off.practitioner_id),  # type: ignore[attr-defined]
            detail={
                "starts_at": time_off.starts_at.isoformat(),
                "ends_at": time_off.ends_at.isoformat(),
            },
        )
        await time_off.delete()
        await offers.reopen_slots(
            time_off.practitioner_id,  # type: ignore[attr-defined]
            time_off.starts_at,
            time_off.ends_at,
        )
