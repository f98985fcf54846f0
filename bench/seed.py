"""The practice a benchmark run talks in: who takes part, and in which conversations.

``plan()`` lays the practice out; ``python bench/seed.py`` writes it into a migrated database
(rows inserted directly, with one pre-computed argon2 hash for everyone, so the run does
not wait for thousands of password hashes) and prints the ids it got. The floor uses the
same layout with made-up ids.

Layout: a tenth of the people are therapists, the rest clients with a portal account. Each
client has a one-to-one conversation with their therapist; therapists also talk in office
groups of ``group_size``. Idle clients (the memory test) have an account and no conversation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Person:
    key: str  # the realtime recipient: "s:<staff id>" or "c:<portal account id>"
    realm: str  # "staff" or "portal"
    email: str


@dataclass
class Chat:
    id: int
    kind: str  # "client" or "office"
    members: list[str]  # recipient keys


@dataclass
class Population:
    people: list[Person] = field(default_factory=list)
    idle: list[Person] = field(default_factory=list)
    chats: list[Chat] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Population:
        data = json.loads(text)
        return cls(
            people=[Person(**p) for p in data["people"]],
            idle=[Person(**p) for p in data["idle"]],
            chats=[Chat(**c) for c in data["chats"]],
        )


@dataclass
class Plan:
    clients: int  # people with a socket in the active load (staff and portal together)
    idle: int = 0
    staff_share: float = 0.1
    group_size: int = 6

    @property
    def staff(self) -> int:
        return max(2, round(self.clients * self.staff_share))

    @property
    def portal(self) -> int:
        return max(1, self.clients - self.staff)

    def groups(self) -> list[list[int]]:
        """Office groups as lists of staff indexes, as even as possible."""
        count = max(1, math.ceil(self.staff / self.group_size))
        return [list(range(g, self.staff, count)) for g in range(count)]


def floor_population(plan: Plan) -> Population:
    """The same layout without a database: ids are positions."""
    people = [Person(f"s:{i + 1}", "staff", f"staff{i}@bench.cabinet") for i in range(plan.staff)]
    clients = [
        Person(f"c:{i + 1}", "portal", f"client{i}@bench.cabinet") for i in range(plan.portal)
    ]
    idle = [
        Person(f"c:{plan.portal + i + 1}", "portal", f"idle{i}@bench.cabinet")
        for i in range(plan.idle)
    ]
    chats = [
        Chat(i + 1, "client", [people[i % plan.staff].key, c.key]) for i, c in enumerate(clients)
    ]
    for g, members in enumerate(plan.groups()):
        chats.append(Chat(len(clients) + g + 1, "office", [people[i].key for i in members]))
    return Population(people + clients, idle, chats)


async def seed(database_url: str, plan: Plan, password_hash: str) -> Population:
    """Insert the practice into a migrated, empty database."""
    from tortoise import Tortoise

    from models.accounts import PortalAccount, Practice, StaffRole, StaffUser
    from models.clients import Client
    from models.messaging import Conversation, ConversationKind, Participant, ParticipantRole
    from models.realtime import RealtimeCursor
    from server.db import tortoise_config

    await Tortoise.init(config=tortoise_config(database_url))
    try:
        now = datetime.now(UTC)
        practice = await Practice.create(name="Bench practice")
        await StaffUser.bulk_create(
            [
                StaffUser(
                    practice_id=practice.id,
                    email=f"staff{i}@bench.cabinet",
                    password_hash=password_hash,
                    first_name="Therapist",
                    last_name=f"N{i}",
                    role=StaffRole.OWNER if i == 0 else StaffRole.THERAPIST,
                    portal_enabled=True,
                )
                for i in range(plan.staff)
            ],
            batch_size=500,
        )
        staff_id = dict(await StaffUser.all().values_list("email", "id"))
        staff_ids = [int(staff_id[f"staff{i}@bench.cabinet"]) for i in range(plan.staff)]

        emails = [f"client{i}@bench.cabinet" for i in range(plan.portal)]
        emails += [f"idle{i}@bench.cabinet" for i in range(plan.idle)]
        await Client.bulk_create(
            [
                Client(
                    practice_id=practice.id,
                    first_name="Client",
                    last_name=f"N{i}",
                    search_name=f"client n{i}",
                    email=email,
                    therapist_id=staff_ids[i % plan.staff],
                )
                for i, email in enumerate(emails)
            ],
            batch_size=500,
        )
        client_id = dict(await Client.all().values_list("email", "id"))
        await PortalAccount.bulk_create(
            [
                PortalAccount(
                    client_id=client_id[email],
                    email=email,
                    password_hash=password_hash,
                    is_active=True,
                    invited_at=now,
                    activated_at=now,
                )
                for email in emails
            ],
            batch_size=500,
        )
        account_id = dict(await PortalAccount.all().values_list("email", "id"))

        staff = [
            Person(f"s:{staff_ids[i]}", "staff", f"staff{i}@bench.cabinet")
            for i in range(plan.staff)
        ]
        clients = [Person(f"c:{account_id[e]}", "portal", e) for e in emails[: plan.portal]]
        idle = [Person(f"c:{account_id[e]}", "portal", e) for e in emails[plan.portal :]]

        # Conversations: one per client with their therapist, then the office groups.
        layout: list[tuple[str, list[int], str | None]] = []  # (kind, staff idx, client email)
        for i, address in enumerate(emails[: plan.portal]):
            layout.append(("client", [i % plan.staff], address))
        for members in plan.groups():
            layout.append(("office", members, None))
        await Conversation.bulk_create(
            [
                Conversation(
                    practice_id=practice.id,
                    kind=ConversationKind(kind),
                    subject=f"bench-{n}",
                    group_name=f"Office group {n}" if kind == "office" else None,
                    client_id=client_id[owner] if owner else None,
                    created_by_id=staff_ids[members[0]],
                    last_activity_at=now,
                )
                for n, (kind, members, owner) in enumerate(layout)
            ],
            batch_size=500,
        )
        conversation_id = dict(await Conversation.all().values_list("subject", "id"))
        participants: list[Participant] = []
        chats: list[Chat] = []
        for n, (kind, members, owner) in enumerate(layout):
            cid = int(conversation_id[f"bench-{n}"])
            keys = []
            for m in members:
                participants.append(
                    Participant(
                        conversation_id=cid,
                        role=ParticipantRole.STAFF,
                        staff_user_id=staff_ids[m],
                        display_name=f"Therapist N{m}",
                    )
                )
                keys.append(staff[m].key)
            if owner is not None:
                participants.append(
                    Participant(
                        conversation_id=cid,
                        role=ParticipantRole.CLIENT,
                        portal_account_id=account_id[owner],
                        display_name=f"Client {owner}",
                    )
                )
                keys.append(f"c:{account_id[owner]}")
            chats.append(Chat(cid, kind, keys))
        await Participant.bulk_create(participants, batch_size=500)
        # Each participant's realtime cursor, as creating the conversation through the app
        # gives them (its event): a send then finds every recipient's row, as in use.
        recipients = sorted({key for chat in chats for key in chat.members})
        await RealtimeCursor.bulk_create(
            [RealtimeCursor(recipient=key, last_seq=0) for key in recipients], batch_size=500
        )
        return Population(staff + clients, idle, chats)
    finally:
        await Tortoise.close_connections()


def main() -> None:
    # Run as a script, bench/ comes first on sys.path and its realtime.py would shadow the
    # realtime package: import the app's modules from the repository root instead.
    here = Path(__file__).resolve().parent
    sys.path[:] = [str(here.parent)] + [p for p in sys.path if Path(p or ".").resolve() != here]
    parser = argparse.ArgumentParser(description="Seed a migrated database for bench/realtime.py")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--plan", required=True, help="the Plan as JSON")
    parser.add_argument("--password-hash", required=True)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    plan = Plan(**json.loads(args.plan))
    population = asyncio.run(seed(args.database_url, plan, args.password_hash))
    args.out.write_text(population.to_json())


if __name__ == "__main__":
    main()
