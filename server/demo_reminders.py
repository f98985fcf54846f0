"""The demo practice's reminders: a few clients with reminders on, an SMS confirmation
template that is the practitioners' default, so the outbox shows what would go out."""

from __future__ import annotations

from models.accounts import Practice, StaffUser
from models.clients import Client, PhoneNumber
from server.actions import reminders
from server.auth.sessions import Caller
from server.db import atomic


async def demo_reminders(
    practice: Practice, owner: StaffUser, practitioners: list[StaffUser], clients: list[Client]
) -> None:
    as_owner = Caller.acting_as(owner)
    template = await reminders.do_save_sms_template(
        as_owner,
        practice,
        None,
        title="Confirmation",
        description="Le texte habituel",
        sender_name="CabDemo",
        body="Bonjour {first_name}, votre rendez-vous avec {practitioner} le {date} à {time} "
        "est confirmé. {place}",
    )
    for person in practitioners:
        await reminders.do_set_practitioner_sms(
            as_owner,
            person,
            default_template=template,
            mobile="",
            notify_online_bookings=False,
            notices_by_sms=False,
        )
    async with atomic():
        for i, client in enumerate(clients[:4]):
            # Demo data: the contact details tab would set the same fields.
            sms = i == 0
            await Client.filter(id=client.id).update(
                reminder_email_hours=24, reminder_sms_hours=2 if sms else None
            )
            if sms:
                await PhoneNumber.create(
                    client=client, number="+33 6 12 34 56 78", is_primary=True, for_sms=True
                )
            await reminders.sync_client(await Client.get(id=client.id))
