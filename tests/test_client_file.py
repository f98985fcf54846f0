"""The client file's tabs: contact, clinical and account details, with their rules and who
may see what."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from models.accounts import Practice, StaffUser
from models.audit import AuditEntry
from models.clients import Client, PaymentMethod, PhoneNumber, Tag
from server.actions.client_file import looks_like_card_number
from tests.conftest import Factory, login


def contact(client: Client, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"first_name": client.first_name, "last_name": client.last_name}
    body.update(changes)
    return body


@pytest.fixture
async def file(make: Factory) -> dict[str, Any]:
    alice = await make.therapist(first_name="Alice")
    bob = await make.therapist(first_name="Bob")
    desk = await make.office_admin()
    helene = await make.client(alice, first_name="Hélène", last_name="Dubois")
    return {"alice": alice, "bob": bob, "desk": desk, "helene": helene}


async def test_contact_details(http: httpx.AsyncClient, file: dict[str, Any]) -> None:
    helene: Client = file["helene"]
    assert helene.reminder_email_hours is None and helene.reminder_sms_hours is None
    await login(http, file["alice"])
    body = contact(
        helene,
        middle_name="Marie",
        preferred_name="Léna",
        date_of_birth="1990-04-02",
        city="Lyon",
        phones=[
            {"number": "+33 6 12 34 56 78", "label": "mobile", "for_sms": True},
            {"number": "+33 4 00 00 00 00", "label": "home", "is_primary": True},
        ],
        emails=[{"address": "Helene@Example.org"}, {"address": "work@example.org"}],
        reminder_email_hours=72,
        reminder_sms_hours=2,
    )
    r = await http.put(f"/api/clients/{helene.id}/contact", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["phone"] == "+33 4 00 00 00 00"  # the one marked primary
    assert out["email"] == "helene@example.org"  # none marked: the first becomes primary
    assert [p["for_sms"] for p in out["phones"]] == [True, False]
    await helene.refresh_from_db()
    assert helene.search_name == "helene marie dubois lena"
    assert (await http.get("/api/clients?q=lena")).json()["total"] == 1
    entry = await AuditEntry.filter(action="client.contact_updated").first()
    assert entry is not None and "phones" in entry.detail["fields"]
    assert "Lyon" not in str(entry.detail)  # which fields changed, never their values


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reminder_email_hours": 1}, "reminder_email_hours"),
        ({"reminder_sms_hours": 73}, "reminder_sms_hours"),
        ({"reminder_sms_hours": 24}, "reminder_sms_hours"),  # no number marked for SMS
        (
            {"phones": [{"number": "1", "for_sms": True}, {"number": "2", "for_sms": True}]},
            "phones",
        ),
        (
            {"phones": [{"number": "1", "is_primary": True}, {"number": "2", "is_primary": True}]},
            "phones",
        ),
        ({"emails": [{"address": "not-an-email"}]}, "emails.0.address"),
        ({"first_name": ""}, "first_name"),
        ({"date_of_birth": "yesterday"}, "date_of_birth"),
        ({"tag_ids": [999999]}, "tag_ids"),
    ],
)
async def test_contact_rules(
    http: httpx.AsyncClient, file: dict[str, Any], changes: dict[str, Any], field: str
) -> None:
    helene: Client = file["helene"]
    await login(http, file["alice"])
    r = await http.put(f"/api/clients/{helene.id}/contact", json=contact(helene, **changes))
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["fields"]
    await helene.refresh_from_db()
    assert helene.first_name == "Hélène" and await PhoneNumber.all().count() == 0


async def test_reminder_bounds_accepted(http: httpx.AsyncClient, file: dict[str, Any]) -> None:
    helene: Client = file["helene"]
    await login(http, file["alice"])
    phones = [{"number": "0612345678", "for_sms": True}]
    for hours in (2, 72):
        body = contact(helene, phones=phones, reminder_sms_hours=hours, reminder_email_hours=hours)
        assert (await http.put(f"/api/clients/{helene.id}/contact", json=body)).status_code == 200


async def test_tags(http: httpx.AsyncClient, file: dict[str, Any], make: Factory) -> None:
    helene: Client = file["helene"]
    mine = await Tag.create(practice=await make.practice(), name="couple")
    theirs = await Tag.create(practice=await Practice.create(name="Other"), name="x")
    me = await login(http, file["alice"])
    r = await http.put(f"/api/clients/{helene.id}/contact", json=contact(helene, tag_ids=[mine.id]))
    assert [t["name"] for t in r.json()["tags"]] == ["couple"]
    r = await http.put(
        f"/api/clients/{helene.id}/contact", json=contact(helene, tag_ids=[theirs.id])
    )
    assert r.status_code == 422
    # The page creates a tag and adds it in one go.
    r = await http.post(
        f"/staff/clients/{helene.id}/tags", data={"name": " EMDR ", "csrf_token": me["csrf_token"]}
    )
    assert r.status_code == 303
    assert sorted(t.name for t in await helene.tags.all()) == ["EMDR", "couple"]


async def test_clinical_details_and_who_sees_them(new_http: Any, file: dict[str, Any]) -> None:
    helene: Client = file["helene"]
    alice = new_http("10.5.0.1")
    await login(alice, file["alice"])
    body = {"referral": "Dr Martin", "diagnosis_keywords": ["anxiety", "insomnia"]}
    r = await alice.put(f"/api/clients/{helene.id}/clinical", json=body)
    assert r.status_code == 200 and r.json()["clinical"]["referral"] == "Dr Martin"
    five = {"diagnosis_keywords": ["a", "b", "c", "d", "e"]}
    r = await alice.put(f"/api/clients/{helene.id}/clinical", json=five)
    assert r.status_code == 422 and "diagnosis_keywords" in r.json()["error"]["fields"]
    # The front desk sees the file but not its clinical part, unless the practice allows it.
    desk = new_http("10.5.0.2")
    await login(desk, file["desk"])
    got = (await desk.get(f"/api/clients/{helene.id}")).json()
    assert got["clinical"] is None and "Dr Martin" not in str(got)
    assert (await desk.put(f"/api/clients/{helene.id}/clinical", json=body)).status_code == 404
    assert (await desk.get(f"/staff/clients/{helene.id}/clinical")).status_code == 404
    page = await desk.get(f"/staff/clients/{helene.id}/contact")
    assert page.status_code == 200 and "/clinical" not in page.text
    await Practice.filter(id=helene.practice_id).update(office_admins_see_clinical=True)  # type: ignore[attr-defined]
    assert (await desk.get(f"/api/clients/{helene.id}")).json()["clinical"][
        "referral"
    ] == "Dr Martin"
    # Bob's caseload does not include Hélène: her whole file is a 404 for him.
    bob = new_http("10.5.0.3")
    await login(bob, file["bob"])
    assert (await bob.get(f"/api/clients/{helene.id}")).status_code == 404
    assert (await bob.get(f"/staff/clients/{helene.id}/clinical")).status_code == 404
    # Clients never reach the staff API.
    portal = new_http("10.5.0.4")
    await login(portal, helene)
    assert (await portal.get(f"/api/clients/{helene.id}")).status_code == 401
    reads = await AuditEntry.filter(action="read.clinical", client_id=helene.id).count()
    assert reads == 0  # the API read is a file read; the clinical tab records its own
    await alice.get(f"/staff/clients/{helene.id}/clinical")
    assert await AuditEntry.filter(action="read.clinical", client_id=helene.id).count() == 1


def test_card_numbers_are_recognised() -> None:
    assert looks_like_card_number("4242 4242 4242 4242")
    assert looks_like_card_number("card 4111-1111-1111-1111 exp 04/28")
    assert not looks_like_card_number("Visa ending 4242, expires 04/28")
    assert not looks_like_card_number("4242 4242 4242 4241")  # fails Luhn
    assert looks_like_card_number("4242 4242 4242 4241", any_long_number=True)


async def test_account_details_and_payment_methods(
    http: httpx.AsyncClient, file: dict[str, Any], make: Factory
) -> None:
    helene: Client = file["helene"]
    await login(http, file["alice"])
    body = {
        "payment_terms": "monthly",
        "health_id": "1 85 05 78 006 084 36",
        "insurance_company": "MGEN",
    }
    r = await http.put(f"/api/clients/{helene.id}/account", json=body)
    assert r.status_code == 200 and r.json()["account"]["payment_terms"] == "monthly"
    r = await http.put(
        f"/api/clients/{helene.id}/account",
        json={**body, "account_comments": "pays with 4242424242424242"},
    )
    assert r.status_code == 422 and "account_comments" in r.json()["error"]["fields"]
    url = f"/api/clients/{helene.id}/payment-methods"
    r = await http.post(url, json={"kind": "card", "description": "Visa 4242 4242 4242 4241"})
    assert r.status_code == 422 and "description" in r.json()["error"]["fields"]
    assert await PaymentMethod.all().count() == 0
    r = await http.post(url, json={"kind": "card", "description": "Visa ending 4242"})
    assert r.status_code == 200
    assert [m["description"] for m in r.json()["account"]["payment_methods"]] == [
        "Visa ending 4242"
    ]
    # Removing through another client's file is a 404, not a removal.
    other = await make.client(file["alice"], first_name="O", last_name="Ther")
    method = await PaymentMethod.get(client_id=helene.id)
    token = http.headers["X-CSRF-Token"]
    r = await http.post(
        f"/staff/clients/{other.id}/payment-methods/{method.id}/remove",
        data={"csrf_token": token},
    )
    assert r.status_code == 404
    r = await http.post(
        f"/staff/clients/{helene.id}/payment-methods/{method.id}/remove",
        data={"csrf_token": token},
    )
    assert r.status_code == 303
    await method.refresh_from_db()
    assert method.deleted_at is not None  # soft: the record stays


async def test_every_tab_renders_and_forms_post(
    http: httpx.AsyncClient, file: dict[str, Any]
) -> None:
    helene: Client = file["helene"]
    me = await login(http, file["alice"])
    for tab in ("contact", "clinical", "sessions", "account", "tasks"):
        r = await http.get(f"/staff/clients/{helene.id}/{tab}")
        assert r.status_code == 200, tab
    assert (await http.get(f"/staff/clients/{helene.id}/nothing")).status_code == 404
    assert (await http.get(f"/staff/clients/{helene.id}")).status_code == 200
    form = {
        "csrf_token": me["csrf_token"],
        "first_name": "Hélène",
        "last_name": "Dubois",
        "status": "lead",
        "phone_number_0": "0611111111",
        "phone_label_0": "mobile",
        "phone_number_1": "",
        "sms_phone": "0",
        "email_address_0": "h@example.org",
        "primary_email": "0",
        "reminder_email_hours": "",
        "reminder_sms_hours": "24",
        "tags_present": "1",
    }
    r = await http.post(f"/staff/clients/{helene.id}/contact", data=form)
    assert r.status_code == 303, r.text
    # A tag "id" that passes str.isdigit() but names no row is left out, not a 500.
    r = await http.post(f"/staff/clients/{helene.id}/contact", data={**form, "tag_ids": "²"})
    assert r.status_code == 303, r.text
    await helene.refresh_from_db()
    assert (helene.status.value, helene.reminder_sms_hours, helene.phone) == (
        "lead",
        24,
        "0611111111",
    )
    r = await http.post(
        f"/staff/clients/{helene.id}/contact", data={**form, "reminder_sms_hours": "80"}
    )
    assert r.status_code == 422 and "Off, or between 2 and 72 hours" in r.text
    r = await http.post(
        f"/staff/clients/{helene.id}/clinical",
        data={"csrf_token": me["csrf_token"], "referral": "GP", "diagnosis_keywords": "sleep"},
    )
    assert r.status_code == 303
    await helene.refresh_from_db()
    assert helene.diagnosis_keywords == ["sleep"]


async def test_service_fee_discounts(
    http: httpx.AsyncClient, file: dict[str, Any], make: Factory
) -> None:
    from decimal import Decimal

    from models.agenda import DiscountKind, ServiceDiscount, discounted_price
    from server.actions import agenda

    practice = await make.practice()
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    group = await agenda.do_create_service(
        None, practice, name="Groupe", duration_minutes=90, price=Decimal("30")
    )
    helene: Client = file["helene"]
    me = await login(http, file["alice"])
    url = f"/staff/clients/{helene.id}/discounts"
    token = me["csrf_token"]
    r = await http.post(
        url, data={"csrf_token": token, "service_id": talk.id, "kind": "percent", "value": "20"}
    )
    assert r.status_code == 303
    r = await http.post(
        url,
        data={"csrf_token": token, "service_id": group.id, "kind": "fixed_price", "value": "15"},
    )
    assert r.status_code == 303
    bad = await http.post(
        url, data={"csrf_token": token, "service_id": talk.id, "kind": "percent", "value": "120"}
    )
    assert bad.status_code == 422 and "between 0 and 100" in bad.text
    other = await Practice.create(name="Elsewhere")
    theirs = await agenda.do_create_service(
        None, other, name="X", duration_minutes=30, price=Decimal("1")
    )
    r = await http.post(
        url, data={"csrf_token": token, "service_id": theirs.id, "kind": "percent", "value": "5"}
    )
    assert r.status_code == 404
    discounts = {d.service_id: d for d in await ServiceDiscount.filter(client_id=helene.id)}  # type: ignore[attr-defined]
    assert discounted_price(talk.price, discounts[talk.id]) == Decimal("56.00")
    assert discounted_price(group.price, discounts[group.id]) == Decimal("15")
    assert discounted_price(talk.price, None) == Decimal("70")
    page = await http.get(f"/staff/clients/{helene.id}/account")
    section = page.text.split('id="discounts"', 1)[1].split("</section>", 1)[0]
    assert "20% off" in section and "€56.00" in section, section
    # Setting it again replaces it; removing it restores the listed price.
    await http.post(
        url, data={"csrf_token": token, "service_id": talk.id, "kind": "percent", "value": "10"}
    )
    assert (await ServiceDiscount.get(client_id=helene.id, service_id=talk.id)).value == Decimal(
        "10"
    )
    d = await ServiceDiscount.get(client_id=helene.id, service_id=talk.id)
    assert d.kind is DiscountKind.PERCENT
    r = await http.post(f"{url}/{d.id}/remove", data={"csrf_token": token})
    assert r.status_code == 303 and not await ServiceDiscount.filter(id=d.id).exists()


async def test_an_inactive_client_with_sessions_still_booked_says_so_on_the_file(
    http: httpx.AsyncClient, make: Factory, file: dict[str, Any]
) -> None:
    """Marked inactive with sessions left on the agenda: the reminders still go (a booking
    is the stronger sign), and every tab of the file says how many are booked."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from models.jobs import Job, JobStatus
    from server.actions import agenda

    helene: Client = file["helene"]
    practice = await make.practice()
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    office = await agenda.do_create_location(None, practice, name="Cabinet", address="")
    soon = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    for days in (0, 7):
        await agenda.do_book_appointment(
            None,
            practitioner=file["alice"],
            client=helene,
            service=talk,
            starts_at=soon + timedelta(days=days),
            location=office,
        )
    await login(http, file["alice"])
    body = contact(helene, emails=[{"address": "helene@example.org"}], reminder_email_hours=24)
    assert (await http.put(f"/api/clients/{helene.id}/contact", json=body)).status_code == 200
    page = await http.get(f"/staff/clients/{helene.id}/contact")
    assert "data-booked-while-inactive" not in page.text  # active: nothing to say
    inactive = {**body, "status": "archived"}
    assert (await http.put(f"/api/clients/{helene.id}/contact", json=inactive)).status_code == 200
    for tab in ("contact", "sessions", "tasks"):
        page = await http.get(f"/staff/clients/{helene.id}/{tab}")
        assert "data-booked-while-inactive" in page.text
        assert "still has 2 sessions booked" in page.text
    reminders = Job.filter(key__startswith="reminder:", status=JobStatus.PENDING)
    assert await reminders.count() == 2
    active = {**body, "status": "active"}
    assert (await http.put(f"/api/clients/{helene.id}/contact", json=active)).status_code == 200
    page = await http.get(f"/staff/clients/{helene.id}/sessions")
    assert "data-booked-while-inactive" not in page.text


async def test_saving_a_tab_read_earlier_changes_only_that_tab(
    make: Factory, file: dict[str, Any]
) -> None:
    """A save wrote every column of the client as its request had read them: a contact-tab
    save undid a reassignment to another therapist made meanwhile (who may see the file),
    and the clinical tab's comments saved from another tab."""
    from server.actions.client_file import (
        ClinicalIn,
        ContactIn,
        do_assign_therapist,
        do_update_clinical_details,
        do_update_contact_details,
    )
    from server.auth.sessions import Caller

    helene: Client = file["helene"]
    owner = await make.owner()
    contact_tab = await Client.get(id=helene.id)
    clinical_tab = await Client.get(id=helene.id)
    await do_assign_therapist(Caller.acting_as(owner), helene, file["bob"])
    await do_update_clinical_details(
        Caller.acting_as(owner), clinical_tab, ClinicalIn(clinical_comments="Sleeps badly.")
    )
    await do_update_contact_details(
        Caller.acting_as(owner),
        contact_tab,
        ContactIn(first_name=helene.first_name, last_name=helene.last_name, city="Lyon"),
    )
    fresh = await Client.get(id=helene.id)
    assert fresh.city == "Lyon"
    assert fresh.therapist_id == file["bob"].id  # type: ignore[attr-defined]
    assert fresh.clinical_comments == "Sleeps badly."


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} in the page"
    return match.group(1)


@pytest.mark.parametrize(
    ("tab", "theirs", "mine"),
    [
        (
            "clinical",
            {"clinical_comments": "Intake done\nRisk: safety plan agreed"},
            {"referral": "Dr Martin", "clinical_comments": "Intake done"},
        ),
        (
            "account",
            {"account_comments": "Pays on the first of the month", "payment_terms": "monthly"},
            {"insurance_company": "MGEN", "payment_terms": "per_session"},
        ),
        (
            "contact",
            {"address_line1": "3 rue Neuve", "phone_number_0": "+33 6 11 22 33 44"},
            {"city": "Villeurbanne"},
        ),
    ],
)
async def test_a_tab_opened_before_a_colleagues_save_does_not_put_back_what_they_changed(
    new_http: Any,
    file: dict[str, Any],
    make: Factory,
    tab: str,
    theirs: dict[str, str],
    mine: dict[str, str],
) -> None:
    """Two people have the same tab open. Alice saves a line in the comments; the owner,
    from the page opened before, fills in another field and saves: the form posts every
    field as the owner's page showed it, which would silently remove Alice's line. The save
    is refused (409) and the owner's text is shown beside the details as they are now."""
    helene: Client = file["helene"]
    await Client.filter(id=helene.id).update(clinical_comments="Intake done")
    alice, boss = new_http("10.5.1.1"), new_http("10.5.1.2")
    await login(alice, file["alice"])
    await login(boss, await make.owner())
    url = f"/staff/clients/{helene.id}/{tab}"
    alice_page, boss_page = (await alice.get(url)).text, (await boss.get(url)).text
    base = {
        "clinical": {"clinical_comments": "Intake done"},
        "account": {},
        "contact": {"first_name": helene.first_name, "last_name": helene.last_name},
    }[tab]

    def post(http: httpx.AsyncClient, page: str, values: dict[str, str]) -> Any:
        data = {"csrf_token": http.headers["X-CSRF-Token"], "based_on": hidden(page, "based_on")}
        return http.post(url, data={**data, **base, **values})

    assert (await post(alice, alice_page, theirs)).status_code == 303
    r = await post(boss, boss_page, mine)
    assert r.status_code == 409
    assert "saved from another window" in r.text
    stored = await Client.get(id=helene.id)
    for field, value in theirs.items():
        if field == "phone_number_0":
            assert (await PhoneNumber.get(client_id=helene.id)).number == value
        else:
            got = getattr(stored, field)
            assert str(got.value if field == "payment_terms" else got) == value
    assert stored.referral == stored.insurance_company == stored.city == ""
    # What the owner wrote is on the page, to copy from; the form now holds Alice's save.
    assert "data-unsaved" in r.text and list(mine.values())[0] in r.text
    # Saved again from that page, on the details as they are now: it goes through.
    r = await post(boss, r.text, {**theirs, **{k: v for k, v in mine.items() if k not in theirs}})
    assert r.status_code == 303


async def test_the_api_refuses_a_save_based_on_details_changed_since(
    new_http: Any, file: dict[str, Any]
) -> None:
    helene: Client = file["helene"]
    alice = new_http("10.5.2.1")
    await login(alice, file["alice"])
    got = (await alice.get(f"/api/clients/{helene.id}")).json()
    url = f"/api/clients/{helene.id}/clinical"
    first = {"clinical_comments": "one", "based_on": got["clinical"]["version"]}
    r = await alice.put(url, json=first)
    assert r.status_code == 200
    assert (await alice.put(url, json={**first, "clinical_comments": "two"})).status_code == 409
    r = await alice.put(
        url, json={"clinical_comments": "two", "based_on": r.json()["clinical"]["version"]}
    )
    assert r.status_code == 200
    # Without based_on, the API replaces the details as before.
    assert (await alice.put(url, json={"clinical_comments": "three"})).status_code == 200
    account = f"/api/clients/{helene.id}/account"
    stale = got["account"]["version"]
    assert (
        await alice.put(account, json={"health_id": "12", "based_on": stale})
    ).status_code == 200
    assert (
        await alice.put(account, json={"health_id": "13", "based_on": stale})
    ).status_code == 409
    assert (await Client.get(id=helene.id)).health_id == "12"


async def test_the_front_desk_hands_a_client_to_another_therapist(
    new_http: Any, file: dict[str, Any], make: Factory
) -> None:
    """There was no way to change a client's therapist after the file was opened. Owners
    and the front desk now can, on the Contact tab or through the API; the previous
    therapist then loses the file, and her open tasks on it go to the new one (a safety
    alert's task would otherwise sit in no one's list)."""
    from models.tasks import Task
    from server.actions import tasks
    from server.auth.sessions import Caller

    helene: Client = file["helene"]
    alice, bob, desk = file["alice"], file["bob"], file["desk"]
    task = await tasks.do_create_task(
        Caller.acting_as(alice), helene, note="Call her back today", assignee=alice
    )
    therapist = new_http("10.5.3.1")
    await login(therapist, alice)
    url = f"/staff/clients/{helene.id}/therapist"
    page = await therapist.get(f"/staff/clients/{helene.id}/contact")
    assert "data-therapist-form" not in page.text
    r = await therapist.put(f"/api/clients/{helene.id}/therapist", json={"therapist_id": bob.id})
    assert r.status_code == 403
    front = new_http("10.5.3.2")
    await login(front, desk)
    page = await front.get(f"/staff/clients/{helene.id}/contact")
    assert "data-therapist-form" in page.text and bob.full_name in page.text
    # Not to the front desk, another practice's clinician, or someone who left.
    elsewhere = await make.therapist(first_name="Elsewhere")
    other_practice = await Practice.create(name="Elsewhere")
    await StaffUser.filter(id=elsewhere.id).update(practice_id=other_practice.id)
    gone = await make.therapist(first_name="Gone")
    await StaffUser.filter(id=gone.id).update(is_active=False)
    for who in (desk, elsewhere, gone):
        r = await front.put(f"/api/clients/{helene.id}/therapist", json={"therapist_id": who.id})
        assert r.status_code == 404
    assert (await Client.get(id=helene.id)).therapist_id == alice.id  # type: ignore[attr-defined]
    form = {"csrf_token": front.headers["X-CSRF-Token"], "therapist_id": str(bob.id)}
    assert (await front.post(url, data=form)).status_code == 303
    assert (await Client.get(id=helene.id)).therapist_id == bob.id  # type: ignore[attr-defined]
    assert (await therapist.get(f"/api/clients/{helene.id}")).status_code == 404
    assert (await Task.get(id=task.id)).assignee_id == bob.id  # type: ignore[attr-defined]


async def test_client_since_is_the_practices_day(http: httpx.AsyncClient, make: Factory) -> None:
    """A file opened at 00:30 in Paris (23:30 UTC) was a client "since" the day before in
    the API, while the page said the right day."""
    alice = await make.therapist()
    client = await make.client(alice)
    await Client.filter(id=client.id).update(created_at=datetime(2026, 12, 7, 23, 30, tzinfo=UTC))
    await login(http, alice)
    r = await http.get(f"/api/clients/{client.id}")
    assert r.status_code == 200 and r.json()["clinical"]["client_since"] == "2026-12-08"


async def test_a_refused_contact_tab_keeps_what_was_typed(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """A 422 on the contact tab (a landline marked for texts) showed the error, but the tab
    as saved: the new address, the names, the numbers and the reminders just typed were
    gone, to be typed again."""
    alice = await make.therapist(first_name="Alice")
    client = await make.client(alice)
    practice = await Practice.get(id=alice.practice_id)  # type: ignore[attr-defined]
    friends = await Tag.create(practice_id=practice.id, name="Groupe du jeudi")
    me = await login(http, alice)
    form = {
        "csrf_token": me["csrf_token"],
        "status": "lead",
        "first_name": "Hélène",
        "middle_name": "Marie",
        "last_name": "Lacroix-Dumas",
        "preferred_name": "Léna",
        "date_of_birth": "1988-04-12",
        "tags_present": "1",
        "tag_ids": str(friends.id),
        "address_line1": "12 rue des Lilas",
        "postal_code": "69003",
        "city": "Lyon",
        "country": "France",
        "phone_number_0": "06 98 76 54 32",
        "phone_label_0": "mobile",
        "primary_phone": "0",
        "phone_number_1": "01 23 45 67 89",  # a landline marked for texts: refused
        "phone_label_1": "home",
        "sms_phone": "1",
        "email_address_0": "lena@example.org",
        "email_label_0": "perso",
        "primary_email": "0",
        "reminder_email_hours": "48",
        "reminder_sms_hours": "24",
    }
    r = await http.post(f"/staff/clients/{client.id}/contact", data=form)
    assert r.status_code == 422, r.text
    page = r.text
    assert re.search(r'<span class="field-error">[^<]*landline', page)
    for name, value in form.items():
        if name in {"csrf_token", "status", "tags_present", "tag_ids"} or name.startswith(
            ("primary_", "sms_", "reminder_")
        ):
            continue
        assert re.search(rf'name="{name}"[^>]*value="{value}"', page), name
    assert re.search(r'name="primary_phone" value="0" checked', page)
    assert re.search(r'name="sms_phone" value="1" checked', page)
    assert re.search(rf'name="tag_ids" value="{friends.id}" checked', page)
    assert re.search(r'<option value="lead" selected>', page)
    for name, hours in (("reminder_email_hours", 48), ("reminder_sms_hours", 24)):
        chosen = re.search(rf'<select name="{name}">.*?</select>', page, re.S)
        assert chosen and re.search(rf'<option value="{hours}" selected>', chosen.group(0)), name
    # Nothing saved, and the page is not the 409 one ("What you wrote, not saved").
    await client.refresh_from_db()
    assert client.last_name != "Lacroix-Dumas" and client.city != "Lyon"
    assert not await PhoneNumber.filter(client_id=client.id).exists()
    assert "data-unsaved" not in page


async def test_a_refused_account_tab_keeps_what_was_typed(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """A card number in the account comments is refused (422): the tab came back as saved,
    the payment terms, the insurance details and the rest of the comments lost with it."""
    alice = await make.therapist(first_name="Alice")
    client = await make.client(alice)
    me = await login(http, alice)
    form = {
        "csrf_token": me["csrf_token"],
        "payment_terms": "monthly",
        "health_id": "2 88 04 69 123 456 78",
        "insurance_company": "Mutuelle des Lilas",
        "account_comments": "Pays by card 4242 4242 4242 4242 at the start of the month.",
    }
    r = await http.post(f"/staff/clients/{client.id}/account", data=form)
    assert r.status_code == 422, r.text
    page = r.text
    assert re.search(r"</textarea><span class=\"field-error\">Remove the card number", page)
    for name in ("health_id", "insurance_company"):
        assert re.search(rf'name="{name}"[^>]*value="{form[name]}"', page), name
    assert f">{form['account_comments']}</textarea>" in page
    assert '<option value="monthly" selected>' in page
    await client.refresh_from_db()
    assert (
        client.insurance_company != "Mutuelle des Lilas" and client.payment_terms == "per_session"
    )
