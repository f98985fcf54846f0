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
from datetime import UTC, datetime
from typing import Any

from models.accounts import PortalAccount, Practice, StaffUser
from models.agenda import Appointment
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
from server.access import may_hear_of
from server.actions import audit, schedules
from server.actions.client_requests import (
    absolute_url,
    clinicians_to_tell,
    email_client,
    remind_client,
)
from server.actions.retries import once_per_key
from server.actions.schedules import check_schedule
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import Conflict, ValidationFailed
from server.i18n import gettext as _
from server.i18n import lazy, writing_in
from server.instruments import Instrument, instrument, score
from server.mail import queue_email

log = logging.getLogger("cabinet.measures")

# --- sending ---------------------------------------------------------------------------------


async def _send(
    actor: Caller | None,
    client: Client,
    kind: MeasureKind,
    *,
    sent_by: StaffUser | None,
    schedule: MeasureSchedule | None = None,
    appointment: Appointment | None = None,
    request_key: str | None = None,
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
        request_key=request_key,
    )
    account = await PortalAccount.get_or_none(client_id=client.id, is_active=True)
    if account is not None:
        practice = await Practice.get(id=client.practice_id)  # type: ignore[attr-defined]
        await email_client(
            account,
            practice,
            subject=lazy("A questionnaire is waiting for you"),
            body=lazy(
                "%(practice)s asks you to fill in a short questionnaire on your portal. "
                "Sign in to answer it:\n%(link)s"
            ),
            path=f"/portal/measures/{administration.id}",
            purpose="measure_sent",
            client_id=client.id,
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


async def do_send_measure(
    actor: Caller,
    client: Client,
    kind: MeasureKind,
    *,
    every_weeks: int | None = None,
    hours_before: int | None = None,
    request_key: str = "",
) -> tuple[MeasureAdministration | None, MeasureSchedule | None]:
    """Send a measure to the client's portal now, and again every ``every_weeks`` weeks; or,
    with ``hours_before``, before each of their upcoming sessions (the first one goes when
    the next session is that close). The client needs an active portal account.

    ``request_key``: the "Send" form's own key, for a measure sent once: sent twice, it
    gives the one it sent (server/actions/retries.py). A schedule is one per measure and
    client (schedules.create_schedule). Call outside any transaction."""
    assert actor.staff is not None
    check_schedule(every_weeks, hours_before)
    if not await PortalAccount.filter(client_id=client.id, is_active=True).exists():
        raise ValidationFailed(
            _("This client has no portal account: fill the measure in with them instead."),
            {"measure": _("The client has no portal account.")},
        )
    if every_weeks is None and hours_before is None:

        async def write(key: str | None) -> MeasureAdministration:
            async with atomic():
                return await _send(actor, client, kind, sent_by=actor.staff, request_key=key)

        once = await once_per_key(MeasureAdministration, request_key, write, client_id=client.id)
        return once, None
    now = datetime.now(UTC)
    async with atomic():
        schedule = None
        if every_weeks is not None or hours_before is not None:
            schedule = await schedules.create_schedule(
                actor,
                MeasureSchedule,
                client,
                now,
                every_weeks=every_weeks,
                hours_before=hours_before,
                event="measure.scheduled",
                object_type="measure_schedule",
                sends={"measure": kind},
                named=instrument(kind).name,
                detail={"measure": kind.value},
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
    await schedules.stop_schedule(
        actor, schedule, event="measure.schedule_stopped", object_type="measure_schedule"
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
    await remind_client(
        actor,
        administration,
        subject=lazy("Reminder: a questionnaire is waiting for you"),
        body=lazy(
            "%(practice)s is still waiting for your answers to a short questionnaire. "
            "Sign in to answer it:\n%(link)s"
        ),
        path=f"/portal/measures/{administration.id}",
        purpose="measure_reminder",
        event="measure.reminded",
        object_type="measure_administration",
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
    actor: Caller,
    client: Client,
    kind: MeasureKind,
    values: dict[str, Any],
    *,
    request_key: str = "",
) -> MeasureAdministration:
    """Staff fill a measure in with the client, in a session: sent and answered at once.

    ``request_key``: the form's own key; the same form sent again gives the measure it
    recorded (server/actions/retries.py)."""
    assert actor.staff is not None
    staff = actor.staff
    inst = instrument(kind)
    scored = score(inst, values)

    async def write(key: str | None) -> MeasureAdministration:
        now = datetime.now(UTC)
        async with atomic():
            administration = await MeasureAdministration.create(
                practice_id=client.practice_id,  # type: ignore[attr-defined]
                client=client,
                measure=kind,
                status=AdministrationStatus.COMPLETED,
                sent_by=staff,
                filled_by=staff,
                answers=scored.answers,
                score=scored.score,
                band=scored.band.key,
                safety_alert=scored.safety_alert,
                completed_at=now,
                request_key=key,
            )
            await _completed(actor, administration, client, inst)
        return administration

    return await once_per_key(MeasureAdministration, request_key, write, client_id=client.id)


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
    # Whoever sent it hears too, if they may still read this client's scores (not once the
    # client went to another therapist; the front desk only where clinical details are open).
    listeners = {s.id: s for s in clinicians}
    sender = await StaffUser.get_or_none(id=administration.sent_by_id, is_active=True)  # type: ignore[attr-defined]
    if sender is not None and await may_hear_of(sender, client, practice):
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
    for clinician in clinicians:
        with writing_in(clinician.locale or practice.locale):
            # Nothing clinical in the task: a client file's tasks are open to the front desk,
            # also where the practice keeps clinical details from it. The answer is on the
            # Measures tab, which follows that rule.
            note = _(
                "Urgent: a questionnaire this client just answered needs your review today. "
                "Open the Measures tab, then contact the client."
            )
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


async def withdraw_for_called_off_sessions() -> int:
    """Withdraw the questionnaires sent before a session that was then cancelled (or
    deleted), which the client has not answered. Answered ones stay. Returns how many."""
    return await schedules.withdraw_for_called_off_sessions(
        MeasureAdministration,
        waiting={"status": AdministrationStatus.SENT},
        cancelled=AdministrationStatus.CANCELLED,
        event="measure.cancelled",
        object_type="measure_administration",
    )


async def _send_before_sessions(schedule: MeasureSchedule, client: Client, now: datetime) -> int:
    """For a "before every session" schedule: one administration per upcoming appointment
    that is now within ``hours_before``. Call inside atomic()."""
    sessions = await schedules.sessions_to_ask(
        MeasureAdministration, AdministrationStatus.SENT, schedule, client, now
    )
    for appointment in sessions:
        await _send(
            None, client, schedule.measure, sent_by=None, schedule=schedule, appointment=appointment
        )
    return len(sessions)


async def _reachable(schedule: MeasureSchedule) -> Client | None:
    """The schedule's client, unless archived, deleted or without an active portal account."""
    client = await Client.get_or_none(id=schedule.client_id, deleted_at=None)  # type: ignore[attr-defined]
    if client is None or client.status is ClientStatus.ARCHIVED:
        return None
    if not await PortalAccount.filter(client_id=client.id, is_active=True).exists():
        return None
    return client


async def _send_periodic(schedule: MeasureSchedule, client: Client) -> bool:
    await _send(None, client, schedule.measure, sent_by=None, schedule=schedule)
    return True


async def send_due_measures(now: datetime | None = None) -> int:
    """The worker's tick: send what every running schedule has due (server/actions/
    schedules.py: idempotent, safe with several workers). Returns how many were sent."""
    now = now or datetime.now(UTC)
    sent = await schedules.send_due(
        MeasureSchedule,
        now,
        target=_reachable,
        send_now=_send_periodic,
        send_before=_send_before_sessions,
    )
    await withdraw_for_called_off_sessions()
    return sent
