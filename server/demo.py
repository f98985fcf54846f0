"""The demo practice created on first run of the embedded default (``cabinet demo``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from uuid import uuid4
from zoneinfo import ZoneInfo

from models.accounts import PortalAccount, Practice, StaffRole, StaffUser
from models.agenda import Appointment, Attendance, BuiltinCategory, Service
from models.clients import Client, Relationship
from models.messaging import Conversation, ConversationKind, Message
from models.offers import FreedSlot, SlotStatus
from server.access import my_participant
from server.actions import accounts, agenda, clients, messaging, offers, tasks
from server.auth.passwords import hash_password
from server.auth.sessions import Caller
from server.demo_billing import create_demo_billing
from server.demo_measures import create_demo_measures
from server.demo_reminders import demo_reminders
from server.i18n import writing_in

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

    owner = await staff("owner@demo.cabinet", "Claire", "Rousseau", StaffRole.OWNER)
    alice = await staff("alice@demo.cabinet", "Alice", "Mercier", StaffRole.THERAPIST)
    bruno = await staff(
        "bruno@demo.cabinet", "Bruno", "Garnier", StaffRole.THERAPIST, supervisor=alice
    )
    await staff(
        "desk@demo.cabinet", "Denise", "Faure", StaffRole.OFFICE_ADMIN, portal_enabled=False
    )

    password_hash = await hash_password(DEMO_PASSWORD)
    people: list[tuple[PortalAccount, Client]] = []
    for i, (first, last) in enumerate(CLIENTS):
        email = f"{first.lower().replace('é', 'e').replace('è', 'e')}.{last.lower().replace('è', 'e')}@demo.cabinet"
        therapist = alice if i % 2 == 0 else bruno
        client: Client = await clients.do_create_client(
            None, practice, first_name=first, last_name=last, email=email, therapist=therapist
        )
        account = await clients.do_create_portal_account_with_password(
            None, client, email, password_hash
        )
        people.append((account, client))
        if i < 2:
            logins.append(("client", email, DEMO_PASSWORD))
    await _demo_conversations(owner, alice, bruno, people)
    await _demo_agenda(practice, owner, alice, bruno, people)
    await _demo_fill_rate(practice)
    await create_demo_measures(alice, people[0][1])
    # The demo shows clients their own trend on the portal (off by default: the practice's
    # choice), so that the portal's chart can be seen too.
    practice.clients_see_measure_trend = True
    await practice.save(update_fields=["clients_see_measure_trend", "updated_at"])
    # Consultation titles and invoice lines are stored in the language of whoever billed:
    # the practice's own, as when its staff bill.
    with writing_in(practice.locale):
        await create_demo_billing(practice, owner, people)
    await demo_reminders(practice, owner, [alice, bruno], [c for _a, c in people])
    # Their files were opened today, but their sessions and questionnaires go back weeks:
    # "client since" is dated before any of it, as in a practice that has seen them a while.
    now = datetime.now(UTC)
    for i, (_account, client) in enumerate(people):
        await Client.filter(id=client.id).update(created_at=now - timedelta(days=120 - 7 * i))
    return logins


async def _demo_fill_rate(practice: Practice) -> None:
    """The owner's fill-rate chart with a history: the slots of the past weeks' cancelled
    and missed sessions, freed when they were called off (two days before), some offered
    and refilled through an offer. Demo history, written as the offer rounds would have."""
    called_off = await Appointment.filter(
        practice_id=practice.id,
        starts_at__lt=datetime.now(UTC),
        attendance__in=[
            Attendance.CANCELLED_BY_CLIENT,
            Attendance.CANCELLED_BY_PRACTITIONER,
            Attendance.NO_SHOW,
        ],
    ).order_by("starts_at")
    for i, appointment in enumerate(called_off):
        freed_at = appointment.starts_at - timedelta(days=2)
        offered = appointment.attendance is not Attendance.NO_SHOW and i % 3 != 2
        refilled = offered and i % 2 == 0
        slot = await FreedSlot.create(
            practice_id=practice.id,
            practitioner_id=appointment.practitioner_id,  # type: ignore[attr-defined]
            location_id=appointment.location_id,  # type: ignore[attr-defined]
            appointment=appointment,
            starts_at=appointment.starts_at,
            ends_at=appointment.ends_at,
            status=SlotStatus.TAKEN if refilled else SlotStatus.UNMATCHED,
            offered_at=freed_at + timedelta(minutes=5) if offered else None,
            taken_at=freed_at + timedelta(hours=3) if refilled else None,
            refilled_by_offer=refilled,
        )
        await FreedSlot.filter(id=slot.id).update(created_at=freed_at)


async def _say(who: Caller, conversation: Conversation, text: str) -> Message:
    me = await my_participant(who, conversation.id)
    assert me is not None
    message, _created = await messaging.do_send_message(who, conversation, me, text, uuid4().hex)
    return message


async def _read(who: Caller, conversation: Conversation) -> None:
    me = await my_participant(who, conversation.id)
    assert me is not None
    await messaging.do_mark_read(who, conversation, me)


async def _demo_conversations(
    owner: StaffUser,
    alice: StaffUser,
    bruno: StaffUser,
    people: list[tuple[PortalAccount, Client]],
) -> None:
    """A few conversations in every state: read, waiting for a reply, a family group, the
    office, and a task made from a client's message."""
    as_alice, as_bruno = Caller.acting_as(alice), Caller.acting_as(bruno)
    helene, marc, sophie, chloe = (Caller.acting_as(people[i]) for i in (0, 1, 4, 6))
    assert helene.client and marc.client and sophie.client and chloe.client

    talk = await messaging.do_create_conversation(
        as_alice,
        kind=ConversationKind.CLIENT,
        subject="Prochain rendez-vous",
        client=helene.client,
        first_message="Bonjour Hélène, je vous propose de nous revoir jeudi à 14 h. Cela vous convient-il ?",
        client_uid=uuid4().hex,
    )
    await _read(helene, talk)
    await _say(helene, talk, "Bonjour, jeudi me va très bien, merci.")
    await _read(as_alice, talk)
    await _say(as_alice, talk, "Parfait, à jeudi !")
    await _read(helene, talk)
    question = await _say(
        helene, talk, "Pourriez-vous m'envoyer une attestation pour ma mutuelle ?"
    )
    await tasks.do_create_task(
        as_alice,
        helene.client,
        note="Envoyer l'attestation de séances pour la mutuelle d'Hélène",
        assignee=alice,
        source_message=question,
    )

    exercises = await messaging.do_create_conversation(
        as_bruno,
        kind=ConversationKind.CLIENT,
        subject="Exercices de respiration",
        client=marc.client,
        first_message="Comme convenu, pratiquez l'exercice 4-7-8 deux fois par jour.",
        client_uid=uuid4().hex,
    )
    await _read(marc, exercises)
    await _say(marc, exercises, "Merci, je m'y mets ce soir.")
    await _read(as_bruno, exercises)

    # Read "Chloé is Sophie's child": a link from A to B says what B is to A.
    await clients.do_link_clients(None, sophie.client, chloe.client, Relationship.CHILD)
    family = await messaging.do_create_conversation(
        as_alice,
        kind=ConversationKind.CLIENT,
        subject="Organisation des séances de Chloé",
        group_name="Famille Martin",
        client=sophie.client,
        linked_clients=[chloe.client],
        first_message="Bonjour à toutes les deux, voici les dates proposées pour le mois prochain.",
        client_uid=uuid4().hex,
    )
    await _say(chloe, family, "Le mercredi après-midi, c'est possible ?")

    team = await messaging.do_create_conversation(
        Caller.acting_as(owner),
        kind=ConversationKind.OFFICE,
        subject="Réunion d'équipe de lundi",
        group_name="Toute l'équipe",
        staff=await StaffUser.filter(practice_id=owner.practice_id),  # type: ignore[attr-defined]
        first_message="Réunion lundi à 9 h en salle 2 : ordre du jour à compléter ici.",
        client_uid=uuid4().hex,
    )
    await _say(as_bruno, team, "J'ajoute un point sur les supervisions.")


async def _demo_agenda(
    practice: Practice,
    owner: StaffUser,
    alice: StaffUser,
    bruno: StaffUser,
    people: list[tuple[PortalAccount, Client]],
) -> None:
    """Two locations, services in every built-in category, weekly hours for Alice and
    Bruno, and sessions around today: past ones attended, cancelled or missed, upcoming
    ones scheduled (a teleconsultation and a group session among them)."""
    as_owner = Caller.acting_as(owner)
    cats = await agenda.ensure_builtin_categories(practice)
    centre = await agenda.do_create_location(
        as_owner, practice, name="Cabinet Lyon Centre", address="12 rue de la République, Lyon"
    )
    annexe = await agenda.do_create_location(
        as_owner, practice, name="Annexe Croix-Rousse", address="4 place des Tapis, Lyon"
    )

    async def service(
        name: str, minutes: int, price: str, kind: BuiltinCategory | None = None
    ) -> Service:
        return await agenda.do_create_service(
            as_owner,
            practice,
            name=name,
            duration_minutes=minutes,
            price=Decimal(price),
            category=cats[kind] if kind else None,
        )

    session = await service("Séance individuelle", 50, "70")
    first = await service("Premier rendez-vous", 75, "90")
    video = await service("Téléconsultation", 50, "70", BuiltinCategory.TELECONSULTATION)
    home = await service("Visite à domicile", 60, "95", BuiltinCategory.HOME_VISIT)
    group = await service("Groupe gestion du stress", 90, "30", BuiltinCategory.GROUP)

    day = (time(9), time(17))
    for who, weekdays, place in ((alice, (0, 3), centre), (bruno, (1, 4), annexe)):
        for weekday in weekdays:
            await agenda.do_add_availability(
                Caller.acting_as(who),
                who,
                services=[session, first],
                weekday=weekday,
                start_time=day[0],
                end_time=day[1],
                location=place,
            )
        await agenda.do_add_availability(
            Caller.acting_as(who),
            who,
            services=[video, home],
            weekday=2,
            start_time=time(14) if who is alice else time(9),
            end_time=time(18) if who is alice else time(12),
        )
    await agenda.do_add_availability(
        Caller.acting_as(alice),
        alice,
        services=[group],
        weekday=3,
        start_time=time(18),
        end_time=time(19, 30),
        location=annexe,
        is_group_slot=True,
        capacity=8,
    )

    tz = ZoneInfo(practice.time_zone)
    today = datetime.now(tz).date()
    monday = today - timedelta(days=today.weekday())

    def at(week: int, weekday: int, hour: int) -> datetime:
        local = date.fromordinal(monday.toordinal() + 7 * week + weekday)
        return datetime.combine(local, time(hour), tz).astimezone(UTC)

    outcomes = [
        Attendance.ATTENDED,
        Attendance.ATTENDED,
        Attendance.CANCELLED_BY_CLIENT,
        Attendance.ATTENDED,
        Attendance.NO_SHOW,
        Attendance.CANCELLED_BY_PRACTITIONER,
    ]
    hours = [9, 10, 11, 13, 14, 15]
    for i, (_account, client) in enumerate(people):
        therapist = alice if i % 2 == 0 else bruno
        actor = Caller.acting_as(therapist)
        weekday, place = (0, centre) if therapist is alice else (1, annexe)
        hour = hours[(i // 2) % len(hours)]
        for week in (-3, -2, -1):
            past = await agenda.do_book_appointment(
                actor,
                practitioner=therapist,
                client=client,
                # A first appointment runs 75 minutes: only where the next hour is free.
                service=first if week == -3 and hour in (11, 15) else session,
                starts_at=at(week, weekday, hour),
                location=place,
            )
            await agenda.do_set_attendance(actor, past, outcomes[(i + week) % len(outcomes)])
        if i < 8:
            await agenda.do_book_appointment(
                actor,
                practitioner=therapist,
                client=client,
                service=session,
                starts_at=at(1, weekday, hour),
                location=place,
            )

    # Today's day, whatever weekday the demo starts on (week 0 is otherwise empty): what a
    # clinician's home page and the front desk's agenda show first.
    for therapist, place, theirs, day_hours in (
        (alice, centre, [people[0][1], people[2][1], people[4][1]], (10, 14, 17)),
        (bruno, annexe, [people[1][1], people[3][1]], (11, 16)),
    ):
        for client, hour in zip(theirs, day_hours, strict=True):
            await agenda.do_book_appointment(
                Caller.acting_as(therapist),
                practitioner=therapist,
                client=client,
                service=session,
                starts_at=at(0, today.weekday(), hour),
                location=place,
            )

    helene, amira, sophie = people[0][1], people[2][1], people[4][1]
    as_alice = Caller.acting_as(alice)
    await agenda.do_book_appointment(
        as_alice, practitioner=alice, client=helene, service=video, starts_at=at(1, 2, 15)
    )
    await agenda.do_book_appointment(
        as_alice, practitioner=alice, client=amira, service=home, starts_at=at(1, 2, 16)
    )
    for member in (helene, amira, sophie):
        await agenda.do_book_appointment(
            as_alice,
            practitioner=alice,
            client=member,
            service=group,
            starts_at=at(1, 3, 18),
            location=annexe,
        )

    # Earlier-slot alerts are on, and two of Alice's clients wait for an earlier Monday:
    # cancel one of her Monday appointments next week to see the offers go out.
    practice.earlier_slot_alerts = True
    await practice.save(update_fields=["earlier_slot_alerts", "updated_at"])
    for week, (_account, client) in ((4, people[0]), (5, people[2])):
        later = await agenda.do_book_appointment(
            as_alice,
            practitioner=alice,
            client=client,
            service=session,
            starts_at=at(week, 0, hours[0]),
            location=centre,
        )
        await offers.do_set_earlier_alert(as_alice, later, True)
