"""Outcome measures: send (once or on a schedule), complete (client on the portal, or staff
with the client in a session), remind, cancel, stop a schedule; the worker's tick that sends
what schedules have due.

A completed administration is fixed: its answers, score and band never change. A PHQ-9 with
item 9 above "not at all" is a safety alert: in the same transaction as the answers, a task
for the therapist, a notification email and a live ``measure.alert`` event, so the alert
exists exactly when the answers do.

Emails never name the questionnaire or the score: an inbox is not a health record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from models.accounts import PortalAccount, Practice, StaffRole, StaffUser
from models.agenda import Appointment, Attendance
from models.clients import Client, ClientStatus
from models.measures import (
    AdministrationStatus,
    MeasureAdministration,
    MeasureKind,
    MeasureSchedule,
)
from models.tasks import Task
from realtime.events import client_recipient, emit, staff_recipient
from server import i18n
from server.actions import audit
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import Conflict, ValidationFailed
from server.i18n import gettext as _
from server.instruments import Instrument, instrument, score
from server.mail import queue_email
from server.settings import get_settings

log = logging.getLogger("cabinet.measures")

MAX_EVERY_WEEKS = 52
MAX_HOURS_BEFORE = 14 * 24


@contextmanager
def writing_in(locale: str | None) -> Iterator[None]:
    """Write an email in its reader's language, whatever the request's."""
    previous = i18n.current_locale()
    i18n.set_locale(locale or previous)
    try:
        yield
    finally:
        i18n.set_locale(previous)


def absolute_url(path: str) -> str:
    return get_settings().public_url.rstrip("/") + path


async def clinicians_to_tell(client: Client, practice: Practice) -> list[StaffUser]:
    """Who hears of a completed measure or an alert: the client's therapist; with no
    therapist (or an inactive one), the practice's owners, so an alert is never unheard."""
    therapist = await StaffUser.get_or_none(id=client.therapist_id, is_active=True)  # type: ignore[attr-defined]
    if therapist is not None:
        return [therapist]
    return await StaffUser.filter(
        practice_id=practice.id, role=StaffRole.OWNER, is_active=True
    ).order_by("id")


# --- sending ---------------------------------------------------------------------------------


async def _send(
    actor: Caller | None,
    client: Client,
    kind: MeasureKind,
    *,
    sent_by: StaffUser | None,
    schedule: MeasureSchedule | None = None,
    appointment: Appointment | None = None,
) -> MeasureAdministration:
    """Create one administration and tell the client (email with a sign-in link, and their
    open portal tabs). Call inside atomic()."""
    administration = await MeasureAdministration.create(
        practice_id=client.practice_id,  # type: ignore[attr-defined]
        client=client,
        measure=kind,
        sent_by=sent_by,
        schedule=schedule,
        appointment=appointment,
    )
    account = await PortalAccount.get_or_none(client_id=client.id, is_active=True)
    if account is not None:
        practice = await Practice.get(id=client.practice_id)  # type: ignore[attr-defined]
        with writing_in(account.locale or practice.locale):
            await queue_email(
                account.email,
                _("A questionnaire is waiting for you"),
                _(
                    "%(practice)s asks you to fill in a short questionnaire on your portal. "
                    "Sign in to answer it:\n%(link)s"
                )
                % {
                    "practice": practice.name,
                    "link": absolute_url(f"/portal/measures/{administration.id}"),
                },
                purpose="measure_sent",
                client_id=client.id,
                practice_id=practice.id,
            )
        await emit(
            [client_recipient(account.id)],
            "measure.sent",
            {"id": administration.id, "measure": kind.value},
        )
    await audit.record(
        actor,
        "measure.sent",
        object_type="measure_administration",
        object_id=administration.id,
        client_id=client.id,
        practice_id=administration.practice_id,  # type: ignore[attr-defined]
        detail={
            "measure": kind.value,
            "schedule_id": schedule.id if schedule else None,
            "appointment_id": appointment.id if appointment else None,
        },
    )
    return administration


def check_schedule(every_weeks: int | None, hours_before: int | None) -> None:
    if every_weeks is not None and hours_before is not None:
        raise ValidationFailed(
            _("Choose one way of repeating."), {"repeat": _("Choose one way of repeating.")}
        )
    if every_weeks is not None and not 1 <= every_weeks <= MAX_EVERY_WEEKS:
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"every_weeks": _("Between 1 and %(num)s weeks.") % {"num": MAX_EVERY_WEEKS}},
        )
    if hours_before is not None and not 1 <= hours_before <= MAX_HOURS_BEFORE:
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"hours_before": _("Between 1 and %(num)s hours.") % {"num": MAX_HOURS_BEFORE}},
        )


async def do_send_measure(
    actor: Caller,
    client: Client,
    kind: MeasureKind,
    *,
    every_weeks: int | None = None,
    hours_before: int | None = None,
) -> tuple[MeasureAdministration | None, MeasureSchedule | None]:
    """Send a measure to the client's portal now, and again every ``every_weeks`` weeks; or,
    with ``hours_before``, before each of their upcoming sessions (the first one goes when
    the next session is that close). The client needs an active portal account."""
    assert actor.staff is not None
    check_schedule(every_weeks, hours_before)
    if not await PortalAccount.filter(client_id=client.id, is_active=True).exists():
        raise ValidationFailed(
            _("This client has no portal account: fill the measure in with them instead."),
            {"measure": _("The client has no portal account.")},
        )
    now = datetime.now(UTC)
    async with atomic():
        schedule = None
        if every_weeks is not None or hours_before is not None:
            schedule = await MeasureSchedule.create(
                practice_id=client.practice_id,  # type: ignore[attr-defined]
                client=client,
                measure=kind,
                every_weeks=every_weeks,
                next_due_at=now + timedelta(weeks=every_weeks) if every_weeks else None,
                hours_before=hours_before,
                created_by=actor.staff,
            )
            await audit.record(
                actor,
                "measure.scheduled",
                object_type="measure_schedule",
                object_id=schedule.id,
                client_id=client.id,
                detail={
                    "measure": kind.value,
                    "every_weeks": every_weeks,
                    "hours_before": hours_before,
                },
            )
        administration = None
        if hours_before is None:
            administration = await _send(
                actor, client, kind, sent_by=actor.staff, schedule=schedule
            )
        else:
            # The session may already be within reach: send for it at once.
            await _send_before_sessions(schedule, client, now)  # type: ignore[arg-type]
    return administration, schedule


async def do_stop_schedule(actor: Caller, schedule: MeasureSchedule) -> None:
    if schedule.stopped_at is not None:
        return
    async with atomic():
        schedule.stopped_at = datetime.now(UTC)
        await schedule.save(update_fields=["stopped_at", "updated_at"])
        await audit.record(
            actor,
            "measure.schedule_stopped",
            object_type="measure_schedule",
            object_id=schedule.id,
            client_id=schedule.client_id,  # type: ignore[attr-defined]
        )


async def do_cancel_administration(actor: Caller, administration: MeasureAdministration) -> None:
    """Withdraw a measure the client has not answered yet (gone from their portal)."""
    if administration.status is AdministrationStatus.CANCELLED:
        return
    if administration.status is not AdministrationStatus.SENT:
        raise Conflict(_("This questionnaire was already answered."))
    async with atomic():
        updated = await MeasureAdministration.filter(
            id=administration.id, status=AdministrationStatus.SENT
        ).update(status=AdministrationStatus.CANCELLED, updated_at=datetime.now(UTC))
        if not updated:
            raise Conflict(_("This questionnaire was already answered."))
        administration.status = AdministrationStatus.CANCELLED
        await audit.record(
            actor,
            "measure.cancelled",
            object_type="measure_administration",
            object_id=administration.id,
            client_id=administration.client_id,  # type: ignore[attr-defined]
        )


async def do_remind(actor: Caller, administration: MeasureAdministration) -> None:
    """Email the client again about a questionnaire still waiting."""
    if administration.status is not AdministrationStatus.SENT:
        raise Conflict(_("Only a questionnaire still waiting can be reminded."))
    account = await PortalAccount.get_or_none(
        client_id=administration.client_id,  # type: ignore[attr-defined]
        is_active=True,
    )
    if account is None:
        raise Conflict(_("This client has no portal account."))
    practice = await Practice.get(id=administration.practice_id)  # type: ignore[attr-defined]
    async with atomic():
        administration.reminded_at = datetime.now(UTC)
        await administration.save(update_fields=["reminded_at", "updated_at"])
        with writing_in(account.locale or practice.locale):
            await queue_email(
                account.email,
                _("Reminder: a questionnaire is waiting for you"),
                _(
                    "%(practice)s is still waiting for your answers to a short questionnaire. "
                    "Sign in to answer it:\n%(link)s"
                )
                % {
                    "practice": practice.name,
                    "link": absolute_url(f"/portal/measures/{administration.id}"),
                },
                purpose="measure_reminder",
                client_id=administration.client_id,  # type: ignore[attr-defined]
                practice_id=practice.id,
            )
        await audit.record(
            actor,
            "measure.reminded",
            object_type="measure_administration",
            object_id=administration.id,
            client_id=administration.client_id,  # type: ignore[attr-defined]
        )


# --- completing ------------------------------------------------------------------------------


async def do_complete_measure(
    actor: Caller, administration: MeasureAdministration, values: dict[str, Any]
) -> MeasureAdministration:
    """Record the answers of a measure waiting for them, by the client on the portal or by
    staff with the client. Answered once: a second submission is a Conflict."""
    inst = instrument(administration.measure)
    scored = score(inst, values)
    if administration.status is not AdministrationStatus.SENT:
        raise Conflict(_("This questionnaire was already answered."))
    client = await Client.get(id=administration.client_id)  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    async with atomic():
        # Claimed by a conditional update: two tabs submitting at once store one answer.
        updated = await MeasureAdministration.filter(
            id=administration.id, status=AdministrationStatus.SENT
        ).update(
            status=AdministrationStatus.COMPLETED,
            answers=scored.answers,
            score=scored.score,
            band=scored.band.key,
            safety_alert=scored.safety_alert,
            completed_at=now,
            filled_by_id=actor.staff.id if actor.staff else None,
            updated_at=now,
        )
        if not updated:
            raise Conflict(_("This questionnaire was already answered."))
        await administration.refresh_from_db()
        await _completed(actor, administration, client, inst)
    return administration


async def do_record_in_session(
    actor: Caller, client: Client, kind: MeasureKind, values: dict[str, Any]
) -> MeasureAdministration:
    """Staff fill a measure in with the client, in a session: sent and answered at once."""
    assert actor.staff is not None
    inst = instrument(kind)
    scored = score(inst, values)
    now = datetime.now(UTC)
    async with atomic():
        administration = await MeasureAdministration.create(
            practice_id=client.practice_id,  # type: ignore[attr-defined]
            client=client,
            measure=kind,
            status=AdministrationStatus.COMPLETED,
            sent_by=actor.staff,
            filled_by=actor.staff,
            answers=scored.answers,
            score=scored.score,
            band=scored.band.key,
            safety_alert=scored.safety_alert,
            completed_at=now,
        )
        await _completed(actor, administration, client, inst)
    return administration


async def _completed(
    actor: Caller, administration: MeasureAdministration, client: Client, inst: Instrument
) -> None:
    practice = await Practice.get(id=client.practice_id)  # type: ignore[attr-defined]
    clinicians = await clinicians_to_tell(client, practice)
    await audit.record(
        actor,
        "measure.completed",
        object_type="measure_administration",
        object_id=administration.id,
        client_id=client.id,
        practice_id=practice.id,
        detail={"measure": inst.kind.value, "in_session": administration.filled_by_id is not None},  # type: ignore[attr-defined]
    )
    # Whoever sent it hears too, if they may read scores (the front desk only if allowed).
    listeners = {s.id: s for s in clinicians}
    sender = await StaffUser.get_or_none(id=administration.sent_by_id, is_active=True)  # type: ignore[attr-defined]
    if sender is not None and (
        sender.role is not StaffRole.OFFICE_ADMIN or practice.office_admins_see_clinical
    ):
        listeners.setdefault(sender.id, sender)
    payload = {
        "id": administration.id,
        "client_id": client.id,
        "client_name": client.full_name,
        "measure": inst.kind.value,
        "measure_name": inst.name,
        "score": administration.score,
        "max_score": inst.max_score,
        "band": administration.band,
        "safety_alert": administration.safety_alert,
        "in_session": administration.filled_by_id is not None,  # type: ignore[attr-defined]
    }
    await emit([staff_recipient(i) for i in listeners], "measure.completed", payload)
    if administration.safety_alert:
        await _raise_alert(actor, administration, client, practice, clinicians, payload)


async def _raise_alert(
    actor: Caller,
    administration: MeasureAdministration,
    client: Client,
    practice: Practice,
    clinicians: list[StaffUser],
    payload: dict[str, Any],
) -> None:
    """Item 9 answered above "not at all": a task due today, an email, a live alert."""
    answer = administration.answers["9"]  # type: ignore[index]
    for clinician in clinicians:
        with writing_in(clinician.locale or practice.locale):
            note = _(
                "Safety: PHQ-9 item 9 (thoughts of self-harm) answered “%(answer)s”. "
                "Contact the client and assess the risk."
            ) % {"answer": str(instrument(MeasureKind.PHQ9).choices[answer])}
            task = await Task.create(
                practice_id=practice.id,
                client=client,
                note=note,
                assignee=clinician,
                due_date=datetime.now(i18n.current_time_zone()).date(),
            )
            await queue_email(
                clinician.email,
                _("Safety alert: a client needs your attention"),
                _(
                    "A questionnaire one of your clients just answered suggests they may be at "
                    "risk. A task was added to your list. Open the client's file:\n%(link)s"
                )
                % {"link": absolute_url(f"/staff/clients/{client.id}/measures")},
                purpose="measure_alert",
                client_id=client.id,
                practice_id=practice.id,
            )
        await audit.record(
            actor,
            "measure.alert",
            object_type="measure_administration",
            object_id=administration.id,
            client_id=client.id,
            practice_id=practice.id,
            detail={"task_id": task.id, "staff_id": clinician.id},
        )
    await emit(
        [staff_recipient(s.id) for s in clinicians],
        "measure.alert",
        {**payload, "task": True},
    )


# --- schedules: the worker's tick ------------------------------------------------------------


# How long after a moved appointment's replacement was booked the old one is marked moved
# (server/actions/agenda.py do_move_appointment does both in one transaction).
MOVE_WINDOW = timedelta(seconds=60)
# A session that will not happen: a questionnaire sent before it is withdrawn.
CALLED_OFF = (Attendance.CANCELLED_BY_CLIENT, Attendance.CANCELLED_BY_PRACTITIONER)


async def moved_from(appointment: Appointment) -> Appointment | None:
    """The appointment this one replaced when it was moved, if any.

    A move records the link (``moved_from``). Appointments moved before the link existed are
    told by the data: a move books the new appointment and marks the old one MOVED in the same
    transaction, for the same client, practitioner and service, so the predecessor is the
    MOVED one of theirs marked within MOVE_WINDOW after this was booked.
    """
    if appointment.moved_from_id is not None:  # type: ignore[attr-defined]
        return await Appointment.get_or_none(id=appointment.moved_from_id)  # type: ignore[attr-defined]
    return (
        await Appointment.filter(
            client_id=appointment.client_id,  # type: ignore[attr-defined]
            practitioner_id=appointment.practitioner_id,  # type: ignore[attr-defined]
            service_id=appointment.service_id,  # type: ignore[attr-defined]
            attendance=Attendance.MOVED,
            updated_at__gte=appointment.created_at,
            updated_at__lte=appointment.created_at + MOVE_WINDOW,
        )
        .exclude(id=appointment.id)
        .order_by("updated_at")
        .first()
    )


async def _already_asked(schedule: MeasureSchedule, appointment: Appointment) -> bool:
    """Whether this session, under an earlier date it was moved from, already had its
    questionnaire. A waiting one follows the session to its new date, so that cancelling
    the moved session withdraws it."""
    earlier: Appointment | None = appointment
    for _step in range(20):  # a session moved again and again; bounded all the same
        earlier = await moved_from(earlier)  # type: ignore[arg-type]
        if earlier is None:
            return False
        sent = await MeasureAdministration.get_or_none(
            schedule_id=schedule.id, appointment_id=earlier.id
        )
        if sent is not None:
            if sent.status is AdministrationStatus.SENT:
                await MeasureAdministration.filter(id=sent.id).update(
                    appointment_id=appointment.id, updated_at=datetime.now(UTC)
                )
            return True
    return False


async def withdraw_for_called_off_sessions() -> int:
    """Withdraw the questionnaires sent before a session that was then cancelled (or
    deleted), which the client has not answered: don't ask about a session that will not
    happen. Answered ones stay. Returns how many were withdrawn."""
    waiting = await MeasureAdministration.filter(
        status=AdministrationStatus.SENT,
        schedule__hours_before__not_isnull=True,
        appointment_id__not_isnull=True,
    ).prefetch_related("appointment")
    withdrawn = 0
    for administration in waiting:
        session: Appointment = administration.appointment  # type: ignore[assignment]
        if session.deleted_at is None and session.attendance not in CALLED_OFF:
            continue
        async with atomic():
            updated = await MeasureAdministration.filter(
                id=administration.id, status=AdministrationStatus.SENT
            ).update(status=AdministrationStatus.CANCELLED, updated_at=datetime.now(UTC))
            if not updated:
                continue  # answered meanwhile: it stays
            await audit.record(
                None,
                "measure.cancelled",
                object_type="measure_administration",
                object_id=administration.id,
                client_id=administration.client_id,  # type: ignore[attr-defined]
                detail={"reason": "session_cancelled", "appointment_id": session.id},
            )
            withdrawn += 1
    return withdrawn


async def _send_before_sessions(schedule: MeasureSchedule, client: Client, now: datetime) -> int:
    """For a "before every session" schedule: one administration per upcoming appointment
    that is now within ``hours_before``. Call inside atomic(). The (schedule, appointment)
    unique key makes a second worker's attempt fail instead of sending twice."""
    assert schedule.hours_before is not None
    horizon = now + timedelta(hours=schedule.hours_before)
    appointments = await Appointment.filter(
        client_id=client.id,
        deleted_at=None,
        attendance=Attendance.SCHEDULED,
        starts_at__gt=now,
        starts_at__lte=horizon,
    ).order_by("starts_at")
    if not appointments:
        return 0
    done = set(
        await MeasureAdministration.filter(
            schedule_id=schedule.id, appointment_id__in=[a.id for a in appointments]
        ).values_list("appointment_id", flat=True)
    )
    sent = 0
    for appointment in appointments:
        if appointment.id in done or await _already_asked(schedule, appointment):
            continue
        await _send(
            None,
            client,
            schedule.measure,
            sent_by=None,
            schedule=schedule,
            appointment=appointment,
        )
        sent += 1
    return sent


async def send_due_measures(now: datetime | None = None) -> int:
    """The worker's tick: send what every running schedule has due. Idempotent and safe with
    several workers: a periodic schedule is claimed by moving its ``next_due_at`` with a
    conditional update (only one worker's update matches); a before-session one relies on
    the unique (schedule, appointment) key. Returns how many administrations were sent."""
    now = now or datetime.now(UTC)
    sent = 0
    due = await MeasureSchedule.filter(stopped_at=None, next_due_at__lte=now).order_by("id")
    for schedule in due:
        assert schedule.every_weeks is not None and schedule.next_due_at is not None
        client = await Client.get_or_none(id=schedule.client_id, deleted_at=None)  # type: ignore[attr-defined]
        step = timedelta(weeks=schedule.every_weeks)
        following = schedule.next_due_at + step
        # A worker that was down for a month sends one, not four: catch up to the future.
        while following <= now:
            following += step
        async with atomic():
            claimed = await MeasureSchedule.filter(
                id=schedule.id, next_due_at=schedule.next_due_at, stopped_at=None
            ).update(next_due_at=following, updated_at=now)
            # An inactive client's schedule moves on without sending: nothing piles up.
            if not claimed or client is None or client.status is ClientStatus.ARCHIVED:
                continue
            if await PortalAccount.filter(client_id=client.id, is_active=True).exists():
                await _send(None, client, schedule.measure, sent_by=None, schedule=schedule)
                sent += 1
    before = await MeasureSchedule.filter(stopped_at=None, hours_before__not_isnull=True)
    for schedule in before:
        client = await Client.get_or_none(id=schedule.client_id, deleted_at=None)  # type: ignore[attr-defined]
        if client is None or client.status is ClientStatus.ARCHIVED:
            continue
        if not await PortalAccount.filter(client_id=client.id, is_active=True).exists():
            continue
        try:
            async with atomic():
                sent += await _send_before_sessions(schedule, client, now)
        except IntegrityError:
            # Another worker sent it first: nothing lost, nothing doubled.
            log.info("schedule %s: another worker sent it", schedule.id)
    await withdraw_for_called_off_sessions()
    return sent
