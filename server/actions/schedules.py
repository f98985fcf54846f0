"""Sending on a schedule, the same for measures (server/actions/measures.py) and forms
(server/actions/form_schedules.py): once, again every N weeks, or a set time before each of
the client's sessions.

Safe with several workers: a periodic schedule is claimed by moving its ``next_due_at`` with
a conditional update (only one worker's update matches); a "before each session" send relies
on the unique (schedule, appointment) key of what was sent. A schedule whose sending fails
is held a while (``RETRY_AFTER``) and the others go on. A moved session is asked about
once (what was sent follows it to its new date); what was sent before a session that was
then cancelled is withdrawn while the client has not answered it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q, Subquery

from models.accounts import Practice
from models.agenda import Appointment, Attendance
from models.clients import Client
from server.actions import audit
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import Conflict, ValidationFailed
from server.i18n import gettext as _
from server.i18n import ngettext

log = logging.getLogger("cabinet.schedules")

MAX_EVERY_WEEKS = 52
MAX_HOURS_BEFORE = 14 * 24
# How long after a moved appointment's replacement was booked the old one is marked moved
# (server/actions/agenda.py do_move_appointment does both in one transaction).
MOVE_WINDOW = timedelta(seconds=60)
# How long a schedule whose sending raised waits before it is tried again (send_due).
RETRY_AFTER = timedelta(minutes=15)
# A session that will not happen: what was sent before it is withdrawn.
CALLED_OFF = (Attendance.CANCELLED_BY_CLIENT, Attendance.CANCELLED_BY_PRACTITIONER)

# A schedule row (MeasureSchedule, FormSchedule) and what it sends to (the client, ...).
S = TypeVar("S")
T = TypeVar("T")


async def practice_zone(schedule_or_client: Any) -> ZoneInfo:
    """The time zone of the practice a schedule (or a client) belongs to."""
    practice = await Practice.get(id=schedule_or_client.practice_id)
    return ZoneInfo(practice.time_zone)


def weeks_later(when: datetime, weeks: int, zone: ZoneInfo) -> datetime:
    """``when`` plus ``weeks``, in UTC, at the same hour on the practice's clock: adding
    weeks in UTC would send Monday's 09:00 at 10:00 once summer time starts."""
    return (when.astimezone(zone) + timedelta(weeks=weeks)).astimezone(UTC)


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


async def create_schedule(
    actor: Caller,
    schedule_model: Any,
    client: Client,
    now: datetime,
    *,
    every_weeks: int | None,
    hours_before: int | None,
    event: str,
    object_type: str,
    sends: dict[str, Any],
    named: str,
    detail: dict[str, Any],
) -> Any:
    """Create and audit a schedule of ``schedule_model`` for ``client`` sending ``sends``
    (its own fields: the measure, the form; ``named`` is what the client knows it by); the
    caller sends the first one. Call inside atomic(), after check_schedule().

    Refuses (Conflict) a second running schedule of the same thing for the client: "Send"
    pressed twice (a double tap, a slow answer) would otherwise send it twice, for good."""
    assert actor.staff is not None
    # The client's row lock makes a second press wait for the first one's commit, and see it.
    await Client.filter(id=client.id).select_for_update().first()
    running = (
        await schedule_model.filter(client_id=client.id, stopped_at=None, **sends)
        .order_by("id")
        .first()
    )
    if running is not None:
        raise Conflict(
            _(
                "%(name)s is already sent to this client on a schedule (%(schedule)s). "
                "Stop that schedule first to start another."
            )
            % {"name": named, "schedule": describe(running)}
        )
    schedule = await schedule_model.create(
        practice_id=client.practice_id,  # type: ignore[attr-defined]
        client=client,
        **sends,
        every_weeks=every_weeks,
        next_due_at=(
            weeks_later(now, every_weeks, await practice_zone(client)) if every_weeks else None
        ),
        hours_before=hours_before,
        created_by=actor.staff,
    )
    await audit.record(
        actor,
        event,
        object_type=object_type,
        object_id=schedule.id,
        client_id=client.id,
        detail={**detail, "every_weeks": every_weeks, "hours_before": hours_before},
    )
    return schedule


def describe(schedule: Any) -> str:
    """How often a schedule sends, in the words of the client file's list of schedules."""
    if schedule.every_weeks == 1:
        return _("every week")
    if schedule.every_weeks:
        return _("every %(num)s weeks") % {"num": schedule.every_weeks}
    return ngettext(
        "%(num)s hour before each session",
        "%(num)s hours before each session",
        schedule.hours_before,
    ) % {"num": schedule.hours_before}


async def stop_schedule(actor: Caller, schedule: Any, *, event: str, object_type: str) -> None:
    """Stop a schedule (nothing more is sent; what was sent stays). Idempotent."""
    if schedule.stopped_at is not None:
        return
    async with atomic():
        schedule.stopped_at = datetime.now(UTC)
        await schedule.save(update_fields=["stopped_at", "updated_at"])
        await audit.record(
            actor,
            event,
            object_type=object_type,
            object_id=schedule.id,
            client_id=schedule.client_id,
        )


async def moved_from(appointment: Appointment) -> Appointment | None:
    """The appointment this one replaced when it was moved, if any.

    A move records the link (``moved_from``). Appointments moved before the link existed are
    told by the data: a move books the new appointment and marks the old one MOVED in the same
    transaction, for the same client, practitioner and service, so the predecessor is the
    MOVED one of theirs marked within MOVE_WINDOW after this was booked, and that no
    replacement points back to. Since the link, every move sets it: without that last
    condition a session booked in the same minute as another was moved took that one's
    questionnaire.
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
        .exclude(
            id__in=Subquery(
                Appointment.filter(
                    client_id=appointment.client_id,  # type: ignore[attr-defined]
                    moved_from_id__not_isnull=True,
                ).values("moved_from_id")
            )
        )
        .order_by("updated_at")
        .first()
    )


async def live_session(appointment: Appointment) -> Appointment:
    """Where a session went: the end of its moves (each replacement points back with
    ``moved_from``), or itself if it was never moved."""
    session = appointment
    for _step in range(20):  # a session moved again and again; bounded all the same
        if session.attendance is not Attendance.MOVED:
            break
        replacement = await Appointment.filter(moved_from_id=session.id).first()
        if replacement is None:
            break  # moved before the link existed: nothing to follow
        session = replacement
    return session


async def _already_asked(
    sent_model: Any, waiting: Any, schedule: Any, appointment: Appointment
) -> bool:
    """Whether this session, under an earlier date it was moved from, already had what the
    schedule sends. A waiting one follows the session to its new date, so that cancelling
    the moved session withdraws it."""
    earlier: Appointment | None = appointment
    for _step in range(20):  # a session moved again and again; bounded all the same
        earlier = await moved_from(earlier)  # type: ignore[arg-type]
        if earlier is None:
            return False
        sent = await sent_model.get_or_none(schedule_id=schedule.id, appointment_id=earlier.id)
        if sent is not None:
            if sent.status is waiting:
                await sent_model.filter(id=sent.id).update(
                    appointment_id=appointment.id, updated_at=datetime.now(UTC)
                )
            return True
    return False


async def sessions_to_ask(
    sent_model: Any, waiting: Any, schedule: Any, client: Client, now: datetime
) -> list[Appointment]:
    """For a "before each session" schedule: the client's upcoming sessions now within its
    ``hours_before`` that had nothing sent yet (``sent_model``: MeasureAdministration or
    FormAssignment, ``waiting``: its status while unanswered). Call inside atomic()."""
    assert schedule.hours_before is not None
    appointments = await Appointment.filter(
        client_id=client.id,
        deleted_at=None,
        attendance=Attendance.SCHEDULED,
        starts_at__gt=now,
        starts_at__lte=now + timedelta(hours=schedule.hours_before),
    ).order_by("starts_at")
    if not appointments:
        return []
    done = set(
        await sent_model.filter(
            schedule_id=schedule.id, appointment_id__in=[a.id for a in appointments]
        ).values_list("appointment_id", flat=True)
    )
    return [
        a
        for a in appointments
        if a.id not in done and not await _already_asked(sent_model, waiting, schedule, a)
    ]


async def send_due(
    schedule_model: Any,
    now: datetime,
    *,
    target: Callable[[S], Awaitable[T | None]],
    send_now: Callable[[S, T], Awaitable[bool]],
    send_before: Callable[[S, T, datetime], Awaitable[int]],
) -> int:
    """The worker's tick for one kind of schedule; returns how many were sent.

    ``target(schedule)``: what to send to, or None to send nothing (an archived client...);
    a periodic schedule moves on all the same, so nothing piles up. ``send_now`` sends one
    (False if it sent nothing); ``send_before`` sends for the sessions within reach, inside
    the transaction it is given.

    A schedule whose sending raises is logged and held for ``RETRY_AFTER`` (``_hold``), and
    the others go on: one bad row must not stop every client's questionnaires, nor raise
    on every tick of the worker.
    """
    sent = 0
    due = await schedule_model.filter(
        stopped_at=None, hours_before=None, next_due_at__lte=now
    ).order_by("id")
    for schedule in due:
        assert schedule.every_weeks is not None and schedule.next_due_at is not None
        step = timedelta(weeks=schedule.every_weeks)
        # On the practice's clock (aware arithmetic keeps the zone): 09:00 stays 09:00.
        following = schedule.next_due_at.astimezone(await practice_zone(schedule)) + step
        # A worker that was down for a month sends one, not four: catch up to the future.
        while following <= now:
            following += step
        try:
            what = await target(schedule)
            async with atomic():
                claimed = await schedule_model.filter(
                    id=schedule.id, next_due_at=schedule.next_due_at, stopped_at=None
                ).update(next_due_at=following.astimezone(UTC), updated_at=now)
                if claimed and what is not None and await send_now(schedule, what):
                    sent += 1
        except Exception as exc:  # noqa: BLE001 - one bad schedule must not stop the others
            await _hold(schedule_model, schedule, now, exc)
    before = await schedule_model.filter(
        Q(next_due_at=None) | Q(next_due_at__lte=now),
        stopped_at=None,
        hours_before__not_isnull=True,
    ).order_by("id")
    for schedule in before:
        try:
            what = await target(schedule)
            if what is None:
                continue
            async with atomic():
                sent += await send_before(schedule, what, now)
        except IntegrityError:
            # Another worker sent it first: nothing lost, nothing doubled.
            log.info("%s %s: another worker sent it", schedule_model.__name__, schedule.id)
        except Exception as exc:  # noqa: BLE001 - one bad schedule must not stop the others
            await _hold(schedule_model, schedule, now, exc)
    return sent


async def _hold(schedule_model: Any, schedule: Any, now: datetime, exc: Exception) -> None:
    """Try the schedule again in ``RETRY_AFTER``, by moving its ``next_due_at``, which a
    "before each session" schedule uses for this alone. Conditional, as the claim is: a
    worker that sent it meanwhile is not undone. A periodic schedule keeps its period from
    the send that finally goes out."""
    log.error(
        "%s %s failed to send, trying again in %s",
        schedule_model.__name__,
        schedule.id,
        RETRY_AFTER,
        exc_info=exc,
    )
    await schedule_model.filter(
        id=schedule.id, next_due_at=schedule.next_due_at, stopped_at=None
    ).update(next_due_at=now + RETRY_AFTER, updated_at=now)


async def withdraw_for_called_off_sessions(
    sent_model: Any,
    *,
    waiting: dict[str, Any],
    cancelled: Any,
    event: str,
    object_type: str,
) -> int:
    """Withdraw what a "before each session" schedule sent before a session that was then
    cancelled (or deleted) and is still ``waiting`` (the filter of an unanswered one):
    don't ask about a session that will not happen. Returns how many were withdrawn."""
    pending = await sent_model.filter(
        **waiting, schedule__hours_before__not_isnull=True, appointment_id__not_isnull=True
    ).prefetch_related("appointment")
    withdrawn = 0
    for sent in pending:
        # A session moved out of the schedule's reach keeps what was sent for its old date
        # until the new one comes within reach: what happens to it is at the end of the moves.
        session = await live_session(sent.appointment)
        if session.deleted_at is None and session.attendance not in CALLED_OFF:
            continue
        async with atomic():
            updated = await sent_model.filter(id=sent.id, **waiting).update(
                status=cancelled, updated_at=datetime.now(UTC)
            )
            if not updated:
                continue  # answered (or started) meanwhile: it stays
            await audit.record(
                None,
                event,
                object_type=object_type,
                object_id=sent.id,
                client_id=sent.client_id,
                detail={"reason": "session_cancelled", "appointment_id": session.id},
            )
            withdrawn += 1
    return withdrawn
