"""The durable job queue: schedule work in a transaction, run it in a worker, exactly once.

Writing side (actions)::

    async with atomic():
        appointment = await Appointment.create(...)
        await jobs.schedule("reminder.send", run_at, {"appointment": appointment.id},
                            key=f"reminder:{appointment.id}:{client.id}:email")

Running side (``server/worker.py`` calls :func:`run_due` every tick). A handler is an async
function registered with :func:`handler`; it receives the job and does its writes, and the
job is marked done **in the same transaction**, so a worker killed mid-job leaves no trace
of it and the job runs again once its lease runs out, and a job is never done twice.
Handlers must only write to the database (queue an email in the outbox, create a row);
talking to the outside world is the outbox's business, retried on its own. A handler may
name payload fields that are private (``handler(kind, private=...)``): a finished job's row
keeps none of them.

Claiming is one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`` on PostgreSQL, so
several ``cabinet worker`` processes share the queue without waiting on each other; SQLite
serialises writers, which gives the same guarantee.

::

    pending ──claim──▶ running ──handler ok──▶ done
       ▲  ▲               │ │
       │  └─Defer(until)──┘ └─error─▶ pending again (backoff) … failed after max_attempts
       └── schedule() again with the same key (a moved appointment) ── cancelled ◀── cancel()
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from models.jobs import Job, JobStatus
from server.db import atomic, connection, dialect, in_atomic, placeholders, values_rows

log = logging.getLogger("cabinet.jobs")

Handler = Callable[[Job], Awaitable[None]]

# How long a claimed job belongs to its worker; past it, another worker may take it over.
LEASE = timedelta(minutes=2)
# Retry delays: 30 s, 1 min, 2 min, 4 min … capped at an hour.
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)

_handlers: dict[str, Handler] = {}
# Per kind, the payload fields a job needs only until it has run (see handler()).
_private: dict[str, frozenset[str]] = {}

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
# Rows a statement of schedule_unless_waiting inserts at most (14 parameters each: well
# under SQLite's and PostgreSQL's limits of 32,766 and 32,767).
SCHEDULE_ROWS = 1000
# What scheduling a job, or scheduling it again, sets besides its kind, payload, time,
# practice and attempts allowed: ready to run, no attempt used, nobody's lease, no past
# outcome. Both schedule() and schedule_unless_waiting() apply it.
FRESH: dict[str, Any] = {
    "status": JobStatus.PENDING,
    "attempts": 0,
    "locked_until": None,
    "locked_by": "",
    "finished_at": None,
    "last_error": "",
}


KEYED_MAX_ATTEMPTS = 6
_FRESH_VALUES = [v.value if isinstance(v, JobStatus) else v for v in FRESH.values()]


@dataclass(frozen=True, slots=True)
class KeyedJob:
    """One job for ``schedule_unless_waiting``."""

    key: str
    run_at: datetime
    payload: dict[str, Any]
    practice_id: int | None = None
    max_attempts: int = KEYED_MAX_ATTEMPTS


class Defer(Exception):  # noqa: N818 - it is a request, not an error
    """Raised by a handler to run the job later (quiet hours) without using an attempt.

    Whatever the handler wrote before raising is rolled back."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"deferred until {until.isoformat()}")
        self.until = until


def handler(kind: str, *, private: Iterable[str] = ()) -> Callable[[Handler], Handler]:
    """Register the function that runs jobs of ``kind``.

    ``private``: payload fields the job needs only to run (what a person typed, their network
    address). They are dropped from the row when the job is done or has failed for good:
    finished jobs are kept for weeks (``worker.prune``), failed ones until someone looks."""

    def register(fn: Handler) -> Handler:
        if kind in _handlers and _handlers[kind] is not fn:
            raise RuntimeError(f"two handlers for job kind {kind!r}")
        _handlers[kind] = fn
        if private:
            _private[kind] = frozenset(private)
        return fn

    return register


def _spent(job: Job) -> dict[str, Any]:
    """What a finished job's row keeps of it: its payload without the private fields, if
    its kind has any (an update writes the payload only then)."""
    private = _private.get(job.kind)
    if not private:
        return {}
    return {"payload": {k: v for k, v in job.payload.items() if k not in private}}


def handlers() -> dict[str, Handler]:
    return dict(_handlers)


# --- scheduling (inside an action's transaction) ---------------------------------------------


async def schedule(
    kind: str,
    run_at: datetime,
    payload: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    practice_id: int | None = None,
    max_attempts: int = 6,
    again_if_done: bool = False,
) -> Job:
    """Schedule ``kind`` at ``run_at``. Call inside ``atomic()``: the job exists only if
    the caller's change commits.

    With a ``key``, scheduling the same work again moves the one job (new time, new payload)
    instead of adding another, and revives it if it was cancelled. A job that already ran
    stays done unless ``again_if_done``: a reminder that went out is not sent twice.
    """
    if not in_atomic():
        raise RuntimeError("jobs.schedule() called outside atomic()")
    payload = payload or {}
    if key is None:
        return await Job.create(
            kind=kind,
            payload=payload,
            run_at=run_at,
            practice_id=practice_id,
            max_attempts=max_attempts,
        )
    existing = await Job.filter(key=key).select_for_update().first()
    if existing is None:
        try:
            # A savepoint, so that losing the race for the key leaves the caller's
            # transaction usable.
            async with atomic():
                return await Job.create(
                    kind=kind,
                    key=key,
                    payload=payload,
                    run_at=run_at,
                    practice_id=practice_id,
                    max_attempts=max_attempts,
                )
        except IntegrityError:
            existing = await Job.filter(key=key).select_for_update().first()
            if existing is None:  # pragma: no cover - the winner rolled back meanwhile
                raise
    if existing.status == JobStatus.DONE and not again_if_done:
        return existing
    # A running job moved under its worker: the worker's completion no longer matches
    # (see _run_one), so its transaction rolls back and the job runs again with this payload.
    existing.kind = kind
    existing.payload = payload
    existing.run_at = run_at
    existing.practice_id = practice_id
    existing.max_attempts = max_attempts
    for name, value in FRESH.items():
        setattr(existing, name, value)
    await existing.save()
    return existing


async def schedule_unless_waiting(kind: str, wanted: Sequence[KeyedJob]) -> None:
    """Schedule each keyed job of ``kind`` unless a job with its key is already waiting,
    running, done or failed: a new key is inserted, a cancelled one revived with the new
    time and payload (as ``schedule()`` would), any other left as it is. Call inside
    ``atomic()``.

    One statement for all of them: a group commit of messages schedules its unread notices
    here, and ``schedule()`` took four statements and a savepoint for each (docs/
    performance.md, ninth round). A job another transaction scheduled meanwhile is left
    alone too: the insert meets its key and the update's condition does not hold.
    """
    if not in_atomic():
        raise RuntimeError("jobs.schedule_unless_waiting() called outside atomic()")
    if not wanted:
        return
    # One row a key (the first), in key order: two transactions scheduling the same keys
    # lock them in the same order on PostgreSQL, and a statement never meets its own key
    # twice (which PostgreSQL refuses).
    by_key: dict[str, KeyedJob] = {}
    for job in wanted:
        by_key.setdefault(job.key, job)
    rows = [by_key[key] for key in sorted(by_key)]
    now = datetime.now(UTC)
    for start in range(0, len(rows), SCHEDULE_ROWS):
        chunk = rows[start : start + SCHEDULE_ROWS]
        params: list[Any] = []
        for job in chunk:
            params += [
                kind,
                job.key,
                json.dumps(job.payload, separators=(",", ":")),
                job.practice_id,
                job.run_at,
                job.max_attempts,
                *_FRESH_VALUES,
                now,
                now,
            ]
        await connection().execute_query(
            f"INSERT INTO job ({_SCHEDULED_NAMES}) "
            f"VALUES {values_rows(len(chunk), len(_SCHEDULED))} {_UNLESS_WAITING}",
            params,
        )


# The columns schedule_unless_waiting() writes, and what it does when the key exists: a
# cancelled job is revived with every inserted column but its key (it keeps its creation
# time); any other is left as it is.
_SCHEDULED = [
    "kind",
    "key",
    "payload",
    "practice_id",
    "run_at",
    "max_attempts",
    *FRESH,
    "created_at",
    "updated_at",
]
_SCHEDULED_NAMES = ", ".join(f'"{c}"' for c in _SCHEDULED)
_UNLESS_WAITING = (
    'ON CONFLICT ("key") DO UPDATE SET '
    + ", ".join(f'"{c}" = excluded."{c}"' for c in _SCHEDULED if c not in ("key", "created_at"))
    + f" WHERE job.status = '{JobStatus.CANCELLED.value}'"
)


def pg_schedule_unless_waiting(kind: str, rows: str, now: str) -> str:
    """PostgreSQL: ``schedule_unless_waiting`` as one part of a bigger statement, for the
    jobs of a query ``rows`` with columns key, payload (jsonb), practice_id and run_at, one
    row a key, in key order (two writers lock keys in the same order). ``kind`` is a
    constant of this code, written into the statement; ``now`` is an SQL expression."""
    literals = ", ".join(_literal(v) for v in _FRESH_VALUES)
    return (
        f"INSERT INTO job ({_SCHEDULED_NAMES}) "
        f"SELECT {_literal(kind)}, r.key, r.payload, r.practice_id, r.run_at, "
        f"{KEYED_MAX_ATTEMPTS}, {literals}, {now}, {now} FROM ({rows}) r ORDER BY r.key "
        f"{_UNLESS_WAITING}"
    )


def _literal(value: str | int | None) -> str:
    """A constant of this code as SQL (never anything a person typed)."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


async def cancel(keys: str | Iterable[str]) -> int:
    """Cancel the jobs with these keys that have not run. Call inside ``atomic()``."""
    if not in_atomic():
        raise RuntimeError("jobs.cancel() called outside atomic()")
    wanted = [keys] if isinstance(keys, str) else list(keys)
    if not wanted:
        return 0
    return await Job.filter(
        key__in=wanted, status__in=[JobStatus.PENDING, JobStatus.RUNNING]
    ).update(status=JobStatus.CANCELLED, locked_by="", locked_until=None)


async def cancel_prefix(prefix: str) -> int:
    """Cancel every job whose key starts with ``prefix`` and has not run (all the
    reminders of an appointment: ``reminder:12:``). Call inside ``atomic()``."""
    if not in_atomic():
        raise RuntimeError("jobs.cancel_prefix() called outside atomic()")
    return await Job.filter(
        key__startswith=prefix, status__in=[JobStatus.PENDING, JobStatus.RUNNING]
    ).update(status=JobStatus.CANCELLED, locked_by="", locked_until=None)


# --- running (the worker) ----------------------------------------------------------------------


async def claim(worker_id: str, now: datetime, limit: int) -> list[int]:
    """Take up to ``limit`` due jobs (and running ones whose worker's lease ran out)."""
    conn = connection()
    p = placeholders(6)
    lock = " FOR UPDATE SKIP LOCKED" if dialect() == "postgres" else ""
    sql = (
        f"UPDATE job SET status = 'running', locked_by = {p[0]}, locked_until = {p[1]}, "
        f"attempts = attempts + 1, updated_at = {p[2]} "
        "WHERE id IN ("
        "SELECT id FROM job WHERE "
        f"(status = 'pending' AND run_at <= {p[3]}) "
        f"OR (status = 'running' AND locked_until < {p[4]}) "
        f"ORDER BY run_at, id LIMIT {p[5]}{lock}"
        ") RETURNING id"
    )
    rows = await conn.execute_query_dict(sql, [worker_id, now + LEASE, now, now, now, limit])
    return sorted(int(r["id"]) for r in rows)


async def run_due(
    worker_id: str = WORKER_ID, *, now: datetime | None = None, limit: int = 50
) -> int:
    """Run the jobs that are due; returns how many were claimed (the worker loops at once
    while it gets a full batch)."""
    now = now or datetime.now(UTC)
    ids = await claim(worker_id, now, limit)
    for job_id in ids:
        await _run_one(job_id, worker_id, now)
    return len(ids)


async def _run_one(job_id: int, worker_id: str, now: datetime) -> None:
    job = await Job.get_or_none(id=job_id)
    if job is None or job.locked_by != worker_id or job.status != JobStatus.RUNNING:
        return
    fn = _handlers.get(job.kind)
    if fn is None:
        await _finish_failed(job, worker_id, f"no handler for job kind {job.kind!r}", now)
        return
    if job.attempts > job.max_attempts:
        # Reclaimed after its worker died on the last attempt.
        await _finish_failed(job, worker_id, job.last_error or "worker lost", now)
        return
    try:
        async with atomic():
            # Lock the row for the whole run: a schedule() or cancel() of this job waits for
            # the outcome, and a worker whose lease was taken over finds nothing to do.
            mine = await (
                Job.filter(id=job_id, status=JobStatus.RUNNING, locked_by=worker_id)
                .select_for_update()
                .first()
            )
            if mine is None:
                return
            await fn(mine)
            await Job.filter(id=job_id).update(
                status=JobStatus.DONE,
                finished_at=datetime.now(UTC),
                locked_until=None,
                last_error="",
                **_spent(mine),
            )
    except Defer as deferred:
        await Job.filter(id=job_id, status=JobStatus.RUNNING, locked_by=worker_id).update(
            status=JobStatus.PENDING,
            run_at=deferred.until,
            attempts=max(job.attempts - 1, 0),
            locked_by="",
            locked_until=None,
        )
    except Exception as exc:  # noqa: BLE001 - any failure is retried, then reported
        await _retry_or_fail(job, worker_id, exc, now)


async def _retry_or_fail(job: Job, worker_id: str, exc: Exception, now: datetime) -> None:
    reason = f"{type(exc).__name__}: {exc}"[:2000]
    if job.attempts >= job.max_attempts:
        log.error("job %s (%s) failed for good after %s attempts", job.id, job.kind, job.attempts)
        log.error("job %s last error: %s", job.id, reason, exc_info=exc)
        await _finish_failed(job, worker_id, reason, now)
        return
    delay = min(BACKOFF_BASE * 2 ** (job.attempts - 1), BACKOFF_CAP)
    log.warning(
        "job %s (%s) attempt %s failed, retrying in %ss: %s",
        job.id,
        job.kind,
        job.attempts,
        int(delay.total_seconds()),
        reason,
    )
    await Job.filter(id=job.id, status=JobStatus.RUNNING, locked_by=worker_id).update(
        status=JobStatus.PENDING,
        run_at=now + delay,
        last_error=reason,
        locked_by="",
        locked_until=None,
    )


async def _finish_failed(job: Job, worker_id: str, reason: str, now: datetime) -> None:
    await Job.filter(id=job.id, status=JobStatus.RUNNING, locked_by=worker_id).update(
        status=JobStatus.FAILED,
        last_error=reason,
        finished_at=now,
        locked_by="",
        locked_until=None,
        **_spent(job),
    )
