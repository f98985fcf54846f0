"""The demo practice that `make run` creates: every login works and the messaging section
has conversations in each state (waiting for a reply, a family group, the office)."""

from __future__ import annotations

import httpx
import pytest

from models.accounts import StaffUser
from models.tasks import Task
from server.demo import create_demo


async def test_demo_logins_and_conversations(http: httpx.AsyncClient) -> None:
    logins = await create_demo()
    assert {role for role, _email, _pw in logins} >= {
        "owner",
        "therapist",
        "office_admin",
        "client",
    }
    for role, email, password in logins:
        url = "/portal/api/session" if role == "client" else "/api/session"
        r = await http.post(url, json={"email": email, "password": password})
        assert r.status_code == 200, (email, r.text)
        http.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        if email == "alice@demo.cabinet":
            listing = (await http.get("/api/conversations")).json()
            subjects = {c["subject"] for c in listing["conversations"]}
            assert {"Prochain rendez-vous", "Réunion d'équipe de lundi"} <= subjects
            waiting = (await http.get("/api/conversations?waiting=1")).json()["conversations"]
            assert waiting, "a client's question waits for Alice's reply"
            assert listing["unread_total"] >= 1
            # Whatever day the demo starts, Alice has sessions today on her home page.
            home = (await http.get("/staff/")).text
            assert "No session today." not in home and 'class="plain today-list"' in home
            assert "Hélène Dubois" in home.split('class="plain today-list"')[1].split("</ul>")[0]
        if email == "helene.dubois@demo.cabinet":
            listing = (await http.get("/portal/api/conversations")).json()
            assert [c["subject"] for c in listing["conversations"]] == ["Prochain rendez-vous"]
        await http.delete("/portal/api/session" if role == "client" else "/api/session")
        http.cookies.clear()
    alice = await StaffUser.get(email="alice@demo.cabinet")
    assert await Task.filter(assignee_id=alice.id, source_message_id__not_isnull=True).exists()


async def test_demo_shows_a_fill_rate_history_and_bills_in_french(
    http: httpx.AsyncClient,
) -> None:
    from models.billing import Consultation
    from models.offers import FreedSlot

    await create_demo()
    slots = await FreedSlot.all()
    assert slots and any(s.refilled_by_offer for s in slots)
    assert any(not s.refilled_by_offer for s in slots)
    titles = await Consultation.all().values_list("title", flat=True)
    assert titles and all(t.startswith("Séance du ") for t in titles), titles[:3]  # type: ignore[union-attr]
    r = await http.post(
        "/api/session", json={"email": "owner@demo.cabinet", "password": "cabinet-demo-2026"}
    )
    assert r.status_code == 200
    page = await http.get("/staff/practice/fill-rate")
    assert 'data-figure="freed">0<' not in page.text and "<svg" in page.text


@pytest.mark.usefixtures("db")
async def test_demo_dates_hold_together() -> None:
    """What someone trying the demo reads first: a client "since" a date before their first
    session and questionnaire, and no receipt older than the invoice it pays."""
    from models.agenda import Appointment
    from models.billing import Payment
    from models.clients import Client
    from models.measures import MeasureAdministration

    await create_demo()
    for client in await Client.all():
        dates = [a.starts_at for a in await Appointment.filter(client_id=client.id)]
        dates += [m.created_at for m in await MeasureAdministration.filter(client_id=client.id)]
        assert all(client.created_at < d for d in dates), client.full_name
    for payment in await Payment.filter(invoice_id__not_isnull=True).prefetch_related("invoice"):
        assert payment.invoice.issued_on is not None
        assert payment.paid_on >= payment.invoice.issued_on
