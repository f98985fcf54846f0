"""Practice settings: owner only, validated, audited; they drive booking and access."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import sys
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from models.accounts import Practice
from models.audit import AuditEntry
from server import i18n
from server.actions import agenda
from tests.conftest import Factory, login, session_booker

PARIS = ZoneInfo("Europe/Paris")


async def test_owner_changes_the_settings(new_http: Any, make: Factory) -> None:
    owner = await make.owner()
    http = new_http("10.9.1.1")
    me = await login(http, owner)
    form = {
        "csrf_token": me["csrf_token"],
        "name": "Cabinet des Lilas",
        "cancellation_notice_hours": "48",
        "video_url_template": "https://visio.example.org/{room}",
        "office_admins_see_clinical": "true",
    }
    assert (await http.get("/staff/practice")).status_code == 200
    r = await http.post("/staff/practice", data=form)
    assert r.status_code == 303
    practice = await Practice.get(id=owner.practice_id)  # type: ignore[attr-defined]
    assert practice.name == "Cabinet des Lilas" and practice.cancellation_notice_hours == 48
    assert practice.online_booking is False  # the box was left unticked
    assert practice.office_admins_see_clinical is True
    assert practice.online_bookings_per_client == 3  # not in the form: unchanged
    page = await http.get("/staff/practice")
    assert 'name="online_bookings_per_client" min="0" max="100" value="3"' in page.text
    r = await http.post("/staff/practice", data={**form, "online_bookings_per_client": "0"})
    assert r.status_code == 303
    await practice.refresh_from_db()
    assert practice.online_bookings_per_client == 0  # no limit
    entry = await AuditEntry.filter(action="practice.settings_changed").order_by("id").first()
    assert entry is not None
    assert "video_url_template" in entry.detail["fields"]
    # A link without {room} would put every teleconsultation in one room: refused.
    bad = await http.post(
        "/staff/practice", data={**form, "video_url_template": "https://x.org/room"}
    )
    assert bad.status_code == 422 and "{room}" in bad.text
    bad = await http.post("/staff/practice", data={**form, "cancellation_notice_hours": "-1"})
    assert bad.status_code == 422
    bad = await http.post("/staff/practice", data={**form, "name": "  \t "})
    assert bad.status_code == 422  # was saved as an empty practice name
    await practice.refresh_from_db()
    assert practice.video_url_template == "https://visio.example.org/{room}"
    assert practice.name == "Cabinet des Lilas"


async def test_refused_settings_come_back_as_typed(new_http: Any, make: Factory) -> None:
    """A 422 showed the page with the error beside the field, and every field left empty
    back to its saved value: a crisis message emptied on purpose came back, to be emptied
    again or saved by mistake. The boxes come back as ticked too."""
    owner = await make.owner()
    practice = await Practice.get(id=owner.practice_id)  # type: ignore[attr-defined]
    await Practice.filter(id=practice.id).update(
        online_booking=True,
        office_admins_see_clinical=False,
        clients_see_measure_trend=True,
        earlier_slot_alerts=False,
        crisis_message="Appelez le 15.",
    )
    http = new_http("10.9.1.2")
    me = await login(http, owner)
    form = {
        "csrf_token": me["csrf_token"],
        "name": "Cabinet des Tilleuls",
        "time_zone": "America/Montreal",
        # online_booking and clients_see_measure_trend unticked
        "cancellation_notice_hours": "400",  # beyond two weeks: refused
        "online_bookings_per_client": "0",
        "video_url_template": "https://visio.example.org/t/{room}",
        "earlier_slot_alerts": "true",
        "earlier_slot_min_days": "21",
        "office_admins_see_clinical": "true",
        "crisis_message": "",  # emptied: the built-in message
    }
    r = await http.post("/staff/practice", data=form)
    assert r.status_code == 422, r.text
    page = r.text
    assert re.search(r'name="cancellation_notice_hours"[^>]*value="400"[^>]*>', page)
    assert re.search(
        r'name="cancellation_notice_hours"[^>]*>\s*<span[^>]*>[^<]*</span>'
        r'<span class="field-error">',
        page,
    )
    for name in ("name", "online_bookings_per_client", "earlier_slot_min_days"):
        assert re.search(rf'name="{name}"[^>]*value="{form[name]}"', page), name
    assert 'value="https://visio.example.org/t/{room}"' in page
    assert "<option selected>America/Montreal</option>" in page
    assert '<textarea name="crisis_message" rows="4" maxlength="2000"></textarea>' in page
    for box, ticked in {
        "online_booking": False,
        "clients_see_measure_trend": False,
        "earlier_slot_alerts": True,
        "office_admins_see_clinical": True,
    }.items():
        tag = re.search(rf'<input type="checkbox" name="{box}"[^>]*>', page)
        assert tag is not None and ("checked" in tag.group(0)) is ticked, box
    await practice.refresh_from_db()
    assert practice.name != "Cabinet des Tilleuls" and practice.online_booking
    assert practice.time_zone == "Europe/Paris" and practice.crisis_message == "Appelez le 15."


async def test_only_the_owner(new_http: Any, make: Factory) -> None:
    for i, who in enumerate([await make.therapist(), await make.office_admin()]):
        http = new_http(f"10.9.2.{i}")
        me = await login(http, who)
        assert (await http.get("/staff/practice")).status_code == 403
        r = await http.post("/staff/practice", data={"csrf_token": me["csrf_token"], "name": "x"})
        assert r.status_code == 403


async def test_the_practice_time_zone_is_the_one_everyone_sees(
    new_http: Any, make: Factory
) -> None:
    """Pages were written in the server's CABINET_TIME_ZONE while the portal's slots and the
    reminders followed the practice's own zone: one practice, two clocks. Now the signed-in
    caller's practice zone is the request's, and the owner sets it."""

    owner = await make.owner()
    alice = await make.therapist()
    client = await make.client(alice)
    await make.portal_account(client)
    practice = await Practice.get(id=owner.practice_id)  # type: ignore[attr-defined]
    http = new_http("10.9.3.1")
    me = await login(http, owner)
    form = {
        "csrf_token": me["csrf_token"],
        "name": practice.name,
        "cancellation_notice_hours": "24",
        "video_url_template": practice.video_url_template,
    }
    page = await http.get("/staff/practice")
    assert "<option selected>Europe/Paris</option>" in page.text
    bad = await http.post("/staff/practice", data={**form, "time_zone": "Mars/Olympus_Mons"})
    assert bad.status_code == 422 and "Choose a time zone" in bad.text
    ok = await http.post("/staff/practice", data={**form, "time_zone": "America/Montreal"})
    assert ok.status_code == 303
    await practice.refresh_from_db()
    assert practice.time_zone == "America/Montreal"
    # Ten days ahead at 9:00 in Montréal, booked as the agenda books it (in UTC).
    montreal = ZoneInfo("America/Montreal")
    day = (datetime.now(montreal) + timedelta(days=10)).date()
    start = datetime.combine(day, time(9), montreal).astimezone(UTC)
    talk = await agenda.do_create_service(
        None, practice, name="Talk", duration_minutes=50, price=Decimal("80")
    )
    office = await agenda.do_create_location(None, practice, name="Office", address="")
    await agenda.do_book_appointment(
        None, practitioner=alice, client=client, service=talk, starts_at=start, location=office
    )
    i18n.set_locale("en")
    i18n.set_time_zone("America/Montreal")
    nine_short, nine_full = (
        i18n.format_datetime(start, "short"),
        i18n.format_datetime(start, "full"),
    )
    i18n.set_time_zone("Europe/Paris")
    paris_short = i18n.format_datetime(start, "short")
    assert nine_short != paris_short
    staff = new_http("10.9.3.2")
    await login(staff, alice)
    sessions = await staff.get(f"/staff/clients/{client.id}/sessions")
    assert nine_short in sessions.text and paris_short not in sessions.text
    agenda_page = await staff.get("/staff/agenda")
    assert 'timeZone = "America/Montreal"' in agenda_page.text
    portal = new_http("10.9.3.3")
    await login(portal, client)
    mine = await portal.get("/portal/appointments")
    assert nine_full in mine.text
    # Before sign-in, the pages fall back to the server's default zone: nothing to show.
    assert (await new_http("10.9.3.4").get("/staff/login")).status_code == 200


async def test_createuser_makes_the_practice_in_the_configured_zone(tmp_path: Any) -> None:

    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/cli.sqlite3",
        "CABINET_DATA_DIR": str(tmp_path),
        "CABINET_TIME_ZONE": "America/Montreal",
        "CABINET_LOCALE": "fr",
    }
    cabinet = [sys.executable, "-m", "server.cli"]
    for args in (["migrate"], ["createuser", "owner@example.org", "--password", "a long pass 42"]):
        proc = await asyncio.create_subprocess_exec(*cabinet, *args, env=env)
        assert await proc.wait() == 0
    with sqlite3.connect(tmp_path / "cli.sqlite3") as db:
        row = db.execute("SELECT time_zone, locale FROM practice").fetchone()
    assert row == ("America/Montreal", "fr")


async def test_a_stale_settings_form_does_not_undo_a_newer_change(
    new_http: Any, make: Factory
) -> None:
    """The form posts every setting: saved from a page opened before another change (a
    second tab, a colleague), it put the old values back without a word."""
    owner = await make.owner()
    http = new_http("10.9.4.1")
    me = await login(http, owner)

    def version_of(page: str) -> str:
        return page.split('name="version" value="')[1].split('"')[0]

    stale = version_of((await http.get("/staff/practice")).text)
    form = {
        "csrf_token": me["csrf_token"],
        "name": "Cabinet des Lilas",
        "cancellation_notice_hours": "24",
        "video_url_template": "https://visio.example.org/{room}",
        "time_zone": "Europe/Paris",
    }
    other_tab = {**form, "time_zone": "America/Montreal", "version": stale}
    assert (await http.post("/staff/practice", data=other_tab)).status_code == 303

    r = await http.post("/staff/practice", data={**form, "name": "Lilas", "version": stale})
    assert r.status_code == 409 and "changed meanwhile" in r.text
    practice = await Practice.get(id=owner.practice_id)  # type: ignore[attr-defined]
    assert practice.time_zone == "America/Montreal" and practice.name == "Cabinet des Lilas"
    # The page shows the settings as they are now; saved from it, the change goes through.
    assert "<option selected>America/Montreal</option>" in r.text
    fresh = {
        **form,
        "name": "Lilas",
        "time_zone": "America/Montreal",
        "version": version_of(r.text),
    }
    assert (await http.post("/staff/practice", data=fresh)).status_code == 303
    await practice.refresh_from_db()
    assert (practice.name, practice.time_zone) == ("Lilas", "America/Montreal")


async def test_a_new_time_zone_that_moves_sessions_is_confirmed_first(
    http: Any, people: dict[str, Any]
) -> None:
    """Appointments are kept as moments (UTC) and open hours as clock times: set from Paris to
    Toronto, a 10:00 session showed at 04:00, before the hours that still opened at 9:00,
    and the owner was told nothing. Now the change waits for a confirmation that says how
    many upcoming sessions will show at another time."""
    owner, practice = people["owner"], people["practice"]
    book = await session_booker(practice, people["alice"], people["camille"])
    day = (datetime.now(PARIS) + timedelta(days=10)).date()
    session = await book(datetime.combine(day, time(10), PARIS).astimezone(UTC))
    past = await book(datetime.combine(day - timedelta(days=20), time(10), PARIS))
    assert past.starts_at < datetime.now(UTC)  # already held: not counted
    off = datetime.combine(day + timedelta(days=1), time(0), PARIS)
    await agenda.do_add_time_off(
        None, people["alice"], starts_at=off, ends_at=off + timedelta(days=1), reason="Congrès"
    )
    me = await login(http, owner)
    form = {
        "csrf_token": me["csrf_token"],
        "name": practice.name,
        "cancellation_notice_hours": "24",
        "video_url_template": practice.video_url_template,
        "office_admins_see_clinical": "true",
    }
    page = await http.get("/staff/practice")
    assert "keep their moment" in page.text  # the page says what a change does

    # Brussels keeps every clock time: saved at once.
    r = await http.post("/staff/practice", data={**form, "time_zone": "Europe/Brussels"})
    assert r.status_code == 303
    await practice.refresh_from_db()
    assert practice.time_zone == "Europe/Brussels"

    # Also ticks online booking and unticks the other box, which the 409 page must keep.
    toronto = {**form, "time_zone": "America/Toronto", "online_booking": "true"}
    del toronto["office_admins_see_clinical"]
    r = await http.post("/staff/practice", data=toronto)
    assert r.status_code == 409, r.text
    assert "1 upcoming appointment will show at a different time" in r.text
    assert "4:00" in r.text  # the 10:00 session, as it would show
    assert "1 upcoming period of time off will show at other times too" in r.text
    assert 'name="confirm_time_zone"' in r.text
    assert "<option selected>America/Toronto</option>" in r.text  # what was chosen stays
    # The boxes as they were posted, not as saved: confirming must not undo them.
    assert 'name="online_booking" value="true" checked' in r.text
    assert 'name="office_admins_see_clinical" value="true" >' in r.text
    await practice.refresh_from_db()
    assert practice.time_zone == "Europe/Brussels"

    r = await http.post("/staff/practice", data={**toronto, "confirm_time_zone": "true"})
    assert r.status_code == 303
    await practice.refresh_from_db()
    assert practice.time_zone == "America/Toronto"
    assert practice.online_booking and not practice.office_admins_see_clinical
    await session.refresh_from_db()
    assert session.starts_at.astimezone(ZoneInfo("America/Toronto")).hour == 4
    entry = await AuditEntry.filter(action="practice.settings_changed").order_by("-id").first()
    assert entry is not None
    assert entry.detail["time_zone"] == ["Europe/Brussels", "America/Toronto"]
    assert entry.detail["appointments_shown_at_another_time"] == 1
