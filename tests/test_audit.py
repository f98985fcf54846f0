"""The audit trail: every write says who did what and when; reads of client files are logged."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from models.accounts import StaffUser
from models.audit import AuditEntry
from server.actions import audit
from tests.conftest import PASSWORD, Factory, login

pytestmark = pytest.mark.usefixtures("settled_hub")


async def entry(action: str, **filters: object) -> AuditEntry:
    rows = await AuditEntry.filter(action=action, **filters).order_by("-id")
    assert rows, f"no audit entry {action} {filters}"
    return rows[0]


def recent(when: datetime) -> bool:
    return datetime.now(UTC) - timedelta(minutes=1) < when <= datetime.now(UTC)


async def test_sign_in_is_recorded(http: httpx.AsyncClient, make: Factory) -> None:
    therapist = await make.therapist()
    await login(http, therapist)
    row = await entry("auth.login")
    assert (row.actor_kind, row.actor_id) == ("staff", therapist.id)
    assert row.actor_label == therapist.full_name
    assert row.practice_id == therapist.practice_id  # type: ignore[attr-defined]
    assert row.ip == "10.0.0.1"
    assert not row.is_read
    assert recent(row.created_at)


async def test_portal_sign_in_is_recorded_for_the_client(
    http: httpx.AsyncClient, make: Factory
) -> None:
    client = await make.client(await make.therapist())
    await login(http, client)
    row = await entry("auth.login", actor_kind="client")
    assert row.actor_id == client.id
    assert row.practice_id == client.practice_id  # type: ignore[attr-defined]


async def test_creating_staff_is_recorded(http: httpx.AsyncClient, make: Factory) -> None:
    owner = await make.owner()
    await login(http, owner)
    response = await http.post(
        "/api/staff",
        json={
            "email": "new.colleague@example.org",
            "first_name": "New",
            "last_name": "Colleague",
            "role": "office_admin",
        },
    )
    assert response.status_code == 200
    created = await StaffUser.get(email="new.colleague@example.org")
    row = await entry("staff.created")
    assert (row.actor_kind, row.actor_id) == ("staff", owner.id)
    assert (row.object_type, row.object_id) == ("staff_user", str(created.id))
    assert row.detail == {"role": "office_admin"}
    assert recent(row.created_at)


async def test_a_portal_invitation_is_recorded(http: httpx.AsyncClient, make: Factory) -> None:
    therapist = await make.therapist()
    client = await make.client(therapist, portal=False)
    await login(http, therapist)
    response = await http.post(f"/api/clients/{client.id}/portal/invite", json={})
    assert response.status_code == 200
    row = await entry("portal.invited")
    assert (row.actor_kind, row.actor_id) == ("staff", therapist.id)
    assert row.client_id == client.id
    assert row.object_type == "portal_account"


async def test_a_password_change_is_recorded(http: httpx.AsyncClient, make: Factory) -> None:
    client = await make.client(await make.therapist())
    await login(http, client)
    response = await http.post(
        "/portal/api/account/password",
        json={"current_password": PASSWORD, "new_password": "a quiet lighthouse at dawn"},
    )
    assert response.status_code == 200
    row = await entry("auth.password_changed")
    assert (row.actor_kind, row.actor_id) == ("client", client.id)
    assert recent(row.created_at)


async def test_a_refused_write_leaves_no_entry(http: httpx.AsyncClient, make: Factory) -> None:
    therapist = await make.therapist()
    await login(http, therapist)
    before = await AuditEntry.all().count()
    response = await http.post(
        "/api/account/password",
        json={"current_password": PASSWORD, "new_password": "password1234"},
    )
    assert response.status_code == 422
    assert await AuditEntry.all().count() == before


async def test_opening_a_client_file_records_a_read(http: httpx.AsyncClient, make: Factory) -> None:
    therapist = await make.therapist()
    client = await make.client(therapist)
    stranger = await make.client(await make.therapist())
    await login(http, therapist)
    assert (await http.get(f"/staff/clients/{client.id}")).status_code == 200
    row = await entry("read.file")
    assert row.is_read
    assert (row.actor_kind, row.actor_id) == ("staff", therapist.id)
    assert (row.client_id, row.object_type, row.object_id) == (client.id, "client", str(client.id))
    assert row.ip == "10.0.0.1"
    assert recent(row.created_at)
    # A file the therapist may not open is not "read".
    assert (await http.get(f"/staff/clients/{stranger.id}")).status_code == 404
    assert not await AuditEntry.exists(action="read.file", client_id=stranger.id)


async def test_the_owner_reads_the_trail(http: httpx.AsyncClient, make: Factory) -> None:
    owner = await make.owner()
    therapist = await make.therapist()
    client = await make.client(therapist)
    await login(http, owner)
    await http.get(f"/staff/clients/{client.id}")

    rows = (await http.get("/api/audit")).json()
    actions = [r["action"] for r in rows]
    assert actions[0] == "read.file"
    assert "auth.login" in actions and "client.created" in actions
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids, reverse=True)
    read = rows[0]
    assert read["is_read"] is True and read["client_id"] == client.id
    assert read["actor_label"] == owner.full_name

    page = await http.get("/staff/audit")
    assert page.status_code == 200
    assert "read.file" in page.text and "auth.login" in page.text
    reads = await http.get("/staff/audit", params={"reads": "1"})
    assert "read.file" in reads.text and "auth.login" not in reads.text
    by_client = await http.get("/staff/audit", params={"client": str(client.id)})
    assert "read.file" in by_client.text and "auth.login" not in by_client.text


@pytest.mark.parametrize("role", ["therapist", "office_admin"])
async def test_only_the_owner_reads_the_trail(
    http: httpx.AsyncClient, make: Factory, role: str
) -> None:
    await login(http, await getattr(make, role)())
    assert (await http.get("/api/audit")).status_code == 403
    page = await http.get("/staff/audit")
    assert page.status_code == 403
    assert "Not allowed" in page.text


async def test_a_client_or_nobody_cannot_read_the_trail(
    http: httpx.AsyncClient, make: Factory
) -> None:
    assert (await http.get("/api/audit")).status_code == 401
    await login(http, await make.client(await make.therapist()))
    assert (await http.get("/api/audit")).status_code == 401


async def test_the_trail_stays_within_the_practice(http: httpx.AsyncClient, make: Factory) -> None:
    owner = await make.owner()
    await AuditEntry.create(
        practice_id=owner.practice_id + 1,  # type: ignore[attr-defined]
        actor_kind="staff",
        action="elsewhere.secret",
    )
    await login(http, owner)
    actions = [r["action"] for r in (await http.get("/api/audit")).json()]
    assert "elsewhere.secret" not in actions


async def test_the_trail_reads_in_words(http: httpx.AsyncClient, make: Factory) -> None:
    # On French pages the trail showed "read.file", "auth.login", "client 3", "system".
    owner = await make.owner()
    client = await make.client(await make.therapist())
    await audit.record(
        None,
        "form.sent",
        object_type="form_assignment",
        object_id=7,
        client_id=client.id,
        practice_id=owner.practice_id,
    )
    await login(http, owner)
    await http.get(f"/staff/clients/{client.id}")
    page = (await http.get("/staff/audit", headers={"Accept-Language": "fr-FR"})).text
    assert "a ouvert le dossier" in page and "a ouvert une session" in page
    assert f"Dossier client #{client.id}" in page and "Formulaire envoyé #7" in page
    assert "Cabinet (automatique)" in page
    shown = re.sub(r"<[^>]+>", " ", page)  # the text, without the codes kept in titles
    for code in ("read.file", "auth.login", "form_assignment", f"client {client.id}", "system"):
        assert code not in shown, code
