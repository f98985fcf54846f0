"""Forms sent on a schedule, like measures: now and again every N weeks, or a set time
before each of the client's sessions.

The rules and their code are server/actions/schedules.py's, shared with measures. What is
the forms' own: a form sent before a session that was then cancelled is withdrawn only if
the client has not started it (no draft saved); each send takes the form's latest version.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from models.clients import Client, ClientStatus
from models.forms import FormAssignment, FormSchedule, FormStatus, FormTemplate
from server.actions import schedules
from server.actions.forms import check_sendable, send_form_now
from server.actions.schedules import check_schedule
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
        schedule = await schedules.create_schedule(
            actor,
            FormSchedule,
            client,
            now,
            every_weeks=every_weeks,
            hours_before=hours_before,
            event="form.scheduled",
            object_type="form_schedule",
            sends={"template": template},
            named=template.name,
            detail={"template_id": template.id},
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
    await schedules.stop_schedule(
        actor, schedule, event="form.schedule_stopped", object_type="form_schedule"
    )


async def _send_before_sessions(
    schedule: FormSchedule, client: Client, template: FormTemplate, now: datetime
) -> int:
    """One assignment per upcoming session now within ``hours_before``. Call inside
    atomic(); the (schedule, appointment) key makes a second worker's attempt fail."""
    sent = 0
    for appointment in await schedules.sessions_to_ask(
        FormAssignment, FormStatus.SENT, schedule, client, now
    ):
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


async def _send_periodic(schedule: FormSchedule, target: tuple[Client, FormTemplate]) -> bool:
    return await send_form_now(None, *target, sent_by=None, schedule=schedule) is not None


async def _send_before(
    schedule: FormSchedule, target: tuple[Client, FormTemplate], now: datetime
) -> int:
    return await _send_before_sessions(schedule, *target, now)


async def send_due_forms(now: datetime | None = None) -> int:
    """The worker's tick for forms, as send_due_measures() is for measures: idempotent and
    safe with several workers. Returns how many forms were sent."""
    now = now or datetime.now(UTC)
    sent = await schedules.send_due(
        FormSchedule, now, target=_sendable, send_now=_send_periodic, send_before=_send_before
    )
    await withdraw_for_called_off_sessions()
    return sent


async def withdraw_for_called_off_sessions() -> int:
    """Withdraw the forms sent before a session that was then cancelled (or deleted), which
    the client has neither started (no draft) nor submitted. Returns how many."""
    return await schedules.withdraw_for_called_off_sessions(
        FormAssignment,
        waiting={"status": FormStatus.SENT, "draft_saved_at": None},
        cancelled=FormStatus.CANCELLED,
        event="form.cancelled",
        object_type="form_assignment",
    )
