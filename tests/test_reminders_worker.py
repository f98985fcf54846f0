"""Real ``cabinet worker`` processes sending reminders: two at once on PostgreSQL never send
anything twice, and one killed with SIGKILL mid-run loses nothing when it restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from models.accounts import Practice, StaffRole, StaffUser
from models.agenda import Appointment, Location, Service
from models.clients import Client
from models.jobs import Job, JobStatus
from models.notifications import OutboxMessage
from server.actions import reminders
from server.db import atomic
from server.settings import Settings
from tests.conftest import IS_POSTGRES

CABINET = str(Path(sys.executable).with_name("cabinet"))


async def seed(count: int, due: bool = True) -> list[str]:
    """``count`` upcoming appointments, each with an email reminder that is due now."""
    practice = await Practice.create(name="Worker practice")
    therapist = await StaffUser.create(
        practice=practice,
        email="t@worker.example",
        password_hash="x",
        first_name="Tess",
        last_name="Worker",
        role=StaffRole.THERAPIST,
    )
    service = await Service.create(
        practice=practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    location = await Location.create(practice=practice, name="Office")
    start = datetime.now(UTC) + timedelta(days=2)
    clients = await Client.bulk_create(
        [
            Client(
                practice=practice,
                first_name=f"C{i}",
                last_name="Client",
                email=f"c{i}@worker.example",
                reminder_email_hours=24,
                therapist=therapist,
            )
            for i in range(count)
        ]
    )
    clients = await Client.filter(practice_id=practice.id).order_by("id")
    await Appointment.bulk_create(
        [
            Appointment(
                practice=practice,
                practitioner=therapist,
                client=c,
                service=service,
                location=location,
                starts_at=start + timedelta(minutes=i),
                ends_at=start + timedelta(minutes=i + 50),
            )
            for i, c in enumerate(clients)
        ]
    )
    async with atomic():
        for appointment in await Appointment.filter(practice_id=practice.id):
            await reminders.sync_appointment(appointment)
    if due:
        await make_due()
    keys = [str(k) for k in await Job.all().values_list("key", flat=True)]
    assert len(keys) == count
    return keys


async def make_due() -> None:
    # The reminders fall due tomorrow: make them due now, as if the day had passed.
    await Job.all().update(run_at=datetime.now(UTC) - timedelta(seconds=1))


def start_worker(settings: Settings, tmp: Path, name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "CABINET_DATA_DIR": str(tmp),
        "SECRET_KEY": "test-secret-key",
        "CABINET_ENV": "test",
        "PUBLIC_URL": "http://testserver",
    }
    env.pop("SMTP_URL", None)
    log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([CABINET, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)


async def wait_for(predicate: Any, within: float = 90) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def assert_each_sent_once(keys: list[str]) -> None:
    assert await Job.filter(status=JobStatus.DONE).count() == len(keys)
    rows = await OutboxMessage.filter(purpose="reminder").values_list("to", flat=True)
    assert len(rows) == len(keys)
    assert len(set(rows)) == len(keys)  # one per client: nothing twice, nothing lost


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_two_worker_processes_share_the_reminders_without_duplicates(
    db: None, settings: Settings, tmp_path: Path
) -> None:
    if not IS_POSTGRES:
        pytest.skip("several worker processes share a queue on PostgreSQL (SKIP LOCKED)")
    keys = await seed(400, due=False)
    workers = [start_worker(settings, tmp_path, f"w{i}") for i in range(2)]
    try:

        async def both_running() -> bool:
            return all(
                "Cabinet worker running." in (tmp_path / f"w{i}.log").read_text() for i in range(2)
            )

        await wait_for(both_running)
        await make_due()

        async def all_done() -> bool:
            return await Job.filter(status=JobStatus.DONE).count() == len(keys)

        await wait_for(all_done)
    finally:
        for w in workers:
            stop(w)
    await assert_each_sent_once(keys)
    # Both took part (batches of 50 out of 400, claimed past each other's locks).
    by = {str(b) for b in await Job.all().values_list("locked_by", flat=True)}
    assert len(by) == 2


async def test_a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(
    db: None, settings: Settings, tmp_path: Path
) -> None:
    keys = await seed(300)
    first = start_worker(settings, tmp_path, "first")
    try:

        async def some_done() -> bool:
            return await Job.filter(status=JobStatus.DONE).count() > 0

        await wait_for(some_done)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        stop(first)
    done_at_kill = await Job.filter(status=JobStatus.DONE).count()
    assert 0 < done_at_kill  # killed with work left, unless it was very fast
    # The dead worker's claimed jobs wait for their lease to run out (two minutes):
    # fast-forward that wait instead of sleeping through it.
    await Job.filter(status=JobStatus.RUNNING).update(
        locked_until=datetime.now(UTC) - timedelta(seconds=1)
    )
    second = start_worker(settings, tmp_path, "second")
    try:

        async def all_done() -> bool:
            return await Job.filter(status=JobStatus.DONE).count() == len(keys)

        await wait_for(all_done)
    finally:
        stop(second)
    await assert_each_sent_once(keys)
