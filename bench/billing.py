"""How fast batch billing is: 1,000 consultations into per-client invoices.

``python bench/billing.py`` seeds a fresh SQLite database (or ``--database-url``) with one
practice, five therapists, 100 clients (a fee discount for one in four), and per client 10
past appointments with their consultations plus 10 consultations without an appointment
(billed by the practitioner's default services or the practice's first service). It then
times ``do_bill`` (the action the batch billing page calls) on 1,000 consultations, one
invoice per client: once as drafts, once finalized at once (numbers taken one by one).
Target: under 5 seconds for each on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time as clock
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.accounts import Practice, StaffRole, StaffUser  # noqa: E402
from models.agenda import (  # noqa: E402
    Appointment,
    Attendance,
    DiscountKind,
    Service,
    ServiceDiscount,
)
from models.billing import Consultation, DefaultService, Invoice, InvoiceLine  # noqa: E402
from models.clients import Client  # noqa: E402
from server import db as dbmod  # noqa: E402
from server.actions import billing  # noqa: E402
from server.auth.sessions import Caller  # noqa: E402
from server.settings import Settings, set_settings  # noqa: E402

CLIENTS = 100
PER_CLIENT = 10  # with an appointment; as many again without


async def seed() -> tuple[Practice, StaffUser]:
    practice = await Practice.create(name="Bench practice")
    owner = await StaffUser.create(
        practice=practice,
        email="owner@bench.example",
        password_hash="x",
        first_name="Olivia",
        last_name="Owner",
        role=StaffRole.OWNER,
    )
    therapists = [
        await StaffUser.create(
            practice=practice,
            email=f"t{i}@bench.example",
            password_hash="x",
            first_name="Thérèse",
            last_name=f"Number{i}",
            role=StaffRole.THERAPIST,
        )
        for i in range(5)
    ]
    services = [
        await Service.create(
            practice=practice, name=name, duration_minutes=50, price=Decimal(price)
        )
        for name, price in (("Individual", "70.00"), ("Couple", "95.00"), ("Report", "40.00"))
    ]
    await DefaultService.create(practitioner=therapists[0], service=services[2])
    await Client.bulk_create(
        [
            Client(
                practice=practice,
                first_name="Client",
                last_name=f"Number{i:03d}",
                therapist=therapists[i % 5],
                email=f"c{i}@bench.example",
            )
            for i in range(CLIENTS)
        ]
    )
    clients = await Client.filter(practice_id=practice.id).order_by("id")
    await ServiceDiscount.bulk_create(
        [
            ServiceDiscount(
                client=c, service=services[0], kind=DiscountKind.PERCENT, value=Decimal("20")
            )
            for c in clients[::4]
        ]
    )
    now = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    appointments = []
    for i, client in enumerate(clients):
        for k in range(PER_CLIENT):
            start = now - timedelta(days=2 + k * 7)
            appointments.append(
                Appointment(
                    practice=practice,
                    practitioner=therapists[i % 5],
                    client=client,
                    service=services[k % 2],
                    starts_at=start,
                    ends_at=start + timedelta(minutes=50),
                    attendance=Attendance.ATTENDED,
                )
            )
    await Appointment.bulk_create(appointments, batch_size=500)
    tz = ZoneInfo(practice.time_zone)
    rows = []
    for a in await Appointment.filter(practice_id=practice.id):
        rows.append(
            Consultation(
                practice=practice,
                client_id=a.client_id,  # type: ignore[attr-defined]
                practitioner_id=a.practitioner_id,  # type: ignore[attr-defined]
                appointment_id=a.id,
                on_date=a.starts_at.astimezone(tz).date(),
                title="Session",
            )
        )
        rows.append(
            Consultation(
                practice=practice,
                client_id=a.client_id,  # type: ignore[attr-defined]
                practitioner_id=a.practitioner_id,  # type: ignore[attr-defined]
                on_date=a.starts_at.astimezone(tz).date() - timedelta(days=1),
                title="Phone session",
            )
        )
    await Consultation.bulk_create(rows, batch_size=500)
    return practice, owner


async def main(database_url: str | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cabinet-bench-billing-"))
    url = database_url or f"sqlite://{tmp / 'bench.sqlite3'}"
    settings = Settings(
        env="test",
        data_dir=tmp,
        database_url=url,
        secret_key="bench-secret",
        public_url="http://bench",
        embedded_worker=False,
    )
    set_settings(settings)
    await dbmod.migrate(url)
    await dbmod.close_db()
    await dbmod.init_db(url)
    practice, owner = await seed()
    actor = Caller.acting_as(owner)
    all_ids = (
        await Consultation.filter(practice_id=practice.id)
        .order_by("id")
        .values_list("id", flat=True)
    )
    halves = [all_ids[0::2], all_ids[1::2]]  # each: 5 with and 5 without appointment per client
    print(f"seeded {len(all_ids)} consultations of {CLIENTS} clients on {url.split(':')[0]}")
    for ids, finalize in zip(halves, (False, True), strict=True):
        # What the handler does: fetch the selection, then call the action.
        started = clock.perf_counter()
        consultations = await Consultation.filter(id__in=list(ids))
        invoices = await billing.do_bill(
            actor,
            practice,
            None,
            consultations,
            method=billing.BillingMethod.PER_CLIENT,
            payer=billing.Payer(),
            finalize=finalize,
        )
        elapsed = clock.perf_counter() - started
        lines = await InvoiceLine.filter(invoice_id__in=[i.id for i in invoices]).count()
        what = "finalized" if finalize else "drafts"
        print(
            f"batch billing {len(consultations)} consultations -> {len(invoices)} per-client "
            f"invoices ({lines} lines, {what}): {elapsed:.2f} s  (target < 5 s)"
        )
    numbers = await Invoice.filter(number__not_isnull=True).count()
    print(f"numbers given: {numbers}")
    await dbmod.close_db()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    asyncio.run(main(args.database_url))
