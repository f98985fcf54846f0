"""Delivery of the outbox, shared by the email and SMS channels (server/mail.py,
server/sms.py): each due message is claimed by a conditional update before it is sent, so
several workers never send the same one (the claim lasts ``LEASE`` from its own start); a
failure is retried with a growing delay until ``max_attempts``, or given up at once when the
channel calls it permanent. A message whose worker stopped during its last attempt fails
rather than risk going out twice. A message about an appointment or an offer that has
stopped being true or useful by the time it could go (cancelled, moved, begun, over) is
dropped, never sent: a reminder that waited for the morning or for the provider to come
back must not announce a session that is no longer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from models.agenda import Appointment, is_upcoming
from models.notifications import OutboxMessage, OutboxStatus
from server.db import atomic
from server.i18n import gettext, lazy

# How long a claimed message is left to its worker before another may try it.
LEASE = timedelta(minutes=2)

# Why Cabinet itself failed or dropped a message. Stored in English, as a provider's error
# is, and translated where they are shown (the Outbox page, the client's Logs tab): a
# French clinician reads them in French, and rows stored before still read right.
WORKER_STOPPED = lazy("The worker stopped during the last attempt: it may have been sent.")
TOO_LATE = lazy("Not sent: by the time it could go, it was too late to be of use.")
CALLED_OFF = lazy("Not sent: the appointment was cancelled or moved in the meantime.")
NO_CREDITS = lazy("No SMS credits left.")
OUR_REASONS = frozenset({WORKER_STOPPED, TOO_LATE, CALLED_OFF, NO_CREDITS})


def reason_label(error: str) -> str:
    """A failed or dropped message's ``error`` in the reader's language when it is one of
    ours; a provider's or a mail server's words as they gave them."""
    return gettext(error) if error in OUR_REASONS else error


Send = Callable[[OutboxMessage], Awaitable[dict[str, Any]]]
# When a due message must wait instead (quiet hours), or None to send it now.
Hold = Callable[[OutboxMessage, datetime], Awaitable[datetime | None]]
# What to do once a message has been dropped, in its transaction (SMS: give its credits back).
Dropped = Callable[[OutboxMessage], Awaitable[None]]


async def why_drop(msg: OutboxMessage, at: datetime) -> str:
    """Why ``msg`` must not go at ``at`` (the first moment it could), or "" if it still may.
    The reasons are stored with it and shown on the client's Logs tab."""
    if msg.send_before is not None and at >= msg.send_before:
        return TOO_LATE
    if msg.appointment_id is None:
        return ""
    appointment = await Appointment.get_or_none(id=msg.appointment_id)
    if (
        appointment is None
        or not is_upcoming(appointment, at)
        or (msg.send_before is not None and appointment.starts_at != msg.send_before)
    ):
        return CALLED_OFF
    return ""


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=30 * 2**attempts)


async def deliver_outbox(
    channel: str,
    send: Send,
    *,
    limit: int,
    max_attempts: int,
    log: logging.Logger,
    permanent: tuple[type[Exception], ...] = (),
    name_empty_errors: bool = False,
    hold: Hold | None = None,
    dropped: Dropped | None = None,
) -> int:
    """Send the queued messages of ``channel`` whose time has come; returns how many left.

    ``send`` hands one message over and returns the fields to record with it once sent
    (``{}`` for none); it raises on failure. An exception of a ``permanent`` class fails the
    message without retrying. ``name_empty_errors``: an exception without a message is
    recorded by its class name rather than as an empty error. ``hold(message, now)``: when a
    message must wait instead of going now; it is moved there without using an attempt.
    ``dropped(message)``: called in the transaction that drops a message (``why_drop``).
    """
    now = datetime.now(UTC)
    due = (
        await OutboxMessage.filter(
            status=OutboxStatus.QUEUED, channel=channel, next_attempt_at__lte=now
        )
        .order_by("id")
        .limit(limit)
    )
    sent = 0
    for msg in due:
        still = {"id": msg.id, "status": OutboxStatus.QUEUED, "attempts": msg.attempts}
        if msg.attempts >= max_attempts:
            # Its worker stopped during the last attempt (killed mid-send, or the provider
            # took it and the "sent" was never written): sending it again could send it
            # twice, and it has had its tries.
            await OutboxMessage.filter(**still).update(
                status=OutboxStatus.FAILED,
                error=WORKER_STOPPED,
            )
            continue
        until = await hold(msg, now) if hold is not None else None
        if why := await why_drop(msg, until or now):
            async with atomic():
                # Conditional as the claim is: a worker that claimed it meanwhile keeps it.
                if await OutboxMessage.filter(**still).update(
                    status=OutboxStatus.DROPPED, error=why
                ):
                    if dropped is not None:
                        await dropped(msg)
            continue
        if until is not None:
            await OutboxMessage.filter(**still).update(next_attempt_at=until)
            continue
        # The lease runs from the claim, not from the batch's start: the messages before
        # this one may have taken minutes (each send may wait 20 s on its provider). Only if
        # still due: another worker may have just held it for the morning.
        claimed = await OutboxMessage.filter(**still, next_attempt_at__lte=now).update(
            attempts=msg.attempts + 1, next_attempt_at=datetime.now(UTC) + LEASE
        )
        if not claimed:
            continue
        attempts = msg.attempts + 1
        try:
            recorded = await send(msg)
        except Exception as exc:  # noqa: BLE001 - any delivery failure is retried, then reported
            failed = attempts >= max_attempts or isinstance(exc, permanent)
            error = str(exc)[:2000]
            if name_empty_errors and not error:
                error = type(exc).__name__
            await OutboxMessage.filter(id=msg.id).update(
                status=OutboxStatus.FAILED if failed else OutboxStatus.QUEUED,
                error=error,
                next_attempt_at=datetime.now(UTC) + retry_delay(attempts),
            )
            log.warning(
                "%s %s to %s failed (attempt %s): %s", channel, msg.id, msg.to, attempts, exc
            )
            continue
        await OutboxMessage.filter(id=msg.id).update(
            status=OutboxStatus.SENT, sent_at=datetime.now(UTC), **recorded
        )
        sent += 1
    return sent
