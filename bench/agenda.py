"""How fast the agenda draws a busy week, and how fast free slots are found.

``python bench/agenda.py`` seeds a fresh SQLite database (or ``--database-url``) with a
practice of 20 practitioners working weekdays 8:00-19:00 and 1,000 appointments in one week
(plus two months of appointments for the first practitioner), then times:

- ``GET /api/agenda?start=<monday>&days=7`` for the front desk, through the whole app
  (session, access, queries, JSON), in-process with httpx; target p95 < 100 ms;
- ``slots_for`` (availability, time off and bookings loaded, then ``free_slots``) for one
  practitioner and one service over 60 days; target p95 < 50 ms.

Rows are inserted directly (not through the actions), so seeding takes seconds, not minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time as clock
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from models.accounts import Practice, StaffRole, StaffUser  # noqa: E402
from models.agenda import Appointment, Availability, Location, Service  # noqa: E402
from models.clients import Client  # noqa: E402
from server import db as dbmod  # noqa: E402
from server.actions import agenda  # noqa: E402
from server.app import create_app  # noqa: E402
from server.auth.passwords import hash_password  # noqa: E402
from server.queries.agenda import slots_for  # noqa: E402
from server.settings import Settings, set_settings  # noqa: E402

PASSWORD = "bench-password-2026"
PARIS = ZoneInfo("Europe/Paris")
MONDAY = date(2027, 3, 1)
PRACTITIONERS = 20
PER_WEEK = 1000
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


async def seed() -> dict[str, Any]:
    practice = await Practice.create(name="Bench practice", time_zone="Europe/Paris")
    cats = await agenda.ensure_builtin_categories(practice)
    password = await hash_password(PASSWORD)
    desk = await StaffUser.create(
        practice=practice,
        email="desk@bench.example",
        password_hash=password,
        first_name="Front",
        last_name="Desk",
        role=StaffRole.OFFICE_ADMIN,
    )
    await StaffUser.bulk_create(
        [
            StaffUser(
                practice=practice,
                email=f"p{i}@bench.example",
                password_hash=password,
                first_name=f"P{i}",
                last_name="Practitioner",
                role=StaffRole.THERAPIST,
            )
            for i in range(PRACTITIONERS)
        ]
    )
    people = await StaffUser.filter(role=StaffRole.THERAPIST).order_by("id")
    await Client.bulk_create(
        [
            Client(
                practice=practice,
                first_name=f"Client{i}",
                last_name="Bench",
                search_name=f"client{i} bench",
                therapist=people[i % PRACTITIONERS],
            )
            for i in range(400)
        ]
    )
    clients = await Client.all().order_by("id")
    rooms = [
        await Location.create(practice=practice, name="Room A"),
        await Location.create(practice=practice, name="Room B"),
    ]
    talk = await Service.create(
        practice=practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    video = await Service.create(
        practice=practice,
        name="Visio",
        duration_minutes=50,
        price=Decimal("70"),
        category=cats[agenda.BuiltinCategory.TELECONSULTATION],
    )
    for n, person in enumerate(people):
        for weekday in range(5):
            a = await Availability.create(
                practitioner=person,
                location=rooms[n % 2],
                weekday=weekday,
                start_minute=8 * 60,
                end_minute=19 * 60,
            )
            await a.services.add(talk, video)

    rows: list[Appointment] = []

    def book(person: StaffUser, day: date, k: int, client: Client) -> None:
        start = datetime.combine(day, time(8), PARIS).astimezone(UTC) + timedelta(minutes=50 * k)
        rows.append(
            Appointment(
                practice=practice,
                practitioner=person,
                client=client,
                service=talk if k % 3 else video,
                location=rooms[0] if k % 3 else None,
                starts_at=start,
                ends_at=start + timedelta(minutes=50),
            )
        )

    # The week: 1,000 appointments, 10 a day for each of the 20 practitioners.
    per_day = PER_WEEK // (PRACTITIONERS * 5)
    for n, person in enumerate(people):
        for d in range(5):
            for k in range(per_day):
                book(person, MONDAY + timedelta(days=d), k, clients[(n * 50 + d * 10 + k) % 400])
    # Two more months for the first practitioner, so the 60-day search has bookings to skip.
    for d in range(7, 63):
        day = MONDAY + timedelta(days=d)
        if day.weekday() < 5:
            for k in range(0, per_day, 2):
                book(people[0], day, k, clients[k])
    await Appointment.bulk_create(rows, batch_size=500)
    return {"desk": desk, "first": people[0], "talk": talk, "appointments": len(rows)}


def summary(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[max(0, int(round(len(ms) * 0.95)) - 1)]
    return f"p50 {statistics.median(ms):6.1f} ms   p95 {p95:6.1f} ms   (n={len(ms)})"


async def timed(fn: Callable[[], Awaitable[Any]], runs: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        await fn()
    out = []
    for _ in range(runs):
        started = clock.perf_counter()
        await fn()
        out.append(clock.perf_counter() - started)
    return out


async def main(database_url: str | None, runs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cabinet-bench-agenda-"))
    url = database_url or f"sqlite://{tmp / 'bench.sqlite3'}"
    settings = Settings(
        env="test",
        data_dir=tmp,
        database_url=url,
        secret_key="bench-secret",
        public_url="http://bench",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        embedded_worker=False,
    )
    set_settings(settings)
    await dbmod.migrate(url)
    await dbmod.close_db()
    await dbmod.init_db(url)
    started = clock.perf_counter()
    seeded = await seed()
    print(
        f"seeded {PRACTITIONERS} practitioners, {seeded['appointments']} appointments "
        f"in {clock.perf_counter() - started:.1f} s on {url.split(':', 1)[0]}"
    )

    app = create_app(settings, manage_db=False)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        r = await http.post(
            "/api/session", json={"email": seeded["desk"].email, "password": PASSWORD}
        )
        r.raise_for_status()

        async def week() -> None:
            r = await http.get(f"/api/agenda?start={MONDAY}&days=7")
            r.raise_for_status()
            assert len(r.json()["appointments"]) == PER_WEEK

        print(f"GET /api/agenda, a week of 20 practitioners:  {summary(await timed(week, runs))}")

    first, talk = seeded["first"], seeded["talk"]

    async def sixty_days() -> None:
        found = await slots_for(
            first.id,
            talk.id,
            timedelta(minutes=talk.duration_minutes),
            PARIS,
            MONDAY,
            MONDAY + timedelta(days=59),
            now=LONG_AGO,
        )
        assert found

    print(f"free slots, one practitioner over 60 days:    {summary(await timed(sixty_days, runs))}")
    await dbmod.close_db()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="a migrated, empty database (default: SQLite)")
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.database_url, args.runs))
