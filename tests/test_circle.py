"""The circle-of-care tab: alternate contacts (with their reminder rules and contact records)
and linked accounts (both sides, inverted), through the API and the page, for every caller."""

from __future__ import annotations

import asyncio
import html
import io
import itertools
import json
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from models.accounts import Practice
from models.audit import AuditEntry
from models.clients import AlternateContact, Contact, ContactKind, LinkedAccount, PhoneNumber
from models.messaging import Conversation, Participant
from server.actions.circle import CircleContactIn, do_add_circle_contact
from server.actions.clients import do_create_client
from server.errors import NotFound
from tests.conftest import Factory, login, request_key_of


@pytest.fixture
async def cast(make: Factory) -> dict[str, Any]:
    """Alice's clients Hélène and Paul; Bob's client Zoé; the owner and the front desk."""
    alice = await make.therapist(first_name="Alice")
    bob = await make.therapist(first_name="Bob")
    return {
        "alice": alice,
        "bob": bob,
        "owner": await make.owner(),
        "desk": await make.office_admin(),
        "helene": await make.client(alice, first_name="Hélène", last_name="Dubois"),
        "paul": await make.client(alice, first_name="Paul", last_name="Dubois"),
        "zoe": await make.client(bob, first_name="Zoé", last_name="Martin"),
    }


_addresses = itertools.count(1)


async def signed_in(new_http: Callable[..., httpx.AsyncClient], who: Any) -> httpx.AsyncClient:
    """A browser of its own (cookies and address), signed in as ``who``."""
    http = new_http(f"10.9.0.{next(_addresses) % 250 + 1}")
    await login(http, who)
    return http


def circle_url(client: Any) -> str:
    return f"/api/clients/{client.id}/circle"


MOTHER: dict[str, Any] = {
    "first_name": "Marie",
    "middle_name": "Anne",
    "last_name": "Dubois",
    "relationship": "Mother",
    "date_of_birth": "1965-03-14",
    "email": "Marie.Dubois@Example.org",
    "phones": [
        {"number": "+33 6 11 22 33 44", "label": "mobile", "for_sms": True},
        {"number": "+33 4 00 00 00 00", "label": "home", "is_primary": True},
    ],
    "reminder_email_hours": 48,
    "reminder_sms_hours": 2,
    "is_emergency": True,
    "address_line1": "3 rue des Lilas",
    "postal_code": "69003",
    "city": "Lyon",
    "country": "France",
}


# --- alternate contacts ----------------------------------------------------------------------


async def test_an_alternate_contact_with_everything(
    http: httpx.AsyncClient, cast: dict[str, Any]
) -> None:
    helene = cast["helene"]
    await login(http, cast["alice"])
    r = await http.post(f"{circle_url(helene)}/contacts", json=MOTHER)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["email"] == "marie.dubois@example.org"
    assert out["date_of_birth"] == "1965-03-14"
    assert (out["reminder_email_hours"], out["reminder_sms_hours"]) == (48, 2)
    assert [(p["number"], p["is_primary"], p["for_sms"]) for p in out["phones"]] == [
        ("+33 6 11 22 33 44", False, True),
        ("+33 4 00 00 00 00", True, False),
    ]
    circle = (await http.get(circle_url(helene))).json()
    assert [c["first_name"] for c in circle["contacts"]] == ["Marie"]
    assert circle["contacts"][0]["is_emergency"] is True
    assert circle["linked_accounts"] == []
    # The phones belong to the alternate contact, never to the client.
    assert await PhoneNumber.filter(client_id=helene.id).count() == 0
    assert await PhoneNumber.filter(alternate_contact_id=out["id"]).count() == 2
    entry = await AuditEntry.get(action="circle.contact_added")
    assert entry.client_id == helene.id and "Marie" not in str(entry.detail)


async def test_reminders_are_off_by_default(http: httpx.AsyncClient, cast: dict[str, Any]) -> None:
    await login(http, cast["alice"])
    body = {"first_name": "Jean", "last_name": "Dubois", "email": "jean@example.org"}
    r = await http.post(f"{circle_url(cast['helene'])}/contacts", json=body)
    assert r.status_code == 200, r.text
    assert (r.json()["reminder_email_hours"], r.json()["reminder_sms_hours"]) == (None, None)
    assert r.json()["is_emergency"] is False


SMS_PHONE = [{"number": "0611223344", "for_sms": True}]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reminder_email_hours": 1, "email": "m@example.org"}, "reminder_email_hours"),
        ({"reminder_email_hours": 73, "email": "m@example.org"}, "reminder_email_hours"),
        ({"reminder_sms_hours": 1, "phones": SMS_PHONE}, "reminder_sms_hours"),
        ({"reminder_sms_hours": 73, "phones": SMS_PHONE}, "reminder_sms_hours"),
        ({"reminder_sms_hours": 0, "phones": SMS_PHONE}, "reminder_sms_hours"),
        # SMS reminders need a number marked for SMS; email reminders an address.
        ({"reminder_sms_hours": 24, "phones": [{"number": "0611223344"}]}, "reminder_sms_hours"),
        ({"reminder_email_hours": 24}, "reminder_email_hours"),
        ({"phones": SMS_PHONE * 2}, "phones"),
        ({"phones": [{"number": "1", "is_primary": True}] * 2}, "phones"),
        ({"email": "not-an-email"}, "email"),
        ({"first_name": "  "}, "first_name"),
        ({"last_name": ""}, "last_name"),
        ({"date_of_birth": "someday"}, "date_of_birth"),
        ({"is_emergency": True}, "is_emergency"),  # an emergency contact needs a phone
        ({"relationship": "x" * 61}, "relationship"),
    ],
)
async def test_alternate_contact_rules(
    http: httpx.AsyncClient, cast: dict[str, Any], changes: dict[str, Any], field: str
) -> None:
    await login(http, cast["alice"])
    body = {"first_name": "Marie", "last_name": "Dubois", **changes}
    r = await http.post(f"{circle_url(cast['helene'])}/contacts", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["fields"]
    assert await AlternateContact.all().count() == 0 and await PhoneNumber.all().count() == 0


@pytest.mark.parametrize("hours", [2, 72])
async def test_reminder_bounds_are_accepted(
    http: httpx.AsyncClient, cast: dict[str, Any], hours: int
) -> None:
    await login(http, cast["alice"])
    body = {
        "first_name": "Marie",
        "last_name": "Dubois",
        "email": "m@example.org",
        "phones": SMS_PHONE,
        "reminder_email_hours": hours,
        "reminder_sms_hours": hours,
    }
    r = await http.post(f"{circle_url(cast['helene'])}/contacts", json=body)
    assert r.status_code == 200, r.text
    assert (r.json()["reminder_email_hours"], r.json()["reminder_sms_hours"]) == (hours, hours)


async def test_edit_and_remove(http: httpx.AsyncClient, cast: dict[str, Any]) -> None:
    helene = cast["helene"]
    await login(http, cast["alice"])
    created = (await http.post(f"{circle_url(helene)}/contacts", json=MOTHER)).json()
    url = f"{circle_url(helene)}/contacts/{created['id']}"
    body = {**MOTHER, "city": "Paris", "reminder_sms_hours": None, "phones": MOTHER["phones"][1:]}
    r = await http.put(url, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["city"] == "Paris" and r.json()["reminder_sms_hours"] is None
    assert [p["number"] for p in r.json()["phones"]] == ["+33 4 00 00 00 00"]
    entry = await AuditEntry.get(action="circle.contact_updated")
    assert entry.detail["fields"] == ["city", "phones", "reminder_sms_hours"]
    assert "Paris" not in str(entry.detail)  # which fields changed, never their values
    # Dropping the number marked for SMS while SMS reminders stay on is refused.
    r = await http.put(url, json={**MOTHER, "phones": MOTHER["phones"][1:]})
    assert r.status_code == 422 and "reminder_sms_hours" in r.json()["error"]["fields"]

    assert (await http.delete(url)).status_code == 200
    assert (await http.get(circle_url(helene))).json()["contacts"] == []
    row = await AlternateContact.get(id=created["id"])
    assert row.deleted_at is not None  # soft: the record stays
    assert (await http.put(url, json=MOTHER)).status_code == 404
    assert (await http.delete(url)).status_code == 404
    assert await AuditEntry.filter(action="circle.contact_removed").count() == 1


async def test_emergency_contacts_come_first_and_are_flagged(
    http: httpx.AsyncClient, cast: dict[str, Any]
) -> None:
    helene = cast["helene"]
    await login(http, cast["alice"])
    await http.post(f"{circle_url(helene)}/contacts", json={"first_name": "A", "last_name": "A"})
    emergency = {**MOTHER, "first_name": "Zélie", "last_name": "Zola"}
    await http.post(f"{circle_url(helene)}/contacts", json=emergency)
    contacts = (await http.get(circle_url(helene))).json()["contacts"]
    assert [(c["first_name"], c["is_emergency"]) for c in contacts] == [
        ("Zélie", True),
        ("A", False),
    ]
    page = await http.get(f"/staff/clients/{helene.id}/circle")
    assert page.text.count("data-emergency") == 1


# --- contact records --------------------------------------------------------------------------


@pytest.fixture
async def doctor(make: Factory) -> Contact:
    return await Contact.create(
        practice=await make.practice(),
        kind=ContactKind.DOCTOR,
        first_name="Henri",
        last_name="Médecin",
        search_name="henri medecin",
        organisation="Cabinet du Parc",
        email="dr.medecin@example.org",
        phone="04 78 00 00 00",
        address="12 avenue du Parc\nBâtiment B\n69006 Lyon",
    )


async def test_picking_a_contact_prefills(
    http: httpx.AsyncClient, cast: dict[str, Any], doctor: Contact
) -> None:
    helene = cast["helene"]
    await login(http, cast["alice"])
    # The page's form comes filled from the record...
    page = await http.get(f"/staff/clients/{helene.id}/circle?from_contact={doctor.id}")
    assert page.status_code == 200
    for value in ("Henri", "Médecin", "dr.medecin@example.org", "04 78 00 00 00", "Doctor"):
        assert f'value="{value}"' in page.text, value
    assert f'name="contact_id" value="{doctor.id}"' in page.text
    # ...and through the API the blanks are filled the same way; what is given stays.
    body = {"contact_id": doctor.id, "relationship": "Family doctor", "is_emergency": True}
    r = await http.post(f"{circle_url(helene)}/contacts", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["first_name"], out["last_name"], out["email"]) == (
        "Henri",
        "Médecin",
        "dr.medecin@example.org",
    )
    assert out["relationship"] == "Family doctor" and out["contact_id"] == doctor.id
    assert [(p["number"], p["is_primary"]) for p in out["phones"]] == [("04 78 00 00 00", True)]
    assert (out["address_line1"], out["address_line2"]) == (
        "12 avenue du Parc",
        "Bâtiment B, 69006 Lyon",
    )
    # The copy is the alternate contact's own: editing the record does not change it.
    await Contact.filter(id=doctor.id).update(email="new@example.org")
    assert (await http.get(circle_url(helene))).json()["contacts"][0]["email"] == (
        "dr.medecin@example.org"
    )
    page = await http.get(f"/staff/clients/{helene.id}/circle")
    assert f'href="/staff/contacts/{doctor.id}"' in page.text


async def test_the_contact_search_in_the_tab_is_accent_free(
    http: httpx.AsyncClient, cast: dict[str, Any], doctor: Contact
) -> None:
    await login(http, cast["alice"])
    page = await http.get(f"/staff/clients/{cast['helene'].id}/circle?add=1&contact_q=MEDECIN")
    assert f"from_contact={doctor.id}" in page.text
    page = await http.get(f"/staff/clients/{cast['helene'].id}/circle?add=1&contact_q=nobody")
    assert f"from_contact={doctor.id}" not in page.text and "No contact matches." in page.text


async def test_another_practices_or_removed_contact_is_a_404(
    http: httpx.AsyncClient, cast: dict[str, Any], doctor: Contact
) -> None:
    helene = cast["helene"]
    elsewhere = await Contact.create(
        practice=await Practice.create(name="Other"), first_name="X", last_name="Y"
    )
    await login(http, cast["alice"])
    for contact_id in (elsewhere.id, 999_999):
        body = {"contact_id": contact_id, "first_name": "X", "last_name": "Y"}
        r = await http.post(f"{circle_url(helene)}/contacts", json=body)
        assert r.status_code == 404
        page = await http.get(f"/staff/clients/{helene.id}/circle?from_contact={contact_id}")
        assert page.status_code == 404
    await Contact.filter(id=doctor.id).update(deleted_at=doctor.created_at)
    r = await http.post(f"{circle_url(helene)}/contacts", json={"contact_id": doctor.id})
    assert r.status_code == 404
    assert await AlternateContact.all().count() == 0
    # The action refuses another practice's record even when called directly.
    with pytest.raises(NotFound):
        await do_add_circle_contact(
            None, helene, CircleContactIn(first_name="X", last_name="Y"), elsewhere
        )


# --- linked accounts ------------------------------------------------------------------------


async def links_of(http: httpx.AsyncClient, client: Any) -> list[tuple[str, str]]:
    r = await http.get(circle_url(client))
    assert r.status_code == 200, r.text
    return [(x["first_name"], x["relationship"]) for x in r.json()["linked_accounts"]]


@pytest.mark.parametrize(
    ("relationship", "inverse"),
    [
        ("parent", "child"),
        ("child", "parent"),
        ("spouse", "spouse"),
        ("sibling", "sibling"),
        ("guardian", "ward"),
        ("other", "other"),
    ],
)
async def test_links_show_from_both_sides_inverted(
    http: httpx.AsyncClient, cast: dict[str, Any], relationship: str, inverse: str
) -> None:
    helene, paul = cast["helene"], cast["paul"]
    await login(http, cast["alice"])
    body = {"linked_client_id": paul.id, "relationship": relationship}
    r = await http.post(f"{circle_url(helene)}/links", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["relationship"] == relationship
    # Paul is Hélène's <relationship>; Hélène is Paul's <inverse>.
    assert await links_of(http, helene) == [("Paul", relationship)]
    assert await links_of(http, paul) == [("Hélène", inverse)]


async def test_relinking_changes_both_sides_and_unlinking_removes_both(
    http: httpx.AsyncClient, cast: dict[str, Any]
) -> None:
    helene, paul = cast["helene"], cast["paul"]
    await login(http, cast["alice"])
    url = f"{circle_url(helene)}/links"
    await http.post(url, json={"linked_client_id": paul.id, "relationship": "sibling"})
    await http.post(url, json={"linked_client_id": paul.id, "relationship": "parent"})
    assert await links_of(http, helene) == [("Paul", "parent")]
    assert await links_of(http, paul) == [("Hélène", "child")]
    # Unlinking from Paul's side removes the link from both files, softly.
    r = await http.delete(f"{circle_url(paul)}/links/{helene.id}")
    assert r.status_code == 200, r.text
    assert await links_of(http, helene) == [] and await links_of(http, paul) == []
    assert await LinkedAccount.filter(deleted_at=None).count() == 0
    assert await LinkedAccount.all().count() == 2
    assert (await http.delete(f"{circle_url(paul)}/links/{helene.id}")).status_code == 404
    entry = await AuditEntry.get(action="client.unlinked")
    assert entry.client_id == paul.id and entry.detail == {
        "linked_client_id": helene.id,
        "conversations_left": 0,
    }
    # Linking again brings both sides back.
    await http.post(url, json={"linked_client_id": paul.id, "relationship": "spouse"})
    assert await links_of(http, paul) == [("Hélène", "spouse")]


async def test_a_client_cannot_be_linked_to_themselves(
    http: httpx.AsyncClient, cast: dict[str, Any]
) -> None:
    helene = cast["helene"]
    me = await login(http, cast["alice"])
    body = {"linked_client_id": helene.id, "relationship": "other"}
    r = await http.post(f"{circle_url(helene)}/links", json=body)
    assert r.status_code == 422 and "linked_client_id" in r.json()["error"]["fields"]
    r = await http.post(
        f"/staff/clients/{helene.id}/circle/links",
        data={**body, "linked_client_id": str(helene.id), "csrf_token": me["csrf_token"]},
    )
    assert r.status_code == 422 and "cannot be linked to themselves" in r.text
    assert await LinkedAccount.all().count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"linked_client_id": 1, "relationship": "cousin"},
        {"linked_client_id": "x", "relationship": "parent"},
        {"relationship": "parent"},
    ],
)
async def test_link_bodies_are_validated(
    http: httpx.AsyncClient, cast: dict[str, Any], body: dict[str, Any]
) -> None:
    await login(http, cast["alice"])
    r = await http.post(f"{circle_url(cast['helene'])}/links", json=body)
    assert r.status_code == 422, r.text


async def test_links_to_clients_the_caller_cannot_see_stay_hidden(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    helene, zoe = cast["helene"], cast["zoe"]
    owner = await signed_in(new_http, cast["owner"])
    body = {"linked_client_id": zoe.id, "relationship": "parent"}
    assert (await owner.post(f"{circle_url(helene)}/links", json=body)).status_code == 200
    assert await links_of(owner, helene) == [("Zoé", "parent")]
    # Alice sees Hélène's file, not Zoé's: she does not learn that Zoé is a client, and
    # cannot link to, unlink or search for her.
    alice = await signed_in(new_http, cast["alice"])
    assert await links_of(alice, helene) == []
    assert "Zoé" not in (await alice.get(f"/staff/clients/{helene.id}/circle")).text
    assert (await alice.delete(f"{circle_url(helene)}/links/{zoe.id}")).status_code == 404
    r = await alice.post(f"{circle_url(cast['paul'])}/links", json=body)
    assert r.status_code == 404
    page = await alice.get(f"/staff/clients/{helene.id}/circle?client_q=martin")
    assert "Zoé" not in page.text
    assert await LinkedAccount.filter(deleted_at=None).count() == 2


async def test_links_to_clients_the_caller_cannot_see_stay_out_of_messaging_and_exports(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    """Hélène (Alice's) is linked to Zoé (Bob's). Outside the circle tab, Alice must not
    learn of Zoé either: not in the messaging picker, not as a participant she can add, not
    in Hélène's export. The owner, who sees the practice, gets the link everywhere."""
    helene, zoe = cast["helene"], cast["zoe"]
    owner = await signed_in(new_http, cast["owner"])
    body = {"linked_client_id": zoe.id, "relationship": "parent"}
    assert (await owner.post(f"{circle_url(helene)}/links", json=body)).status_code == 200
    alice = await signed_in(new_http, cast["alice"])

    async def picker_links(http: httpx.AsyncClient) -> list[str]:
        r = await http.get(f"/api/messaging/clients?id={helene.id}")
        assert r.status_code == 200
        return [link["name"] for entry in r.json() for link in entry["links"]]

    assert await picker_links(owner) == ["Zoé Martin"]
    assert await picker_links(alice) == []
    new = {"kind": "client", "subject": "Rendez-vous", "client_id": helene.id}
    r = await alice.post("/api/conversations", json={**new, "linked_client_ids": [zoe.id]})
    assert r.status_code == 404
    assert not await Conversation.exists()
    r = await alice.post("/api/conversations", json=new)
    assert r.status_code == 200
    participants = f"/api/conversations/{r.json()['id']}/participants"
    r = await alice.post(participants, json={"linked_client_ids": [zoe.id]})
    assert r.status_code == 404
    assert not await Participant.filter(portal_account__client_id=zoe.id).exists()

    async def exported_links(http: httpx.AsyncClient) -> list[int]:
        r = await http.get(f"/api/clients/{helene.id}/export")
        assert r.status_code == 200
        record = json.loads(zipfile.ZipFile(io.BytesIO(r.content)).read("record.json"))
        return [link["client_id"] for link in record["circle_of_care"]["linked_accounts"]]

    assert await exported_links(owner) == [zoe.id]
    assert await exported_links(alice) == []


# --- who may do what ------------------------------------------------------------------------


async def test_access_per_role(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    helene, paul, zoe = cast["helene"], cast["paul"], cast["zoe"]
    alice = await signed_in(new_http, cast["alice"])
    mine = (await alice.post(f"{circle_url(helene)}/contacts", json=MOTHER)).json()
    theirs = await do_add_circle_contact(
        None, zoe, CircleContactIn(first_name="Bob's", last_name="Contact")
    )
    mine_url = f"{circle_url(helene)}/contacts/{mine['id']}"

    # Bob's caseload does not include Hélène: everything about her circle is a 404.
    bob = await signed_in(new_http, cast["bob"])
    assert (await bob.get(circle_url(helene))).status_code == 404
    assert (await bob.post(f"{circle_url(helene)}/contacts", json=MOTHER)).status_code == 404
    assert (await bob.put(mine_url, json=MOTHER)).status_code == 404
    assert (await bob.delete(mine_url)).status_code == 404
    assert (await bob.get(f"/staff/clients/{helene.id}/circle")).status_code == 404
    link = {"linked_client_id": helene.id, "relationship": "parent"}
    assert (await bob.post(f"{circle_url(zoe)}/links", json=link)).status_code == 404
    # A contact of another client's circle, reached through a file Alice may see, is a 404.
    other = f"{circle_url(helene)}/contacts/{theirs.id}"
    assert (await alice.put(other, json=MOTHER)).status_code == 404
    assert (await alice.delete(other)).status_code == 404
    wrong_file = f"{circle_url(paul)}/contacts/{mine['id']}"
    assert (await alice.put(wrong_file, json=MOTHER)).status_code == 404
    assert (await alice.put(f"{circle_url(helene)}/contacts/999999", json=MOTHER)).status_code == (
        404
    )
    # Ids that cannot name a row are 404s too, not 500s.
    assert (await alice.delete(f"{circle_url(helene)}/contacts/99999999999")).status_code == 404
    # Nor can a client of another practice be linked.
    stranger = await do_create_client(
        None, await Practice.create(name="Other"), first_name="Paul", last_name="Autre"
    )
    body = {"linked_client_id": stranger.id, "relationship": "parent"}
    assert (await alice.post(f"{circle_url(helene)}/links", json=body)).status_code == 404
    big = {"linked_client_id": 99999999999, "relationship": "parent"}
    assert (await alice.post(f"{circle_url(helene)}/links", json=big)).status_code == 422

    # The front desk and the owner reach every file of the practice.
    for who in ("desk", "owner"):
        staff = await signed_in(new_http, cast[who])
        assert (await staff.get(circle_url(helene))).status_code == 200
        r = await staff.post(f"{circle_url(zoe)}/contacts", json={**MOTHER, "first_name": who})
        assert r.status_code == 200, r.text
        r = await staff.post(f"{circle_url(zoe)}/links", json=link)
        assert r.status_code == 200
        assert (await staff.get(f"/staff/clients/{zoe.id}/circle")).status_code == 200

    # Clients never reach the staff API, not even for their own file; nor does nobody.
    portal = new_http("10.9.250.1")
    await login(portal, helene)
    assert (await portal.get(circle_url(helene))).status_code == 401
    assert (await portal.post(f"{circle_url(helene)}/contacts", json=MOTHER)).status_code == 401
    nobody = new_http("10.9.250.2")
    assert (await nobody.get(circle_url(helene))).status_code == 401
    assert (await nobody.get(f"/staff/clients/{helene.id}/circle")).status_code == 303


# --- the page -------------------------------------------------------------------------------


async def test_the_tab_and_its_empty_state(http: httpx.AsyncClient, cast: dict[str, Any]) -> None:
    helene = cast["helene"]
    await login(http, cast["alice"])
    page = await http.get(f"/staff/clients/{helene.id}/circle")
    assert page.status_code == 200
    assert "This client has no other contacts." in page.text
    assert f'href="/staff/clients/{helene.id}/circle?add=1#add-contact"' in page.text
    # Between the clinical and account tabs.
    tabs = (await http.get(f"/staff/clients/{helene.id}/contact")).text
    order = [
        tabs.index(f"/staff/clients/{helene.id}/{t}") for t in ("clinical", "circle", "account")
    ]
    assert order == sorted(order)
    assert "Circle of care" in tabs
    started = await http.get(f"/staff/clients/{helene.id}/circle?add=1")
    assert "This client has no other contacts." not in started.text
    assert "<details open>" in started.text
    french = await http.get(f"/staff/clients/{helene.id}/circle", headers={"Accept-Language": "fr"})
    assert "Ce client n’a pas d’autre contact." in french.text


async def test_the_forms(http: httpx.AsyncClient, cast: dict[str, Any]) -> None:
    helene, paul = cast["helene"], cast["paul"]
    me = await login(http, cast["alice"])
    token = me["csrf_token"]
    form = {
        "csrf_token": token,
        "contact_id": "",
        "first_name": "Marie",
        "middle_name": "",
        "last_name": "Dubois",
        "relationship": "Mère",
        "date_of_birth": "",
        "email": "",
        "is_emergency": "1",
        "phone_number_0": "0611223344",
        "phone_label_0": "mobile",
        "phone_number_1": "",
        "phone_label_1": "",
        "sms_phone": "0",
        "reminder_email_hours": "",
        "reminder_sms_hours": "80",
        "address_line1": "",
        "city": "Lyon",
    }
    base = f"/staff/clients/{helene.id}/circle"
    # Out of bounds: the tab comes back with the error and what was typed.
    r = await http.post(f"{base}/contacts", data=form)
    assert r.status_code == 422
    assert "Off, or between 2 and 72 hours" in r.text and 'value="Mère"' in r.text
    r = await http.post(f"{base}/contacts", data={**form, "reminder_sms_hours": "24"})
    assert r.status_code == 303 and r.headers["location"] == f"{base}?saved=1"
    alternate = await AlternateContact.get(client_id=helene.id)
    assert (alternate.relationship, alternate.is_emergency, alternate.reminder_sms_hours) == (
        "Mère",
        True,
        24,
    )
    assert alternate.reminder_email_hours is None
    phone = await PhoneNumber.get(alternate_contact_id=alternate.id)
    assert (phone.number, phone.is_primary, phone.for_sms) == ("0611223344", True, True)
    page = await http.get(base)
    assert "Marie Dubois" in page.text and "This client has no other contacts." not in page.text

    # Edit: SMS off, no longer the emergency contact.
    edit = {**form, "sms_phone": "", "reminder_sms_hours": "", "city": "Paris"}
    edit.pop("is_emergency")
    r = await http.post(f"{base}/contacts/{alternate.id}", data=edit)
    assert r.status_code == 303, r.text
    await alternate.refresh_from_db()
    assert (alternate.city, alternate.is_emergency, alternate.reminder_sms_hours) == (
        "Paris",
        False,
        None,
    )
    r = await http.post(f"{base}/contacts/{alternate.id}", data={**edit, "first_name": ""})
    assert r.status_code == 422 and "This field is required." in r.text

    # Link Paul, found by an accent-free search, then unlink him.
    page = await http.get(f"{base}?client_q=dubois")
    assert "Paul Dubois" in page.text and "data-client-results" in page.text
    r = await http.post(
        f"{base}/links",
        data={"csrf_token": token, "linked_client_id": str(paul.id), "relationship": "sibling"},
    )
    assert r.status_code == 303
    assert f'data-linked="{paul.id}"' in (await http.get(base)).text
    paul_page = await http.get(f"/staff/clients/{paul.id}/circle")
    assert "Hélène Dubois" in paul_page.text and "Sibling" in paul_page.text
    r = await http.post(f"{base}/links/{paul.id}/remove", data={"csrf_token": token})
    assert r.status_code == 303
    assert await LinkedAccount.filter(deleted_at=None).count() == 0

    # Remove the alternate contact; with nothing left, the empty state is back.
    r = await http.post(f"{base}/contacts/{alternate.id}/remove", data={"csrf_token": token})
    assert r.status_code == 303
    assert "This client has no other contacts." in (await http.get(base)).text
    # Removing through another client's file is a 404, not a removal.
    r = await http.post(
        f"/staff/clients/{paul.id}/circle/contacts/{alternate.id}/remove",
        data={"csrf_token": token},
    )
    assert r.status_code == 404


async def test_the_api_describes_itself(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/api/openapi.json")).json()["paths"]
    assert set(paths["/api/clients/{client_id}/circle/contacts/{alternate_id}"]) == {
        "put",
        "delete",
    }
    assert "post" in paths["/api/clients/{client_id}/circle/links"]


async def test_an_edit_from_a_page_read_earlier_does_not_bring_a_removed_person_back(
    make: Factory,
) -> None:
    """The edit wrote every column as it had read them, deleted_at included: a person just
    taken out of the circle (say an ex-partner) was back, reminders and all."""
    from server.actions.circle import do_remove_circle_contact, do_update_circle_contact

    alice = await make.therapist()
    helene = await make.client(alice)
    data = CircleContactIn(
        first_name="Marc", last_name="Ex", email="marc@example.org", reminder_email_hours=24
    )
    added = await do_add_circle_contact(None, helene, data)
    edit_page = await AlternateContact.get(id=added.id)
    await do_remove_circle_contact(None, added)
    await do_update_circle_contact(None, edit_page, data.model_copy(update={"last_name": "X"}))
    row = await AlternateContact.get(id=added.id)
    assert row.deleted_at is not None


# --- contact records and what was typed ------------------------------------------------------


async def test_a_contact_record_with_a_long_address_can_be_added(
    http: httpx.AsyncClient, cast: dict[str, Any], doctor: Contact
) -> None:
    """A hospital's address of four long lines did not fit the circle's two address lines:
    adding its doctor to a circle was a 500."""
    line = "Centre hospitalier des Pentes, bâtiment B, troisième étage, porte gauche"
    await Contact.filter(id=doctor.id).update(address="\n".join([line] * 4))
    helene = cast["helene"]
    await login(http, cast["alice"])
    page = await http.get(f"/staff/clients/{helene.id}/circle?from_contact={doctor.id}")
    assert page.status_code == 200
    r = await http.post(f"{circle_url(helene)}/contacts", json={"contact_id": doctor.id})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["address_line1"] == line
    assert 0 < len(out["address_line2"]) <= 200 and out["address_line2"].startswith(line)


async def test_what_was_cleared_in_a_prefilled_form_stays_cleared(
    http: httpx.AsyncClient, cast: dict[str, Any], doctor: Contact
) -> None:
    """The form comes filled from the contact record; the therapist cleared the doctor's
    email and phone (the client does not want the surgery written to), and saving put both
    back from the record."""
    helene = cast["helene"]
    me = await login(http, cast["alice"])
    base = f"/staff/clients/{helene.id}/circle"
    page = await http.get(f"{base}?from_contact={doctor.id}")
    assert 'value="dr.medecin@example.org"' in page.text
    form = {
        "csrf_token": me["csrf_token"],
        "contact_id": str(doctor.id),
        "first_name": "Henri",
        "last_name": "Médecin",
        "relationship": "Doctor",
        "email": "",
        "phone_number_0": "",
        "address_line1": "12 avenue du Parc",
    }
    r = await http.post(f"{base}/contacts", data=form)
    assert r.status_code == 303, r.text
    alternate = await AlternateContact.get(client_id=helene.id)
    assert alternate.email == "" and alternate.contact_id == doctor.id  # type: ignore[attr-defined]
    assert await PhoneNumber.filter(alternate_contact_id=alternate.id).count() == 0
    assert alternate.address_line2 == ""


async def test_an_edit_is_saved_when_its_contact_record_was_removed_meanwhile(
    http: httpx.AsyncClient, cast: dict[str, Any], doctor: Contact
) -> None:
    """The front desk removed the doctor's contact record while a therapist was correcting
    the doctor's number on a client's circle: the save was a 404 and the correction lost."""
    helene = cast["helene"]
    me = await login(http, cast["alice"])
    r = await http.post(f"{circle_url(helene)}/contacts", json={"contact_id": doctor.id})
    alternate_id = r.json()["id"]
    base = f"/staff/clients/{helene.id}/circle"
    form = {
        "csrf_token": me["csrf_token"],
        "contact_id": str(doctor.id),  # the edit form as the page showed it
        "first_name": "Henri",
        "last_name": "Médecin",
        "phone_number_0": "04 78 11 11 11",
    }
    await Contact.filter(id=doctor.id).update(deleted_at=doctor.created_at)
    r = await http.post(f"{base}/contacts/{alternate_id}", data=form)
    assert r.status_code == 303, r.text
    phone = await PhoneNumber.get(alternate_contact_id=alternate_id)
    assert phone.number == "04 78 11 11 11"
    # The removed record is let go of, as the page would have done had it known.
    assert (await AlternateContact.get(id=alternate_id)).contact_id is None  # type: ignore[attr-defined]
    # Another practice's record, or one never linked, is still a 404.
    elsewhere = await Contact.create(
        practice=await Practice.create(name="Other"), first_name="X", last_name="Y"
    )
    for contact_id in (elsewhere.id, doctor.id):
        r = await http.post(
            f"{base}/contacts/{alternate_id}", data={**form, "contact_id": str(contact_id)}
        )
        assert r.status_code == 404


async def test_an_edit_from_a_page_read_before_a_colleagues_save_is_refused(
    http: httpx.AsyncClient,
    new_http: Callable[..., httpx.AsyncClient],
    cast: dict[str, Any],
) -> None:
    """The front desk put in the mother's new mobile; the therapist, whose page had been
    open since the morning, then changed her relationship and saved: the old number came
    back, and her reminders went to it. Now the second save is refused with the form kept,
    and nothing is changed."""
    helene = cast["helene"]
    base = f"/staff/clients/{helene.id}/circle"
    alice = await signed_in(new_http, cast["alice"])
    desk = await signed_in(new_http, cast["desk"])
    r = await alice.post(f"{circle_url(helene)}/contacts", json=MOTHER)
    alternate_id = r.json()["id"]
    # Both open the tab.
    alice_form = _edit_form_of((await alice.get(base)).text, alternate_id)
    desk_form = _edit_form_of((await desk.get(base)).text, alternate_id)
    desk_form["phone_number_0"] = "06 99 88 77 66"
    r = await desk.post(
        f"{base}/contacts/{alternate_id}",
        data={**desk_form, "csrf_token": desk.headers["X-CSRF-Token"]},
    )
    assert r.status_code == 303, r.text
    alice_form["relationship"] = "Mum"
    r = await alice.post(
        f"{base}/contacts/{alternate_id}",
        data={**alice_form, "csrf_token": alice.headers["X-CSRF-Token"]},
    )
    assert r.status_code == 409, r.text
    assert 'value="Mum"' in r.text  # what she typed is still in the form
    alternate = await AlternateContact.get(id=alternate_id)
    assert alternate.relationship == "Mother"
    numbers = await PhoneNumber.filter(alternate_contact_id=alternate_id).values_list(
        "number", flat=True
    )
    assert "06 99 88 77 66" in numbers
    # Saved again from the page as it is now, it goes through; the refused page's form is
    # based on the person as they are now too (what was typed, to compare and save again).
    again = _edit_form_of(r.text, alternate_id)
    fresh = _edit_form_of((await alice.get(base)).text, alternate_id)
    assert again["relationship"] == "Mum" and again["based_on"] == fresh["based_on"]
    r = await alice.post(
        f"{base}/contacts/{alternate_id}",
        data={**fresh, "relationship": "Mum", "csrf_token": alice.headers["X-CSRF-Token"]},
    )
    assert r.status_code == 303, r.text
    assert (await AlternateContact.get(id=alternate_id)).relationship == "Mum"


def _edit_form_of(page: str, alternate_id: int) -> dict[str, str]:
    """An alternate contact's edit form as the page shows it, as a browser would post it."""
    import re

    marker = f'/circle/contacts/{alternate_id}"'
    start = page.index(marker)
    form = page[start : page.index("</form>", start)]
    fields: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or name.group(1) == "csrf_token":
            continue
        value = re.search(r'value="([^"]*)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if kind and kind.group(1) in {"checkbox", "radio"}:
            if " checked" in tag:
                fields[name.group(1)] = value.group(1) if value else "on"
            continue
        fields[name.group(1)] = html.unescape(value.group(1)) if value else ""
    for select in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option[^>]*value="([^"]*)"[^>]*selected', select[1])
        fields[select[0]] = chosen.group(1) if chosen else ""
    return fields


async def test_the_api_is_refused_an_edit_based_on_an_old_version(
    http: httpx.AsyncClient, cast: dict[str, Any]
) -> None:
    helene = cast["helene"]
    await login(http, cast["alice"])
    first = (await http.post(f"{circle_url(helene)}/contacts", json=MOTHER)).json()
    url = f"{circle_url(helene)}/contacts/{first['id']}"
    r = await http.put(url, json={**MOTHER, "city": "Paris", "based_on": first["version"]})
    assert r.status_code == 200, r.text
    assert r.json()["version"] != first["version"]
    r = await http.put(url, json={**MOTHER, "city": "Nice", "based_on": first["version"]})
    assert r.status_code == 409
    assert (await AlternateContact.get(id=first["id"])).city == "Paris"
    # Without based_on, the details are replaced whatever they hold.
    assert (await http.put(url, json={**MOTHER, "city": "Nice"})).status_code == 200


async def test_adding_someone_twice_from_the_same_form_adds_them_once(
    http: httpx.AsyncClient, cast: dict[str, Any]
) -> None:
    """ "Add to the circle of care" clicked twice (or sent again after a network error)
    added the mother twice, and each copy had the session's reminders: two of each."""
    helene = cast["helene"]
    await login(http, cast["alice"])
    base = f"/staff/clients/{helene.id}/circle"
    key = await request_key_of(http, f"{base}?add=1")
    form = {
        "request_key": key,
        "first_name": "Marie",
        "last_name": "Dubois",
        "email": "marie@example.org",
        "reminder_email_hours": "24",
        "phone_number_0": "",
    }
    sent = await asyncio.gather(*(http.post(f"{base}/contacts", data=form) for _ in range(3)))
    assert [r.status_code for r in sent] == [303, 303, 303]
    assert await AlternateContact.filter(client_id=helene.id).count() == 1
    # A new page is a new form: the same person may be added on purpose.
    assert await request_key_of(http, f"{base}?add=1") != key
    # Through the API, with a key of the caller's own.
    body = {"first_name": "Paul", "last_name": "Dubois", "request_key": "api-1"}
    first = await http.post(circle_url(helene) + "/contacts", json=body)
    again = await http.post(circle_url(helene) + "/contacts", json=body)
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["id"] == again.json()["id"]
    assert await AlternateContact.filter(client_id=helene.id).count() == 2
