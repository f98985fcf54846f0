"""The practice's contacts: people who are not clients, with an accent-free name search, kept
by any staff member, and never reachable from another practice or the portal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from models.accounts import Practice
from models.audit import AuditEntry
from models.clients import Contact
from server.actions.circle import CircleContactIn, do_add_circle_contact
from tests.conftest import Factory, login

DOCTOR: dict[str, Any] = {
    "kind": "doctor",
    "first_name": "Hélène",
    "last_name": "Lefèvre",
    "organisation": "Maison de santé",
    "email": "H.Lefevre@Example.org",
    "phone": "04 78 00 00 00",
    "address": "12 avenue du Parc\n69006 Lyon",
    "notes": "Prefers email.",
}


@pytest.fixture
async def staff(make: Factory) -> dict[str, Any]:
    return {
        "owner": await make.owner(),
        "alice": await make.therapist(first_name="Alice"),
        "desk": await make.office_admin(),
    }


async def test_create_search_and_update(http: httpx.AsyncClient, staff: dict[str, Any]) -> None:
    await login(http, staff["alice"])
    r = await http.post("/api/contacts", json=DOCTOR)
    assert r.status_code == 200, r.text
    doctor = r.json()
    assert doctor["email"] == "h.lefevre@example.org" and doctor["kind"] == "doctor"
    row = await Contact.get(id=doctor["id"])
    assert row.search_name == "helene lefevre"
    await http.post(
        "/api/contacts", json={"kind": "teacher", "first_name": "Marc", "last_name": "Durand"}
    )
    # Accent- and case-free, every word somewhere in the name.
    for q in ("lefevre", "HÉLÈNE", "hel lef"):
        found = (await http.get("/api/contacts", params={"q": q})).json()
        assert [c["last_name"] for c in found["contacts"]] == ["Lefèvre"], q
    assert (await http.get("/api/contacts", params={"q": "zzz"})).json()["total"] == 0
    assert (await http.get("/api/contacts", params={"kind": "teacher"})).json()["total"] == 1
    assert (await http.get("/api/contacts")).json()["total"] == 2
    # Renaming keeps the search key in step.
    r = await http.put(f"/api/contacts/{doctor['id']}", json={**DOCTOR, "first_name": "Noémie"})
    assert r.status_code == 200 and r.json()["first_name"] == "Noémie"
    await row.refresh_from_db()
    assert row.search_name == "noemie lefevre"
    assert (await http.get("/api/contacts", params={"q": "noemie"})).json()["total"] == 1
    entry = await AuditEntry.get(action="contact.updated")
    assert entry.detail == {"fields": ["first_name"]}  # names of fields, never values
    assert (await http.get(f"/api/contacts/{doctor['id']}")).json()["notes"] == "Prefers email."


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"first_name": ""}, "first_name"),
        ({"last_name": "   "}, "last_name"),
        ({"email": "nope"}, "email"),
        ({"kind": "plumber"}, "kind"),
        ({"phone": "1" * 41}, "phone"),
    ],
)
async def test_contact_rules(
    http: httpx.AsyncClient, staff: dict[str, Any], changes: dict[str, Any], field: str
) -> None:
    await login(http, staff["desk"])
    r = await http.post("/api/contacts", json={**DOCTOR, **changes})
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["fields"]
    assert await Contact.all().count() == 0


async def test_removing_a_contact(
    http: httpx.AsyncClient, staff: dict[str, Any], make: Factory
) -> None:
    await login(http, staff["owner"])
    doctor = (await http.post("/api/contacts", json=DOCTOR)).json()
    client = await make.client(staff["alice"])
    row = await Contact.get(id=doctor["id"])
    alternate = await do_add_circle_contact(None, client, CircleContactIn(contact_id=row.id), row)
    assert (await http.delete(f"/api/contacts/{doctor['id']}")).status_code == 200
    await row.refresh_from_db()
    assert row.deleted_at is not None  # soft
    assert (await http.get("/api/contacts")).json()["total"] == 0
    for method in ("GET", "PUT", "DELETE"):
        r = await http.request(method, f"/api/contacts/{doctor['id']}", json=DOCTOR)
        assert r.status_code == 404, method
    # The circle keeps its copy of the person.
    await alternate.refresh_from_db()
    assert alternate.deleted_at is None and alternate.last_name == "Lefèvre"


async def test_access(
    new_http: Callable[..., httpx.AsyncClient], staff: dict[str, Any], make: Factory
) -> None:
    elsewhere = await Contact.create(
        practice=await Practice.create(name="Other"), first_name="Not", last_name="Yours"
    )
    # Every staff role keeps the practice's contacts.
    for i, who in enumerate(("owner", "alice", "desk")):
        http = new_http(f"10.8.0.{i + 1}")
        await login(http, staff[who])
        r = await http.post("/api/contacts", json={**DOCTOR, "last_name": who})
        assert r.status_code == 200, r.text
        assert (await http.get("/api/contacts")).json()["total"] == i + 1
        assert (await http.get(f"/api/contacts/{elsewhere.id}")).status_code == 404
        r = await http.put(f"/api/contacts/{elsewhere.id}", json=DOCTOR)
        assert r.status_code == 404
        assert (await http.get(f"/staff/contacts/{elsewhere.id}")).status_code == 404
        assert "Yours" not in (await http.get("/staff/contacts")).text
    # A client (even signed in) and nobody never reach them.
    client = await make.client(staff["alice"])
    portal = new_http("10.8.1.1")
    await login(portal, client)
    assert (await portal.get("/api/contacts")).status_code == 401
    assert (await portal.post("/api/contacts", json=DOCTOR)).status_code == 401
    nobody = new_http("10.8.1.2")
    assert (await nobody.get("/api/contacts")).status_code == 401
    assert (await nobody.get("/staff/contacts")).status_code == 303
    await elsewhere.refresh_from_db()
    assert elsewhere.first_name == "Not"


async def test_the_pages(http: httpx.AsyncClient, staff: dict[str, Any], make: Factory) -> None:
    me = await login(http, staff["alice"])
    token = me["csrf_token"]
    page = await http.get("/staff/contacts")
    assert page.status_code == 200 and "No contacts yet." in page.text
    assert 'href="/staff/contacts"' in (await http.get("/staff/clients")).text  # the nav link
    # A new contact: errors come back with what was typed.
    form = {"csrf_token": token, **DOCTOR, "email": "nope"}
    r = await http.post("/staff/contacts", data=form)
    assert r.status_code == 422 and 'value="Maison de santé"' in r.text
    assert "Enter an email address" in r.text
    r = await http.post("/staff/contacts", data={**form, "email": ""})
    assert r.status_code == 303
    doctor = await Contact.get(last_name="Lefèvre")
    page = await http.get("/staff/contacts", params={"q": "lefevre"})
    assert f'href="/staff/contacts/{doctor.id}"' in page.text
    page = await http.get("/staff/contacts", params={"q": "durand"})
    assert "No contact matches." in page.text
    # The contact's page: edit, see whose circle holds it, remove.
    mine = await make.client(staff["alice"], first_name="Camille", last_name="Petit")
    hidden = await make.client(await make.therapist(), first_name="Secret", last_name="Client")
    for client in (mine, hidden):
        await do_add_circle_contact(None, client, CircleContactIn(contact_id=doctor.id), doctor)
    page = await http.get(f"/staff/contacts/{doctor.id}")
    assert "Camille Petit" in page.text and "Secret" not in page.text
    r = await http.post(
        f"/staff/contacts/{doctor.id}", data={"csrf_token": token, **DOCTOR, "kind": "referrer"}
    )
    assert r.status_code == 303
    await doctor.refresh_from_db()
    assert doctor.kind.value == "referrer"
    r = await http.post(
        f"/staff/contacts/{doctor.id}", data={"csrf_token": token, **DOCTOR, "last_name": ""}
    )
    assert r.status_code == 422
    r = await http.post(f"/staff/contacts/{doctor.id}/remove", data={"csrf_token": token})
    assert r.status_code == 303
    assert (await http.get(f"/staff/contacts/{doctor.id}")).status_code == 404
    assert "Lefèvre" not in (await http.get("/staff/contacts")).text
    french = await http.get("/staff/contacts", headers={"Accept-Language": "fr"})
    assert "Aucun contact pour l’instant." in french.text


async def test_a_save_from_a_page_read_before_a_colleagues_is_refused(
    new_http: Callable[..., httpx.AsyncClient], staff: dict[str, Any]
) -> None:
    """The front desk put in the doctor's new number; a therapist whose page of the doctor
    had been open since the morning then added a note and saved: the old number came back
    for the whole practice. Now the second save is refused (409) with what was typed shown,
    nothing is changed, and saved again from the page as it is now it goes through."""
    import re

    desk, alice = new_http("10.8.2.1"), new_http("10.8.2.2")
    desk_token = (await login(desk, staff["desk"]))["csrf_token"]
    alice_token = (await login(alice, staff["alice"]))["csrf_token"]
    doctor = (await desk.post("/api/contacts", json=DOCTOR)).json()
    url = f"/staff/contacts/{doctor['id']}"

    def based_on(page: str) -> str:
        found = re.search(r'name="based_on" value="([^"]+)"', page)
        assert found, "the form sends back what it was opened on"
        return found.group(1)

    alice_version = based_on((await alice.get(url)).text)
    desk_version = based_on((await desk.get(url)).text)
    form = {**DOCTOR, "email": "h.lefevre@example.org"}
    r = await desk.post(
        url,
        data={
            **form,
            "phone": "04 78 99 99 99",
            "csrf_token": desk_token,
            "based_on": desk_version,
        },
    )
    assert r.status_code == 303
    r = await alice.post(
        url,
        data={
            **form,
            "notes": "Prefers email. On leave in August.",
            "csrf_token": alice_token,
            "based_on": alice_version,
        },
    )
    assert r.status_code == 409
    assert "On leave in August." in r.text  # what she wrote is shown
    row = await Contact.get(id=doctor["id"])
    assert (row.phone, row.notes) == ("04 78 99 99 99", "Prefers email.")
    # The form now holds the doctor as saved; her note, added to it, goes through.
    assert 'value="04 78 99 99 99"' in r.text
    r = await alice.post(
        url,
        data={
            **form,
            "phone": "04 78 99 99 99",
            "notes": "Prefers email. On leave in August.",
            "csrf_token": alice_token,
            "based_on": based_on(r.text),
        },
    )
    assert r.status_code == 303
    row = await Contact.get(id=doctor["id"])
    assert (row.phone, row.notes) == ("04 78 99 99 99", "Prefers email. On leave in August.")


async def test_the_api_is_refused_a_save_based_on_an_old_version(
    http: httpx.AsyncClient, staff: dict[str, Any]
) -> None:
    await login(http, staff["desk"])
    first = (await http.post("/api/contacts", json=DOCTOR)).json()
    url = f"/api/contacts/{first['id']}"
    r = await http.put(
        url, json={**DOCTOR, "phone": "04 78 99 99 99", "based_on": first["version"]}
    )
    assert r.status_code == 200 and r.json()["version"] != first["version"]
    r = await http.put(url, json={**DOCTOR, "notes": "Old page.", "based_on": first["version"]})
    assert r.status_code == 409
    row = await Contact.get(id=first["id"])
    assert (row.phone, row.notes) == ("04 78 99 99 99", "Prefers email.")
