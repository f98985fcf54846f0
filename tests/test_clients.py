"""The client list and new client files: accent-free search, filters, paging, who may see
and assign what."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx

from models.accounts import Practice
from models.clients import Client, ClientStatus, Tag
from server.actions import clients
from tests.conftest import Factory, login, request_key_of


async def names(http: httpx.AsyncClient, query: str) -> list[str]:
    r = await http.get(f"/api/clients?{query}")
    assert r.status_code == 200, r.text
    return [f"{c['first_name']} {c['last_name']}" for c in r.json()["clients"]]


async def test_search_ignores_accents_and_case(http: httpx.AsyncClient, make: Factory) -> None:
    alice = await make.therapist()
    await make.client(alice, first_name="Hélène", last_name="Dubois")
    await make.client(alice, first_name="Marc", last_name="Lefèvre")
    await login(http, alice)
    for q in ("helene", "HELENE", "Hélène", "dub hel", "hélene dubois"):
        assert await names(http, f"q={q}") == ["Hélène Dubois"], q
    assert await names(http, "q=lefevre") == ["Marc Lefèvre"]
    assert await names(http, "q=zebra") == []


async def test_filters_by_status_tag_and_therapist(http: httpx.AsyncClient, make: Factory) -> None:
    owner = await make.owner()
    alice = await make.therapist(first_name="Alice")
    bob = await make.therapist(first_name="Bob")
    lead = await make.client(alice, first_name="Lea", last_name="Lead", status=ClientStatus.LEAD)
    await make.client(alice, first_name="Ann", last_name="Active")
    bobs = await make.client(bob, first_name="Bea", last_name="Bobs")
    couple = await Tag.create(practice=await make.practice(), name="couple")
    await bobs.tags.add(couple)
    await login(http, owner)
    assert await names(http, "status=lead") == ["Lea Lead"]
    assert await names(http, f"tag={couple.id}") == ["Bea Bobs"]
    assert await names(http, f"therapist={alice.id}") == ["Ann Active", "Lea Lead"]
    assert await names(http, f"therapist={alice.id}&status=active") == ["Ann Active"]
    r = await http.get("/api/clients?status=sleeping")
    assert r.status_code == 422 and "status" in r.json()["error"]["fields"]
    assert lead.status is ClientStatus.LEAD


async def test_paging(http: httpx.AsyncClient, make: Factory) -> None:
    alice = await make.therapist()
    for i in range(120):
        await make.client(alice, first_name="C", last_name=f"Client{i:03d}", portal=False)
    await login(http, alice)
    first = (await http.get("/api/clients")).json()
    assert (first["total"], first["pages"], len(first["clients"])) == (120, 3, 50)
    third = (await http.get("/api/clients?page=3")).json()
    assert [c["last_name"] for c in third["clients"]][-1] == "Client119"
    assert len(third["clients"]) == 20
    # Past the end shows the last page rather than an empty one.
    assert (await http.get("/api/clients?page=9")).json()["page"] == 3
    page = await http.get("/staff/clients?page=2&q=client")
    assert "Client050" in page.text and 'rel="next"' in page.text and "q=client" in page.text


async def test_therapists_see_their_caseload_only(http: httpx.AsyncClient, make: Factory) -> None:
    alice = await make.therapist(first_name="Alice")
    supervisee = await make.therapist(first_name="Sam", supervisor=alice)
    bob = await make.therapist(first_name="Bob")
    await make.client(alice, first_name="A", last_name="Mine")
    await make.client(supervisee, first_name="S", last_name="Supervised")
    await make.client(bob, first_name="B", last_name="Bobs")
    await login(http, alice)
    assert await names(http, "") == ["A Mine", "S Supervised"]
    assert await names(http, f"therapist={bob.id}") == []


async def test_create_client(http: httpx.AsyncClient, make: Factory) -> None:
    alice = await make.therapist(first_name="Alice")
    bob = await make.therapist(first_name="Bob")
    me = await login(http, alice)
    r = await http.post("/api/clients", json={"first_name": "Zoé", "last_name": "Durand"})
    assert r.status_code == 200, r.text
    client = await Client.get(id=r.json()["id"])
    # A therapist's new client is theirs, so they can see the file they just opened.
    assert client.therapist_id == alice.id  # type: ignore[attr-defined]
    assert client.search_name == "zoe durand"
    # Not to a colleague outside their caseload: same answer as an unknown id.
    r = await http.post(
        "/api/clients", json={"first_name": "X", "last_name": "Y", "therapist_id": bob.id}
    )
    assert r.status_code == 404
    r = await http.post("/api/clients", json={"first_name": "", "last_name": "Y", "email": "nope"})
    assert r.status_code == 422
    assert set(r.json()["error"]["fields"]) == {"first_name", "email"}
    assert await Client.all().count() == 1
    # The page's form: errors shown in place (422), success opens the new file.
    form = {
        "first_name": "Paul",
        "last_name": "Petit",
        "therapist_id": "",
        "csrf_token": me["csrf_token"],
    }
    r = await http.post("/staff/clients", data=form)
    assert r.status_code == 303 and r.headers["location"].startswith("/staff/clients/")
    r = await http.post("/staff/clients", data={**form, "email": "bad", "first_name": ""})
    assert r.status_code == 422 and "This field is required." in r.text


async def test_owner_and_front_desk_assign_any_clinician(
    http: httpx.AsyncClient, make: Factory
) -> None:
    desk = await make.office_admin()
    bob = await make.therapist(first_name="Bob")
    await login(http, desk)
    r = await http.post(
        "/api/clients", json={"first_name": "N", "last_name": "New", "therapist_id": bob.id}
    )
    assert r.status_code == 200
    assert (await Client.get(id=r.json()["id"])).therapist_id == bob.id  # type: ignore[attr-defined]
    r = await http.post(
        "/api/clients", json={"first_name": "N", "last_name": "New", "therapist_id": desk.id}
    )
    assert r.status_code == 404  # the front desk is not a clinician


async def test_a_refused_new_client_keeps_what_was_typed(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """A 422 on "New client" opened the form again with the error but every field blank and
    the therapist and status back to their defaults."""
    desk = await make.office_admin()
    await make.therapist(first_name="Alice")
    bob = await make.therapist(first_name="Bob")
    await login(http, desk)
    form = {
        "first_name": "Zoé",
        "last_name": "Durand-Lefèvre",
        "email": "zoe.durand@",  # refused
        "phone": "06 12 34 56 78",
        "therapist_id": str(bob.id),
        "status": "lead",
    }
    r = await http.post("/staff/clients", data=form)
    assert r.status_code == 422, r.text
    page = r.text
    assert re.search(r'name="email"[^>]*>\s*<span class="field-error">Enter an email', page)
    for name in ("first_name", "last_name", "email", "phone"):
        assert re.search(rf'name="{name}"[^>]*value="{form[name]}"', page), name
    assert re.search(rf'<option value="{bob.id}" selected>', page)
    assert re.search(r'<option value="lead" selected>', page)
    assert not re.search(r'<option value="active" selected>', page)
    assert not await Client.exists(last_name="Durand-Lefèvre")


async def test_a_request_key_is_one_practice_s_own(make: Factory) -> None:
    """The same key in two practices opens a file in each (it was unique across every
    practice's clients, so the second answered 409 and told the key had been used)."""
    ours = await make.practice()
    theirs = await Practice.create(name="Other practice")
    first = await clients.do_create_client(
        None, theirs, first_name="Bea", last_name="B", request_key="new-client-1"
    )
    mine = await clients.do_create_client(
        None, ours, first_name="Jeanne", last_name="Durand", request_key="new-client-1"
    )
    assert mine.id != first.id and mine.practice_id == ours.id  # type: ignore[attr-defined]
    again = await clients.do_create_client(
        None, ours, first_name="Jeanne", last_name="Durand", request_key="new-client-1"
    )
    assert again.id == mine.id


async def test_a_new_client_form_sent_twice_opens_one_file(
    make: Factory, http: httpx.AsyncClient
) -> None:
    """A double click on "Create" (or the form sent again after an answer that never came)
    opened two files for one person, and their notes and invoices then split between them."""
    await login(http, await make.owner())
    form = {
        "csrf_token": http.headers["X-CSRF-Token"],
        "first_name": "Jeanne",
        "last_name": "Durand",
        "request_key": await request_key_of(http, "/staff/clients"),
    }
    results = await asyncio.gather(*(http.post("/staff/clients", data=form) for _ in range(2)))
    assert [r.status_code for r in results] == [303, 303]
    assert len({r.headers["location"] for r in results}) == 1
    assert await Client.filter(last_name="Durand").count() == 1
    # Another person of the same name, from a new page, is a new file.
    form["request_key"] = await request_key_of(http, "/staff/clients")
    assert (await http.post("/staff/clients", data=form)).status_code == 303
    assert await Client.filter(last_name="Durand").count() == 2


def _select(page: str, name: str) -> str:
    start = page.index(f'<select name="{name}"')
    return page[start : page.index("</select>", start)]


async def test_the_filter_finds_a_switched_off_therapists_clients(
    new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    """Bob left: his clients keep him as therapist until handed over one by one. The owner and
    the front desk find them with the therapist filter, where he is marked "(left)"; he is
    offered to no new client, and Carl, who left without clients, is not listed at all."""
    owner = await make.owner()
    desk = await make.office_admin()
    alice = await make.therapist(first_name="Alice")
    bob = await make.therapist(first_name="Bob", last_name="Leaver")
    carl = await make.therapist(first_name="Carl")
    await make.client(bob, first_name="Bea", last_name="Bobs")
    await make.client(alice, first_name="Ann", last_name="Active")
    for who in (bob, carl):
        who.is_active = False
        await who.save(update_fields=["is_active"])
    for n, who in enumerate((owner, desk)):
        http = new_http(f"10.6.0.{n + 1}")
        await login(http, who)
        page = (await http.get("/staff/clients")).text
        choices = _select(page, "therapist")
        assert f'<option value="{bob.id}" >Bob Leaver (left)</option>' in choices
        assert f'<option value="{alice.id}"' in choices
        assert f'<option value="{carl.id}"' not in choices
        assert f'<option value="{bob.id}"' not in _select(page, "therapist_id")
        assert await names(http, f"therapist={bob.id}") == ["Bea Bobs"]
    # A therapist's filter is their caseload, as before.
    http = new_http("10.6.0.9")
    await login(http, alice)
    page = (await http.get("/staff/clients")).text
    assert f'<option value="{bob.id}"' not in _select(page, "therapist")
