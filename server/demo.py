"""The demo practice created on first run of the embedded default (``cabinet demo``)."""

from __future__ import annotations

from models.accounts import Practice, StaffRole, StaffUser
from models.clients import Client
from server.actions import accounts, clients
from server.auth.passwords import hash_password

DEMO_PASSWORD = "cabinet-demo-2026"

CLIENTS = [
    ("Hélène", "Dubois"),
    ("Marc", "Lefèvre"),
    ("Amira", "Benali"),
    ("Julien", "Moreau"),
    ("Sophie", "Martin"),
    ("Lucas", "Bernard"),
    ("Chloé", "Petit"),
    ("Noah", "Roux"),
    ("Emma", "Fournier"),
    ("Hugo", "Girard"),
    ("Léa", "Bonnet"),
    ("Théo", "Lambert"),
]


async def demo_exists() -> bool:
    return await Practice.exists()


async def create_demo() -> list[tuple[str, str, str]]:
    """Create the demo practice; returns (role, email, password) for the sign-in banner."""
    practice = await Practice.create(name="Cabinet Demo", time_zone="Europe/Paris", locale="fr")
    logins: list[tuple[str, str, str]] = []

    async def staff(email: str, first: str, last: str, role: StaffRole, **kw: object) -> StaffUser:
        user = await accounts.do_create_staff_user(
            None,
            practice,
            email=email,
            first_name=first,
            last_name=last,
            role=role,
            password=DEMO_PASSWORD,
            **kw,  # type: ignore[arg-type]
        )
        logins.append((role.value, email, DEMO_PASSWORD))
        return user

    await staff("owner@demo.cabinet", "Claire", "Rousseau", StaffRole.OWNER)
    alice = await staff("alice@demo.cabinet", "Alice", "Mercier", StaffRole.THERAPIST)
    bruno = await staff(
        "bruno@demo.cabinet", "Bruno", "Garnier", StaffRole.THERAPIST, supervisor=alice
    )
    await staff(
        "desk@demo.cabinet", "Denise", "Faure", StaffRole.OFFICE_ADMIN, portal_enabled=False
    )

    password_hash = await hash_password(DEMO_PASSWORD)
    for i, (first, last) in enumerate(CLIENTS):
        email = f"{first.lower().replace('é', 'e').replace('è', 'e')}.{last.lower().replace('è', 'e')}@demo.cabinet"
        therapist = alice if i % 2 == 0 else bruno
        client: Client = await clients.do_create_client(
            None, practice, first_name=first, last_name=last, email=email, therapist=therapist
        )
        await clients.do_create_portal_account_with_password(None, client, email, password_hash)
        if i < 2:
            logins.append(("client", email, DEMO_PASSWORD))
    return logins
