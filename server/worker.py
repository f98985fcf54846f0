"""The background worker: runs due jobs, delivers the outbox and prunes old bookkeeping.

By default it runs inside the web process (the embedded default); ``cabinet worker`` runs it
as a process of its own (the Procfile's ``worker:``), and several may run at once: each job
is claimed with a lease (``server/jobs.py``) and each outbox message with a conditional
update before it is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from models.accounts import AccountToken, AuthSession, LoginAttempt
from models.jobs import Job, JobStatus
from models.realtime import RealtimeEvent
from server import jobs
from server.actions.form_schedules import send_due_forms
from server.actions.measures import send_due_measures
from server.mail import deliver_due
from server.sms import deliver_due_sms

log = logging.getLogger("cabinet.worker")

T = TypeVar("T")

# The modules whose job handlers the worker runs (they register with @jobs.handler on
# import). A job kind without a handler fails at once, loudly, rather than waiting forever.
JOB_MODULES: tuple[str, ...] = (
    "server.actions.accounts",
    "server.actions.offers",
    "server.actions.reminder_jobs",
)

JOB_BATCH = 50


def load_job_handlers() -> None:
    import importlib

    for name in JOB_MODULES:
        importlib.import_module(name)


# Events older than this are gone; a tab that was away longer reloads instead of resuming.
EVENT_RETENTION = timedelta(days=7)


async def prune() -> None:
    now = datetime.now(UTC)
    await RealtimeEvent.filter(created_at__lt=now - EVENT_RETENTION).delete()
    await LoginAttempt.filter(created_at__lt=now - timedelta(days=30)).delete()
    await AuthSession.filter(expires_at__lt=now - timedelta(days=30)).delete()
    await AccountToken.filter(expires_at__lt=now - timedelta(days=30)).delete()
    # Finished jobs are bookkeeping (what was sent is on the client's Logs tab); failed ones
    # stay for someone to look at.
    await Job.filter(
        status__in=[JobStatus.DONE, JobStatus.CANCELLED], updated_at__lt=now - timedelta(days=30)
    ).delete()


async def _stage(name: str, work: Callable[[], Awaitable[T]]) -> T | None:
    """Run one stage of a tick; a failure is logged with the stage's name and the next
    stage runs all the same (a bad measure schedule must not hold back every SMS)."""
    try:
        return await work()
    except Exception:  # noqa: BLE001 - keep the worker alive; the next tick retries
        log.exception("worker stage %s failed", name)
        return None


async def run_worker(stop: asyncio.Event, interval: float = 1.0) -> None:
    load_job_handlers()
    last_prune = 0.0
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        # A full batch means more is due: go again at once instead of sleeping, so a
        # minute's worth of reminders does not trickle out one batch a second.
        claimed = await _stage("jobs", lambda: jobs.run_due(limit=JOB_BATCH))
        busy = claimed is not None and claimed >= JOB_BATCH
        await _stage("email", deliver_due)
        await _stage("measures", send_due_measures)
        await _stage("sms", deliver_due_sms)
        await _stage("forms", send_due_forms)
        if loop.time() - last_prune > 3600:
            await _stage("prune", prune)
            last_prune = loop.time()
        if busy:
            continue
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
