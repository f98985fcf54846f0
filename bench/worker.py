"""How fast the worker sends reminders, against 10,000 upcoming appointments.

``python bench/worker.py`` seeds a fresh SQLite database (or ``--database-url``, e.g.
``postgres://postgres@127.0.0.1:5432/bench_reminders``: its public schema is dropped) with
a practice of 20 practitioners and 10,000 appointments (``--appointments``) spread over the
next four weeks, each client with an email reminder and one in four with an SMS reminder
too, then:

1. schedules the reminders of ``--scheduled`` appointments through ``sync_appointment``, one
   transaction each as the agenda does on booking (timed), and inserts the same job rows
   for the others in bulk;
2. finds the busiest minute (the most reminders falling due in one minute);
3. makes ``--jobs`` reminders due at once and runs ``jobs.run_due`` in batches as the worker
   does, timing it: each job loads the appointment, client, circle, template, renders and
   queues the email or SMS (credits taken) in its own transaction.

It prints jobs per second and how long the busiest minute takes to send: below 60 s the
worker keeps up. Several workers on PostgreSQL add up (``--workers``, run concurrently in
this process, each with its own worker id).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time as clock
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.accounts import Practice, StaffRole, StaffUser  # noqa: E402
from models.agenda import Appointment, Location, Service  # noqa: E402
from models.clients import Client, PhoneNumber  # noqa: E402
from models.jobs import Job, JobStatus  # noqa: E402
from models.notifications import OutboxMessage  # noqa: E402
from models.reminders import MessagingSettings  # noqa: E402
from server import db as dbmod  # noqa: E402
from server import jobs  # noqa: E402
from server.actions import reminders  # noqa: E402
from server.db import atomic  # noqa: E402
from server.settings import Settings, set_settings  # noqa: E402
from server.worker import load_job_handlers  # noqa: E402

PRACTITIONERS = 20
APPOINTMENTS = 10_000


async def seed(appointments: int) -> int:
    practice = await Practice.create(name="Bench practice", time_zone="Europe/Paris")
    # No quiet hours: the bench measures sending, not waiting for the morning.
    await MessagingSettings.create(
        practice=practice, sms_credits=1_000_000, quiet_start_minute=0, quiet_end_minute=0
    )
    staff = [
        await StaffUser.create(
            practice=practice,
            email=f"p{i}@bench.example",
            password_hash="x",
            first_name="Pat",
            last_name=f"Bench{i}",
            role=StaffRole.THERAPIST,
        )
        for i in range(PRACTITIONERS)
    ]
    service = await Service.create(
        practice=practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    location = await Location.create(practice=practice, name="Office", address="1 rue A")
    await Client.bulk_create(
        [
            Client(
                practice=practice,
                first_name=f"C{i}",
                last_name="Bench",
                email=f"c{i}@bench.example",
                reminder_email_hours=24,
                reminder_sms_hours=2 if i % 4 == 0 else None,
                therapist=staff[i % PRACTITIONERS],
            )
            for i in range(appointments)
        ],
        batch_size=1000,
    )
    clients = await Client.filter(practice_id=practice.id).order_by("id")
    await PhoneNumber.bulk_create(
        [
            PhoneNumber(client=c, number=f"+336{i:08d}", is_primary=True, for_sms=True)
            for i, c in enumerate(clients)
            if i % 4 == 0
        ],
        batch_size=1000,
    )
    # Working hours 8:00-19:00 on the next 28 days, hourly per practitioner.
    base = (datetime.now(UTC) + timedelta(days=2)).replace(
        hour=7, minute=0, second=0, microsecond=0
    )
    rows = []
    for i, c in enumerate(clients):
        slot = i // PRACTITIONERS
        day, hour = divmod(slot, 11)
        start = base + timedelta(days=day % 28, hours=hour)
        rows.append(
            Appointment(
                practice=practice,
                practitioner=staff[i % PRACTITIONERS],
                client=c,
                service=service,
                location=location,
                starts_at=start,
                ends_at=start + timedelta(minutes=50),
            )
        )
    await Appointment.bulk_create(rows, batch_size=1000)
    return practice.id


async def run(url: str, jobs_due: int, workers: int, scheduled: int, appointments: int) -> None:
    set_settings(Settings(env="bench", database_url=url, secret_key="bench", public_url="http://b"))
    load_job_handlers()  # as ``cabinet worker`` does
    if url.startswith("postgres"):
        from procs import fresh_schema

        await fresh_schema(url)
    await dbmod.migrate(url)
    await dbmod.close_db()
    await dbmod.init_db(url)
    try:
        t0 = clock.perf_counter()
        practice_id = await seed(appointments)
        print(f"seeded {appointments:,} appointments in {clock.perf_counter() - t0:.1f} s")
        t0 = clock.perf_counter()
        booked = await Appointment.filter(practice_id=practice_id).order_by("id")
        through, rest = booked[:scheduled], booked[scheduled:]
        for a in through:
            async with atomic():  # one transaction per booking, as in the agenda
                await reminders.sync_appointment(a)
        elapsed = clock.perf_counter() - t0
        print(
            f"scheduled the reminders of {len(through):,} appointments through "
            f"sync_appointment in {elapsed:.1f} s ({len(through) / elapsed:,.0f} appointments/s)"
        )
        # The others get the very rows sync_appointment writes, inserted in bulk so that
        # seeding stays short.
        sms = set(
            await Client.filter(practice_id=practice_id, reminder_sms_hours=2).values_list(
                "id", flat=True
            )
        )
        rows = []
        for a in rest:
            cid = a.client_id  # type: ignore[attr-defined]
            for channel, hours in (("email", 24), ("sms", 2)):
                if channel == "sms" and cid not in sms:
                    continue
                rows.append(
                    Job(
                        kind=reminders.REMINDER,
                        key=f"reminder:{a.id}:client-{cid}:{channel}",
                        payload={
                            "appointment": a.id,
                            "recipient": f"client-{cid}",
                            "channel": channel,
                        },
                        run_at=a.starts_at - timedelta(hours=hours),
                        practice_id=practice_id,
                    )
                )
        await Job.bulk_create(rows, batch_size=1000)
        total = await Job.filter(status=JobStatus.PENDING).count()
        print(f"{total:,} reminder jobs pending for {len(booked):,} appointments")
        minutes = Counter(
            r.replace(second=0, microsecond=0)
            for r in await Job.filter(status=JobStatus.PENDING).values_list("run_at", flat=True)
        )
        busiest = max(minutes.values())
        print(f"busiest minute: {busiest} reminders fall due at once")
        # Make the first ``jobs_due`` due now, as if their minute had come.
        ids = (
            await Job.filter(status=JobStatus.PENDING)
            .order_by("run_at")
            .limit(jobs_due)
            .values_list("id", flat=True)
        )
        now = datetime.now(UTC)
        await Job.filter(id__in=list(ids)).update(run_at=now - timedelta(seconds=1))

        async def worker(name: str) -> int:
            done = 0
            while n := await jobs.run_due(name, limit=50):
                done += n
            return done

        t0 = clock.perf_counter()
        done = sum(await asyncio.gather(*(worker(f"bench-{i}") for i in range(workers))))
        elapsed = clock.perf_counter() - t0
        queued = await OutboxMessage.all().count()
        failed = await Job.filter(status=JobStatus.FAILED).values_list("last_error", flat=True)
        if failed:
            # A rate of failures is no figure: say why, and stop.
            sys.exit(f"{len(failed):,} jobs failed, e.g. {failed[0]!r}")
        rate = done / elapsed
        print(
            f"worker x{workers}: {done:,} jobs in {elapsed:.2f} s = {rate:,.0f} jobs/s "
            f"({queued:,} emails and SMS queued)"
        )
        print(
            f"the busiest minute ({busiest} reminders) takes {busiest / rate:.2f} s to send: "
            + ("keeps up" if busiest / rate < 60 else "FALLS BEHIND")
        )
    finally:
        await dbmod.close_db()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--jobs", type=int, default=2000, help="reminders made due at once")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--scheduled",
        type=int,
        default=500,
        help="appointments whose reminders are scheduled through the action (timed)",
    )
    parser.add_argument("--appointments", type=int, default=APPOINTMENTS)
    args = parser.parse_args()
    url = args.database_url
    if not url:
        tmp = Path(tempfile.mkdtemp(prefix="cabinet-bench-worker-"))
        url = f"sqlite://{tmp / 'bench.sqlite3'}"
    print(f"database: {url.split('@')[-1]}")
    asyncio.run(run(url, args.jobs, args.workers, args.scheduled, args.appointments))


if __name__ == "__main__":
    main()
