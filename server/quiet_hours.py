"""Quiet hours: when a text message may not wake someone up.

SMS (reminders, confirmations, earlier-slot offers) are held back between ``start`` and
``end`` in the recipient's time zone (21:00 to 08:00 by default) and go out at ``end``:
the job that queues one waits, and delivery checks again (a retry may come in the night).
Email is not held: it does not ring.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_START = time(21, 0)
DEFAULT_END = time(8, 0)

# The outbox purposes of the texts quiet hours hold: those the job handlers wait with
# (server/actions/reminder_jobs.py, server/actions/offers.py). Delivery checks again
# (server/sms.py): a text queued at 20:58 whose try comes at 23:30 waits for the morning.
HELD_PURPOSES = frozenset(
    {"reminder", "confirmation", "booking.practitioner", "message.notice", "offer.sent"}
)


def in_quiet_hours(local: time, start: time, end: time) -> bool:
    if start == end:
        return False  # no quiet hours
    if start < end:  # e.g. 13:00-14:00
        return start <= local < end
    return local >= start or local < end  # over midnight, e.g. 21:00-08:00


def next_allowed(
    at: datetime, tz: ZoneInfo, start: time = DEFAULT_START, end: time = DEFAULT_END
) -> datetime:
    """``at`` if it is outside quiet hours in ``tz``, else the moment they end (aware, in the
    same time zone as ``at``). Daylight saving is handled by building the local wall time."""
    local = at.astimezone(tz)
    if not in_quiet_hours(local.time().replace(tzinfo=None), start, end):
        return at
    # Within the hour that repeats when the clocks go back, the end is read in the same pass
    # as ``at`` (``fold``); and compared as instants, not wall times (an aware comparison in
    # one tzinfo ignores the fold): a quiet night ending at 02:30 on that night sent at
    # 02:15 of the second pass, its "end" being the first 02:30, an hour earlier.
    ends = datetime.combine(local.date(), end, tzinfo=tz).replace(fold=local.fold)
    if ends.astimezone(UTC) <= at.astimezone(UTC):  # the evening part: tomorrow morning
        ends = datetime.combine(local.date() + timedelta(days=1), end, tzinfo=tz)
    return ends.astimezone(at.tzinfo)
