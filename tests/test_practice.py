"""Practice settings: owner only, validated, audited; they drive booking and access."""

from __future__ import annotations

from typing import Any

from models.accounts import Practice
from models.audit import AuditEntry
from tests.conftest import Factory, login


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
    entry = await AuditEntry.get(action="practice.settings_changed")
    assert "video_url_template" in entry.detail["fields"]
    # A link without {room} would put every teleconsultation in one room: refused.
    bad = await http.post(
        "/staff/practice", data={**form, "video_url_template": "https://x.org/room"}
    )
    assert bad.status_code == 422 and "{room}" in bad.text
    bad = await http.post("/staff/practice", data={**form, "cancellation_notice_hours": "-1"})
    assert bad.status_code == 422
    await practice.refresh_from_db()
    assert practice.video_url_template == "https://visio.example.org/{room}"


async def test_only_the_owner(new_http: Any, make: Factory) -> None:
    for i, who in enumerate([await make.therapist(), await make.office_admin()]):
        http = new_http(f"10.9.2.{i}")
        me = await login(http, who)
        assert (await http.get("/staff/practice")).status_code == 403
        r = await http.post("/staff/practice", data={"csrf_token": me["csrf_token"], "name": "x"})
        assert r.status_code == 403
