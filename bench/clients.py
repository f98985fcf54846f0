"""How fast the client list answers with 20,000 clients.

``python bench/clients.py`` seeds a fresh SQLite database (or ``--database-url``) with one
practice of 20,000 clients (accented names, four statuses' worth of variety, tags, ten
therapists), then times ``GET /api/clients`` through the whole app (session, access,
query, JSON) as the front desk would use it: the first page, an accent-free name search,
a two-word search, a status + therapist filter, a tag filter, and a page deep in the list.
Target: p95 under 100 ms for each.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time as clock
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bench.agenda import summary, timed  # noqa: E402
from models.accounts import Practice, StaffRole, StaffUser  # noqa: E402
from models.clients import Client, ClientStatus, Tag, search_key  # noqa: E402
from server import db as dbmod  # noqa: E402
from server.app import create_app  # noqa: E402
from server.auth.passwords import hash_password  # noqa: E402
from server.settings import Settings, set_settings  # noqa: E402

PASSWORD = "bench-password-2026"
CLIENTS = 20_000
FIRST = [
    "Hélène",
    "Marc",
    "Amira",
    "Julien",
    "Sophie",
    "Lucas",
    "Chloé",
    "Noah",
    "Emma",
    "Zoé",
    "Léa",
    "Théo",
    "Inès",
    "Gaël",
    "Maëlle",
    "Jérôme",
    "Anaïs",
    "François",
    "Éloïse",
    "Aurélien",
]
LAST = [
    "Dubois",
    "Lefèvre",
    "Benali",
    "Moreau",
    "Martin",
    "Bernard",
    "Petit",
    "Roux",
    "Fournier",
    "Girard",
    "Bonnet",
    "Lambert",
    "Mercier",
    "Faure",
    "Rousseau",
    "Garnier",
    "Chevalier",
    "Müller",
    "Nguyễn",
    "Da Silva",
]


async def seed() -> dict[str, Any]:
    rng = random.Random(7)
    practice = await Practice.create(name="Bench practice")
    password = await hash_password(PASSWORD)
    desk = await StaffUser.create(
        practice=practice,
        email="desk@bench.example",
        password_hash=password,
        first_name="Front",
        last_name="Desk",
        role=StaffRole.OFFICE_ADMIN,
    )
    therapists = [
        await StaffUser.create(
            practice=practice,
            email=f"t{i}@bench.example",
            password_hash=password,
            first_name=f"T{i}",
            last_name="Therapist",
            role=StaffRole.THERAPIST,
        )
        for i in range(10)
    ]
    statuses = [ClientStatus.ACTIVE] * 6 + [ClientStatus.LEAD] * 2 + [ClientStatus.ARCHIVED] * 2
    rows = []
    for i in range(CLIENTS):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        rows.append(
            Client(
                practice=practice,
                first_name=first,
                last_name=f"{last}{i % 97 or ''}",
                search_name=search_key(first, f"{last}{i % 97 or ''}"),
                status=rng.choice(statuses),
                therapist=rng.choice(therapists),
            )
        )
    await Client.bulk_create(rows, batch_size=2000)
    tag = await Tag.create(practice=practice, name="couple")
    ids = await Client.all().limit(CLIENTS // 20).values_list("id", flat=True)
    await tag.clients.add(*await Client.filter(id__in=ids))
    return {"desk": desk, "therapist": therapists[0], "tag": tag}


async def main(database_url: str | None, runs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cabinet-bench-clients-"))
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
        f"seeded {CLIENTS} clients in {clock.perf_counter() - started:.1f} s on {url.split(':', 1)[0]}"
    )
    app = create_app(settings, manage_db=False)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        r = await http.post(
            "/api/session", json={"email": seeded["desk"].email, "password": PASSWORD}
        )
        r.raise_for_status()
        cases = {
            "first page": "",
            "search 'helene' (finds Hélène)": "q=helene",
            "search 'dub hel'": "q=dub%20hel",
            "status + therapist": f"status=lead&therapist={seeded['therapist'].id}",
            "tag": f"tag={seeded['tag'].id}",
            "page 200": "page=200",
        }
        for name, query in cases.items():

            async def get(query: str = query) -> None:
                r = await http.get(f"/api/clients?{query}")
                r.raise_for_status()

            r = await http.get(f"/api/clients?{query}")
            total = r.json()["total"]
            print(f"  {name:<32} {summary(await timed(get, runs))}   ({total} match)")
    await dbmod.close_db()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.database_url, args.runs))
