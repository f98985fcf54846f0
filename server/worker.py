"""The background worker: delivers the outbox and prunes old bookkeeping.

By default it runs inside the web process (the embedded default); ``cabinet worker`` runs it
as a process of its own (the Procfile's ``worker:``), and several may run at once: each
piece of work is claimed with a conditional update before it is done.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from models.accounts import AccountToken, AuthSession, LoginAttempt
from models.realtime import RealtimeEvent
from server.actions.measures import send_due_measures
from server.mail import deliver_due

log = logging.getLogger("cabinet.worker")

# Events older than this are gone; a tab that was away longer reloads instead of resuming.
EVENT_RETENTION = timedelta(days=7)


async def prune() -> None:
    now = datetime.now(UTC)
    await RealtimeEvent.filter(created_at__lt=now - EVENT_RETENTION).delete()
    await LoginAttempt.filter(created_at__lt=now - timedelta(days=30)).delete()
    await AuthSession.filter(expires_at__lt=now - timedelta(days=30)).delete()
    await AccountToken.filter(expires_at__lt=now - timedelta(days=30)).delete()


async def run_worker(stop: asyncio.Event, interval: float = 1.0) -> None:
    last_prune = 0.0
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            await deliver_due()
            await send_due_measures()
            if loop.time() - last_prune > 3600:
                await prune()
                last_prune = loop.time()
        except Exception:  # noqa: BLE001 - keep the worker alive; the next tick retries
            log.exception("worker tick failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
