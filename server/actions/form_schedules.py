"""Forms sent on a schedule, like measures (server/actions/measures.py): now and again every
N weeks, or a set time before each of the client's sessions.

The rules are the measures' ones and their helpers are reused: the same choices
(check_schedule), the same claim of a periodic schedule by moving its ``next_due_at`` with a
conditional update, the same unique (schedule, appointment) key for "before each session",
the same way of telling a moved session from a new one (moved_from), and the same withdrawal
of what was sent before a session that was then cancelled, as long as the client has not
started it (no draft saved) or submitted it. Each send takes the form's latest version.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError

from models.agenda import Appointment, Attendance
from models.clients import Client, ClientStatus
from models.forms import FormAssignment, FormSchedule, FormStatus, FormTemplate
from server.actions import audit
from server.actions.forms import check_sendable, send_form_now
from server.actions.measures import CALLED_OFF, check_schedule, moved_from
from server.auth.sessions import Caller
from server.db import atomic

log = logging.getLogger(__name__)


async def do_schedule_form(
    actor: Caller,
    client: Client,
    template: FormTemplate,
    *,
    every_weeks: int | None = None,
    hours_before: int | None = None,
) -> tuple[FormAssignment | None, FormSchedule]:
    """Send the form now and again every ``every_weeks`` weeks; or, with ``hours_before``,
    before each upcoming session (the first one goes when the next session is that close)."""
    assert actor.staff is not None
    check_schedule(every_weeks, hours_before)
    if every_weeks is None and hours_before is None:
        raise ValueError("a schedule needs every_weeks or hours_before")
    await check_sendable(template, client)
    now = datetime.now(UTC)
    async with atomic():
        schedule = await FormSchedule.create(
            practice_id=client.practice_id,  # type: ignore[attr-defined]
            client=client,
            template=template,
            every_weeks=every_weeks,
            next_due_at=now + timedelta(weeks=every_weeks) if every_weeks else None,
            hours_before=hours_before,
            created_by=actor.staff,
        )
        await audit.record(
            actor,
            "form.scheduled",
            object_type="form_schedule",
            object_id=schedule.id,
            client_id=client.id,
            detail={
                "template_id": template.id,
                "every_weeks": every_weeks,
                "hours_before": hours_before,
            },
        )
        assignment = None
        if every_weeks is not None:
            assignment = await send_form_now(
                actor, client, template, sent_by=actor.staff, schedule=schedule
            )
        else:
            await _send_before_sessions(schedule, client, template, now)
    return assignment, schedule


async def do_stop_form_schedule(actor: Caller, schedule: FormSchedule) -> None:
    if schedule.stopped_at is not None:
        return
    async with atomic():
        schedule.stopped_at = datetime.now(UTC)
        await schedule.save(update_fields=["stopped_at", "updated_at"])
        await audit.record(
            actor,
            "form.schedule_stopped",
            object_type="form_schedule",
            object_id=schedule.id,
            client_id=schedule.client_id,  # type: ignore[attr-defined]
        )


async def _already_asked(schedule: FormSchedule, appointment: Appointment) -> bool:
    """Whether this session, under an earlier date it was moved from, already had its form;
    a waiting one follows the session to its new date."""
    earlier: Appointment | None = appointment
    for _step in range(20):
        earlier = await moved_from(earlier)  # type: ignore[arg-type]
        if earlier is None:
            return False
        sent = await FormAssignment.get_or_none(schedule_id=schedule.id, appointment_id=earlier.id)
        if sent is not None:
            if sent.status is FormStatus.SENT:
                await FormAssignment.filter(id=sent.id).update(
                    appointment_id=appointment.id, updated_at=datetime.now(UTC)
                )
            return True
    return False


async def _send_before_sessions(
    schedule: FormSchedule, client: Client, template: FormTemplate, now: datetime
) -> int:
    """One assignment per upcoming session now within ``hours_before``. Call inside
    atomic(); the (schedule, appointment) key makes a second worker's attempt fail."""
    assert schedule.hours_before is not None
    appointments = await Appointment.filter(
        client_id=client.id,
        deleted_at=None,
        attendance=Attendance.SCHEDULED,
        starts_at__gt=now,
        starts_at__lte=now + timedelta(hours=schedule.hours_before),
    ).order_by("starts_at")
    if not appointments:
        return 0
    done = set(
        await FormAssignment.filter(
            schedule_id=schedule.id, appointment_id__in=[a.id for a in appointments]
        ).values_list("appointment_id", flat=True)
    )
    sent = 0
    for appointment in appointments:
        if appointment.id in done or await _already_asked(schedule, appointment):
            continue
        if await send_form_now(
            None, client, template, sent_by=None, schedule=schedule, appointment=appointment
        ):
            sent += 1
    return sent


async def _sendable(schedule: FormSchedule) -> tuple[Client, FormTemplate] | None:
    client = await Client.get_or_none(id=schedule.client_id, deleted_at=None)  # type: ignore[attr-defined]
    template = await FormTemplate.get(id=schedule.template_id)  # type: ignore[attr-defined]
    if client is None or client.status is ClientStatus.ARCHIVED:
        return None
    if template.archived_at is not None:
        return None
    return client, template


async def send_due_forms(now: datetime | None = None) -> int:
    """The worker's tick for forms, as send_due_measures() is for measures: idempotent and
    safe with several workers. Returns how many forms were sent."""
    now = now or datetime.now(UTC)
    sent = 0
    due = await FormSchedule.filter(stopped_at=None, next_due_at__lte=now).order_by("id")
    for schedule in due:
        assert schedule.every_weeks is not None and schedule.next_due_at is not None
        step = timedelta(weeks=schedule.every_weeks)
        following = schedule.next_due_at + step
        while following <= now:  # a worker down for a month sends one, not four
            following += step
        target = await _sendable(schedule)
        async with atomic():
            claimed = await FormSchedule.filter(
                id=schedule.id, next_due_at=schedule.next_due_at, stopped_at=None
            ).update(next_due_at=following, updated_at=now)
            if not claimed or target is None:
                continue
            if await send_form_now(None, *target, sent_by=None, schedule=schedule):
                sent += 1
    for schedule in await FormSchedule.filter(stopped_at=None, hours_before__not_isnull=True):
        target = await _sendable(schedule)
        if target is None:
            continue
        try:
            async with atomic():
                sent += await _send_before_sessions(schedule, *target, now)
        except IntegrityError:
            log.info("form schedule %s: another worker sent it", schedule.id)
    await withdraw_for_called_off_sessions()
    return sent


async def withdraw_for_called_off_sessions() -> int:
    """Withdraw the forms sent before a session that was then cancelled (or deleted), which
    the client has neither started (no draft) nor submitted. Returns how many."""
    waiting = await FormAssignment.filter(
        status=FormStatus.SENT,
        draft_saved_at=None,
        schedule__hours_before__not_isnull=True,
        appointment_id__not_isnull=True,
    ).prefetch_related("appointment")
    withdrawn = 0
    for assignment in waiting:
        session: Appointment = assignment.appointment  # type: ignore[assignment]
        if session.deleted_at is None and session.attendance not in CALLED_OFF:
            continue
        async with atomic():
            updated = await FormAssignment.filter(
                id=assignment.id, status=FormStatus.SENT, draft_saved_at=None
            ).update(status=FormStatus.CANCELLED, updated_at=datetime.now(UTC))
            if not updated:
                continue  # started or submitted meanwhile: it stays
            await audit.record(
                None,
                "form.cancelled",
                object_type="form_assignment",
                object_id=assignment.id,
                client_id=assignment.client_id,  # type: ignore[attr-defined]
                detail={"reason": "session_cancelled", "appointment_id": session.id},
            )
            withdrawn += 1
    return withdrawn
