"""Numbers for texts: read in the practice's country, refused when texts cannot reach them,
and handed to the SMS provider in the international form it takes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from models.clients import PhoneNumber
from models.notifications import OutboxMessage
from models.reminders import PractitionerSms
from server.actions import reminders
from server.db import atomic
from server.phones import for_sending, region_of, sms_problem
from tests.conftest import Factory, login


@pytest.mark.parametrize(
    ("typed", "region", "sent"),
    [
        ("06 12 34 56 78", "FR", "+33612345678"),  # as the French write it
        ("0033 6 12 34 56 78", "FR", "+33612345678"),
        ("+33 6 12 34 56 78", "CA", "+33612345678"),  # a country code wins over the region
        ("(416) 555-0199", "CA", "+14165550199"),
        ("07911 123456", "GB", "+447911123456"),
    ],
)
def test_a_number_for_texts_is_read_in_the_practices_country(
    typed: str, region: str, sent: str
) -> None:
    assert sms_problem(typed, region) == ""
    assert for_sending(typed, region) == sent


@pytest.mark.parametrize(
    ("typed", "region", "why"),
    [
        ("01 23 45 67 89", "FR", "landline"),  # a Paris landline: no text reaches it
        ("06 12 34", "FR", "not a number"),
        ("mobile", "FR", "not a number"),
        ("06 12 34 56 78", None, "not a number"),  # no country to read it in: +33 needed
    ],
)
def test_a_number_texts_cannot_reach_is_named(typed: str, region: str | None, why: str) -> None:
    assert why in sms_problem(typed, region)


def test_the_practices_country_is_its_time_zones() -> None:
    assert (region_of("Europe/Paris"), region_of("America/Toronto")) == ("FR", "CA")
    assert region_of("UTC") is None


async def test_the_contact_tab_refuses_a_landline_for_texts_and_texts_go_out_as_e164(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """A number marked for texts was saved as typed and handed to the provider so: "06 12 34
    56 78" was refused by Twilio at send time, a landline silently never reached, and the
    practice learnt it from the logs, if at all."""
    alice = await make.therapist(first_name="Alice")
    client = await make.client(alice)
    me = await login(http, alice)
    form = {
        "csrf_token": me["csrf_token"],
        "first_name": client.first_name,
        "last_name": client.last_name,
        "phone_number_0": "01 23 45 67 89",
        "phone_label_0": "home",
        "sms_phone": "0",
        "email_address_0": client.email or "",
        "primary_email": "0",
        "reminder_email_hours": "",
        "reminder_sms_hours": "24",
    }
    r = await http.post(f"/staff/clients/{client.id}/contact", data=form)
    assert r.status_code == 422 and "This is a landline" in r.text
    assert not await PhoneNumber.filter(client_id=client.id).exists()
    r = await http.post(
        f"/staff/clients/{client.id}/contact",
        data={**form, "phone_number_0": "06 12 34 56 78", "phone_label_0": "mobile"},
    )
    assert r.status_code == 303, r.text
    # Kept as typed, for people to read; the provider gets the international form.
    assert await reminders.sms_number(client_id=client.id) == "06 12 34 56 78"
    async with atomic():
        await reminders.queue_sms(
            await make.practice(),
            await reminders.sms_number(client_id=client.id),
            "Rappel",
            purpose="reminder",
            client_id=client.id,
        )
    assert [m.to for m in await OutboxMessage.filter(channel="sms")] == ["+33612345678"]
    # And the client's Logs tab still knows it was sent to her.
    page = await http.get(f"/staff/clients/{client.id}/logs")
    assert page.status_code == 200 and "+33612345678" in page.text


async def test_a_practitioners_number_for_texts_is_checked_too(
    http: httpx.AsyncClient, make: Factory
) -> None:
    owner = await make.owner()
    alice = await make.therapist(first_name="Alice")
    await login(http, owner)
    url = f"/staff/settings/sms/practitioners/{alice.id}"
    form: dict[str, Any] = {"mobile": "04 78 00 00 00", "notify_online_bookings": "true"}
    r = await http.post(url, data=form)
    assert r.status_code == 422 and "This is a landline" in r.text
    assert not await PractitionerSms.filter(practitioner_id=alice.id).exists()
    r = await http.post(url, data={**form, "mobile": "06 11 22 33 44"})
    assert r.status_code == 303
    assert (await PractitionerSms.get(practitioner_id=alice.id)).mobile == "06 11 22 33 44"
