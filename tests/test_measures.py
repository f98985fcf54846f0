"""Outcome measures: scoring and bands at every boundary, sending and answering on the
portal, the item-9 safety alert (task, email, live event, crisis message), schedules, the
chart's data, and who may see what."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from models.accounts import Practice
from models.audit import AuditEntry
from models.measures import (
    AdministrationStatus,
    MeasureAdministration,
    MeasureKind,
    MeasureSchedule,
)
from models.notifications import OutboxMessage
from models.tasks import Task
from server.actions import agenda, measures
from server.auth.sessions import Caller
from server.errors import Conflict, ValidationFailed
from server.export import client_record
from server.instruments import GAD7, PHQ9, Instrument, score
from server.queries.measures import HEIGHT, TOP, chart_for
from tests.conftest import Factory, login, request_key_of, session_booker

# --- scoring -----------------------------------------------------------------------------


def answers_summing_to(inst: Instrument, total: int, item9: int | None = None) -> dict[str, object]:
    """Answers whose sum is ``total``, filled from item 1; with ``item9``, that one fixed."""
    values: dict[str, object] = {}
    left = total
    n = len(inst.items)
    fixed = {9: item9} if item9 is not None else {}
    left -= sum(fixed.values())
    for i in range(1, n + 1):
        if i in fixed:
            values[f"item_{i}"] = fixed[i]
            continue
        v = min(3, left)
        values[f"item_{i}"] = v
        left -= v
    assert left == 0, "total not reachable"
    return values


PHQ9_BANDS = [
    (0, "minimal"),
    (4, "minimal"),
    (5, "mild"),
    (9, "mild"),
    (10, "moderate"),
    (14, "moderate"),
    (15, "moderately_severe"),
    (19, "moderately_severe"),
    (20, "severe"),
    (27, "severe"),
]
GAD7_BANDS = [
    (0, "minimal"),
    (4, "minimal"),
    (5, "mild"),
    (9, "mild"),
    (10, "moderate"),
    (14, "moderate"),
    (15, "severe"),
    (21, "severe"),
]


@pytest.mark.parametrize(("total", "band"), PHQ9_BANDS)
def test_phq9_bands_at_every_boundary(total: int, band: str) -> None:
    values = answers_summing_to(PHQ9, total)
    scored = score(PHQ9, values)
    assert scored.score == total
    assert scored.band.key == band
    # Items fill from the first: item 9 is above 0 only past 24.
    assert scored.safety_alert is (total > 24)


@pytest.mark.parametrize(("total", "band"), GAD7_BANDS)
def test_gad7_bands_at_every_boundary(total: int, band: str) -> None:
    scored = score(GAD7, answers_summing_to(GAD7, total))
    assert scored.score == total
    assert scored.band.key == band
    assert scored.safety_alert is False


def test_bands_cover_every_score_once() -> None:
    for inst in (PHQ9, GAD7):
        assert inst.bands[0].low == 0 and inst.bands[-1].high == inst.max_score
        for a, b in zip(inst.bands, inst.bands[1:], strict=False):
            assert b.low == a.high + 1
    assert (PHQ9.max_score, GAD7.max_score) == (27, 21)
    assert len(PHQ9.items) == 9 and len(GAD7.items) == 7


@pytest.mark.parametrize("item9", [1, 2, 3])
def test_item9_above_not_at_all_is_an_alert_whatever_the_total(item9: int) -> None:
    scored = score(PHQ9, answers_summing_to(PHQ9, item9, item9=item9))
    assert scored.safety_alert is True
    assert scored.band.key == "minimal"
    assert score(PHQ9, answers_summing_to(PHQ9, 27)).safety_alert is True
    assert score(PHQ9, answers_summing_to(PHQ9, 24, item9=0)).safety_alert is False


def test_every_item_is_required_and_values_are_checked() -> None:
    values = answers_summing_to(PHQ9, 10)
    del values["item_3"]
    values["item_5"] = "4"
    values["extra"] = "9"
    with pytest.raises(ValidationFailed) as info:
        score(PHQ9, values)
    assert set(info.value.fields) == {"item_3", "item_5", "extra"}
    # The closing question of the PHQ-9 is optional and never scored.
    full = answers_summing_to(PHQ9, 10)
    assert score(PHQ9, {**full, "extra": "3"}).score == 10
    assert score(PHQ9, {**full, "extra": "3"}).answers["extra"] == 3
    with pytest.raises(ValidationFailed):
        score(GAD7, {**answers_summing_to(GAD7, 3), "item_1": True})


async def test_an_answer_of_thousands_of_digits_is_a_422_not_a_500(
    http: httpx.AsyncClient,
    new_http: Callable[..., httpx.AsyncClient],
    people: dict[str, Any],
) -> None:
    """An answer was int()ed when it was digits: 5000 of them are past int()'s limit, a
    ValueError and a 500 on the portal's questionnaire and on the staff's fill-in page."""
    huge = "0" * 5000
    with pytest.raises(ValidationFailed) as info:
        score(GAD7, {**answers_summing_to(GAD7, 3), "item_1": huge, "item_2": "00"})
    assert set(info.value.fields) == {"item_1", "item_2"}
    admin_id = await send(people, MeasureKind.GAD7)
    async with new_http("10.0.0.3") as portal:
        await login(portal, people["camille"])
        r = await portal.post(
            f"/portal/measures/{admin_id}", data={**form(GAD7, 3), "item_1": huge}
        )
        assert r.status_code == 422
    administration = await MeasureAdministration.get(id=admin_id)
    assert administration.status is AdministrationStatus.SENT
    await login(http, people["alice"])
    url = f"/staff/clients/{people['noportal'].id}/measures/fill/gad7"
    r = await http.post(url, data={**form(GAD7, 3), "item_7": huge})
    assert r.status_code == 422 and "Choose an answer." in r.text
    assert not await MeasureAdministration.filter(client_id=people["noportal"].id).exists()


async def test_a_fill_in_key_no_database_can_hold_is_a_422(
    http: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    """The fill-in page's key went to a text column as posted: a NUL in it is a 500 on
    PostgreSQL (SQLite keeps it). It is refused, nothing is recorded, and the page shown
    again carries a key of its own that records the answers."""
    await login(http, people["alice"])
    url = f"/staff/clients/{people['noportal'].id}/measures/fill/gad7"
    r = await http.post(url, data={**form(GAD7, 3), "request_key": "key\x00"})
    assert r.status_code == 422 and 'role="alert"' in r.text
    assert not await MeasureAdministration.filter(client_id=people["noportal"].id).exists()
    shown_again = re.search(r'name="request_key" value="([^"]+)"', r.text)
    assert shown_again is not None
    r = await http.post(url, data={**form(GAD7, 3), "request_key": shown_again.group(1)})
    assert r.status_code == 303
    assert await MeasureAdministration.filter(client_id=people["noportal"].id).count() == 1


async def test_every_form_key_no_database_can_hold_is_refused_before_anything_is_written(
    db: None,
) -> None:
    """The fill-in page checked its key; the other forms with a key (a payment, a refund, an
    addendum, a document, a new client) went to the lookup and the insert as posted, a 500
    on PostgreSQL for a NUL. once_per_key refuses it for all of them."""
    from server.actions.retries import once_per_key
    from server.errors import ValidationFailed

    written: list[str | None] = []

    async def write(key: str | None) -> MeasureAdministration:
        written.append(key)
        raise AssertionError("nothing is written")

    for bad in ("key\x00", "\ud800"):
        with pytest.raises(ValidationFailed) as refused:
            await once_per_key(MeasureAdministration, bad, write, client_id=1)
        assert "request_key" in refused.value.fields
    assert written == []


# --- people ------------------------------------------------------------------------------


@pytest.fixture
async def people(people: dict[str, Any], make: Factory) -> dict[str, Any]:
    """conftest's people, and a client of Alice's without a portal account."""
    noportal = await make.client(people["alice"], portal=False, first_name="No", last_name="Portal")
    return {**people, "noportal": noportal}


async def send(people: dict[str, Any], kind: MeasureKind = MeasureKind.PHQ9) -> int:
    administration, _ = await measures.do_send_measure(
        Caller.acting_as(people["alice"]), people["camille"], kind
    )
    assert administration is not None
    return administration.id


def form(inst: Instrument, total: int, item9: int | None = None) -> dict[str, str]:
    return {k: str(v) for k, v in answers_summing_to(inst, total, item9=item9).items()}


# --- sending and answering ---------------------------------------------------------------


async def test_the_api_answers_what_was_sent_and_the_schedule_as_documented(
    http: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    """Documented to answer an AdministrationOut, the API answered {"ok": true} for "N hours
    before each session" (nothing is sent yet): neither matched the other. It answers what
    was sent now, if anything, and the schedule, as its OpenAPI says."""
    from staff.measures import SentMeasureOut

    await login(http, people["alice"])
    url = f"/api/clients/{people['camille'].id}/measures"
    spec = (await http.get("/api/openapi.json")).json()
    documented = spec["paths"][url.replace(str(people["camille"].id), "{client_id}")]["post"]
    schema = documented["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/SentMeasureOut")

    before = (await http.post(url, json={"measure": "phq9", "hours_before": 24})).json()
    SentMeasureOut.model_validate(before)
    assert before["administration"] is None
    assert before["schedule"]["hours_before"] == 24 and before["schedule"]["every_weeks"] is None

    weekly = (await http.post(url, json={"measure": "gad7", "every_weeks": 2})).json()
    SentMeasureOut.model_validate(weekly)
    assert weekly["administration"]["measure"] == "gad7"
    assert weekly["schedule"]["every_weeks"] == 2 and weekly["schedule"]["next_due_at"]

    once = (await http.post(url, json={"measure": "phq9"})).json()
    SentMeasureOut.model_validate(once)
    assert once["administration"]["status"] == "sent" and once["schedule"] is None
    assert await MeasureAdministration.filter(client_id=people["camille"].id).count() == 2


async def test_send_then_the_client_answers_on_the_portal(
    new_http: Callable[..., httpx.AsyncClient],
    people: dict[str, Any],
    capture_events: Callable[[], Any],
) -> None:
    async with new_http() as staff:
        await login(staff, people["alice"])
        r = await staff.post(
            f"/staff/clients/{people['camille'].id}/measures",
            data={"measure": "phq9", "repeat": "once"},
        )
        assert r.status_code == 303
    administration = await MeasureAdministration.get(client_id=people["camille"].id)
    assert administration.status is AdministrationStatus.SENT
    email = await OutboxMessage.get(purpose="measure_sent")
    assert email.to == people["camille"].email
    assert f"/portal/measures/{administration.id}" in email.body_text
    # The email says nothing of what the questionnaire is about.
    assert "PHQ" not in email.body_text + email.subject

    captured = capture_events()
    async with new_http("10.0.0.3") as portal:
        # Signed out, the emailed link leads to the sign-in page and back.
        r = await portal.get(f"/portal/measures/{administration.id}")
        assert r.status_code == 303 and "/portal/login?next=" in r.headers["location"]
        await login(portal, people["camille"])
        page = await portal.get(f"/portal/measures/{administration.id}")
        assert "Little interest or pleasure in doing things" in page.text
        # A missing answer: 422, the item named, nothing stored.
        incomplete = form(PHQ9, 12)
        del incomplete["item_4"]
        r = await portal.post(f"/portal/measures/{administration.id}", data=incomplete)
        assert r.status_code == 422
        assert "Please answer every question." in r.text
        await administration.refresh_from_db()
        assert administration.status is AdministrationStatus.SENT
        r = await portal.post(f"/portal/measures/{administration.id}", data=form(PHQ9, 12))
        assert r.status_code == 303
        done = await portal.get(r.headers["location"])
        assert "your answers were sent" in done.text
        assert "data-crisis" not in done.text
        # Answered once: a second submission changes nothing.
        r = await portal.post(f"/portal/measures/{administration.id}", data=form(PHQ9, 3))
        assert r.status_code == 409
    await administration.refresh_from_db()
    assert administration.status is AdministrationStatus.COMPLETED
    assert (administration.score, administration.band) == (12, "moderate")
    assert administration.safety_alert is False
    events = captured.of_type("measure.completed")
    assert [e.recipient for e in events] == [f"s:{people['alice'].id}"]
    assert events[0].payload["score"] == 12 and events[0].payload["band"] == "moderate"
    assert captured.of_type("measure.alert") == []
    assert not await Task.exists()


async def test_item9_raises_an_alert_a_task_an_email_and_the_crisis_message(
    new_http: Callable[..., httpx.AsyncClient],
    people: dict[str, Any],
    capture_events: Callable[[], Any],
) -> None:
    admin_id = await send(people)
    captured = capture_events()
    async with new_http("10.0.0.3") as portal:
        await login(portal, people["camille"])
        r = await portal.post(f"/portal/measures/{admin_id}", data=form(PHQ9, 3, item9=1))
        assert r.status_code == 303
        done = await portal.get(r.headers["location"])
        assert "data-crisis" in done.text
        assert "3114" in done.text  # the built-in message's numbers
        # The practice's own message replaces it.
        practice: Practice = people["practice"]
        practice.crisis_message = "Call our on-call line: 01 23 45 67 89, or 112."
        await practice.save()
        again = await portal.get(r.headers["location"])
        assert "01 23 45 67 89" in again.text and "3114" not in again.text
        listed = await portal.get("/portal/api/measures")
        assert listed.json()[0]["show_crisis_message"] is True
        assert listed.json()[0]["score"] is None  # scores not shown unless the practice allows
    task = await Task.get(client_id=people["camille"].id)
    assert task.assignee_id == people["alice"].id  # type: ignore[attr-defined]
    assert task.due_date is not None
    # The front desk sees the file's tasks, not its clinical details: the task says what to
    # do, and the answer stays on the Measures tab (it quoted item 9's answer before).
    assert not people["practice"].office_admins_see_clinical
    async with new_http("10.0.0.4") as desk:
        await login(desk, people["desk"])
        tab = await desk.get(f"/staff/clients/{people['camille'].id}/tasks")
        assert tab.status_code == 200 and "needs your review today" in tab.text
        for clinical in ("item 9", "PHQ", "Several days", "self-harm"):
            assert clinical not in task.note
        # (Every staff page carries the live alert's template, which names item 9.)
        assert "Several days" not in tab.text and "thoughts of self-harm" not in tab.text
        measures_tab = await desk.get(f"/staff/clients/{people['camille'].id}/measures")
        assert measures_tab.status_code == 200 and "data-score" not in measures_tab.text
        # Nor do the file's logs, the practice's outbox or the export say that there was an
        # alert: its email and audit entry showed there (found by an access audit).
        logs = await desk.get(f"/staff/clients/{people['camille'].id}/logs")
        outbox = await desk.get("/staff/outbox")
        record, _documents = await client_record(
            Caller.acting_as(people["desk"]), people["camille"]
        )
        for page in (logs.text, outbox.text, json.dumps(record, default=str)):
            assert "a client needs your attention" not in page and "measure_alert" not in page
            assert "measure.alert" not in page.replace('"measure.alert"', "")  # the script
            assert "raised a safety alert in a" not in page and ">Safety alert<" not in page
    async with new_http("10.0.0.5") as therapist:
        await login(therapist, people["alice"])
        logs = await therapist.get(f"/staff/clients/{people['camille'].id}/logs")
        assert "a client needs your attention" in logs.text
        assert "raised a safety alert in a questionnaire" in logs.text
    alert_mail = await OutboxMessage.get(purpose="measure_alert")
    assert alert_mail.to == people["alice"].email
    assert f"/staff/clients/{people['camille'].id}/measures" in alert_mail.body_text
    alert = captured.of_type("measure.alert")
    assert [e.recipient for e in alert] == [f"s:{people['alice'].id}"]
    assert alert[0].payload["client_id"] == people["camille"].id
    assert await AuditEntry.filter(action="measure.alert").count() == 1


async def test_an_alert_for_a_client_without_therapist_goes_to_the_owners(
    make: Factory, people: dict[str, Any], capture_events: Callable[[], Any]
) -> None:
    lone = await make.client(None, first_name="Lone")
    administration, _ = await measures.do_send_measure(
        Caller.acting_as(people["owner"]), lone, MeasureKind.PHQ9
    )
    assert administration is not None
    captured = capture_events()
    account = await make.portal_account(lone)
    await measures.do_complete_measure(
        Caller.acting_as((account, lone)), administration, form(PHQ9, 20, item9=3)
    )
    assert captured.recipients("measure.alert") == {f"s:{people['owner'].id}"}
    assert (await Task.get(client_id=lone.id)).assignee_id == people["owner"].id  # type: ignore[attr-defined]


async def test_answers_sent_twice_are_recorded_once(
    http: httpx.AsyncClient, people: dict[str, Any], capture_events: Callable[[], Any]
) -> None:
    """The answer lost, the button pressed again: a second score went on the chart (and a
    second safety alert), and a completed measure cannot be taken back. The page's key finds
    the first; the page shown again records a new one; two sends at once record one."""
    client = people["noportal"]
    await login(http, people["alice"])
    url = f"/staff/clients/{client.id}/measures/fill/phq9"

    captured = capture_events()
    key = await request_key_of(http, url)
    answers = form(PHQ9, 20, item9=2)
    for _ in range(2):
        r = await http.post(url, data={**answers, "request_key": key})
        assert r.status_code == 303
    assert await MeasureAdministration.filter(client_id=client.id).count() == 1
    assert len(captured.of_type("measure.alert")) == 1
    assert await Task.filter(client_id=client.id).count() == 1
    r = await http.post(url, data={**form(PHQ9, 5), "request_key": await request_key_of(http, url)})
    assert r.status_code == 303
    assert await MeasureAdministration.filter(client_id=client.id).count() == 2
    both = await asyncio.gather(
        *(
            measures.do_record_in_session(
                Caller.acting_as(people["alice"]),
                client,
                MeasureKind.GAD7,
                form(GAD7, 9),
                request_key="same-page",
            )
            for _ in range(2)
        )
    )
    assert both[0].id == both[1].id
    assert await MeasureAdministration.filter(client_id=client.id).count() == 3


async def test_filled_in_session_by_the_therapist(
    http: httpx.AsyncClient, people: dict[str, Any], capture_events: Callable[[], Any]
) -> None:
    await login(http, people["alice"])
    url = f"/staff/clients/{people['noportal'].id}/measures/fill/gad7"
    page = await http.get(url)
    assert "Feeling nervous, anxious, or on edge" in page.text
    captured = capture_events()
    r = await http.post(url, data=form(GAD7, 15))
    assert r.status_code == 303
    done = await MeasureAdministration.get(client_id=people["noportal"].id)
    assert (done.score, done.band, done.filled_by_id) == (15, "severe", people["alice"].id)  # type: ignore[attr-defined]
    assert captured.of_type("measure.completed")[0].payload["in_session"] is True
    tab = await http.get(f"/staff/clients/{people['noportal'].id}/measures")
    assert "<svg" in tab.text and 'data-score="15"' in tab.text
    # Without a portal account nothing can be sent, and saying so is a 422.
    r = await http.post(
        f"/staff/clients/{people['noportal'].id}/measures", data={"measure": "phq9"}
    )
    assert r.status_code == 422
    assert not await MeasureAdministration.filter(status=AdministrationStatus.SENT).exists()
    # French wording on a French page.
    fr = await http.get(url, headers={"Accept-Language": "fr"})
    assert "Sentiment de nervosité, d'anxiété ou de tension" in html.unescape(fr.text)
    assert "Plus de la moitié des jours" in fr.text


async def test_remind_and_withdraw(http: httpx.AsyncClient, people: dict[str, Any]) -> None:
    admin_id = await send(people)
    await login(http, people["desk"])
    base = f"/staff/clients/{people['camille'].id}/measures/{admin_id}"
    assert (await http.post(f"{base}/remind")).status_code == 303
    assert await OutboxMessage.filter(purpose="measure_reminder").count() == 1
    assert (await http.post(f"{base}/cancel")).status_code == 303
    administration = await MeasureAdministration.get(id=admin_id)
    assert administration.status is AdministrationStatus.CANCELLED
    assert (await http.post(f"{base}/remind")).status_code == 409
    account = await PortalAccountOf.of(people["camille"])
    with pytest.raises(Conflict):
        await measures.do_complete_measure(account, administration, form(PHQ9, 1))


class PortalAccountOf:
    @staticmethod
    async def of(client: Any) -> Caller:
        from models.accounts import PortalAccount

        return Caller.acting_as((await PortalAccount.get(client_id=client.id), client))


# --- schedules ---------------------------------------------------------------------------


async def test_every_two_weeks_sends_the_next_once_even_with_several_workers(
    people: dict[str, Any],
) -> None:
    actor = Caller.acting_as(people["alice"])
    first, schedule = await measures.do_send_measure(
        actor, people["camille"], MeasureKind.GAD7, every_weeks=2
    )
    assert first is not None and schedule is not None
    assert await measures.send_due_measures() == 0  # nothing due yet
    later = datetime.now(UTC) + timedelta(weeks=2, minutes=1)
    # Three workers tick at once: one claims the schedule, the others find it moved.
    results = await asyncio.gather(*(measures.send_due_measures(later) for _ in range(3)))
    assert sum(results) == 1
    assert await measures.send_due_measures(later) == 0
    sent = await MeasureAdministration.filter(schedule_id=schedule.id).order_by("id")
    assert len(sent) == 2
    await schedule.refresh_from_db()
    assert schedule.next_due_at is not None and schedule.next_due_at > later
    # A worker down for two months sends one, not four.
    much_later = later + timedelta(weeks=8)
    assert await measures.send_due_measures(much_later) == 1
    # Stopped: nothing more.
    await measures.do_stop_schedule(actor, schedule)
    assert await measures.send_due_measures(much_later + timedelta(weeks=10)) == 0


async def test_every_week_keeps_the_practices_hour_across_summer_time(
    people: dict[str, Any],
) -> None:
    """A weekly questionnaire sent Mondays at 09:00 in Paris still goes at 09:00 once summer
    time starts, and after it ends (weeks were added in UTC: 10:00, then 08:00)."""
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")
    assert people["practice"].time_zone == "Europe/Paris"
    _first, schedule = await measures.do_send_measure(
        Caller.acting_as(people["alice"]), people["camille"], MeasureKind.GAD7, every_weeks=1
    )
    assert schedule is not None
    due = datetime(2027, 3, 22, 9, 0, tzinfo=paris)  # Monday; summer time starts on the 28th
    await MeasureSchedule.filter(id=schedule.id).update(next_due_at=due.astimezone(UTC))
    assert await measures.send_due_measures(due.astimezone(UTC)) == 1
    await schedule.refresh_from_db()
    assert schedule.next_due_at is not None
    following = schedule.next_due_at.astimezone(paris)
    assert (following.date().isoformat(), following.hour, following.minute) == (
        "2027-03-29",
        9,
        0,
    )
    # Sent again then, it keeps the hour; and a worker down for weeks catches up to 09:00.
    assert await measures.send_due_measures(schedule.next_due_at + timedelta(weeks=3)) == 1
    await schedule.refresh_from_db()
    assert schedule.next_due_at is not None
    assert schedule.next_due_at.astimezone(paris).hour == 9
    # The first due date, counted when the schedule is made, too; and back in winter.
    from server.actions.schedules import weeks_later

    autumn = datetime(2027, 10, 25, 9, 0, tzinfo=paris).astimezone(UTC)
    assert weeks_later(autumn, 1, paris).astimezone(paris).hour == 9
    assert weeks_later(autumn, 1, paris).tzinfo is UTC


async def test_before_every_session(people: dict[str, Any]) -> None:
    practice = people["practice"]
    book = await session_booker(practice, people["alice"], people["camille"])
    now = datetime.now(UTC)

    soon = await book(now + timedelta(hours=30))
    later = await book(now + timedelta(days=8))
    actor = Caller.acting_as(people["alice"])
    none_yet, schedule = await measures.do_send_measure(
        actor, people["camille"], MeasureKind.PHQ9, hours_before=24
    )
    assert none_yet is None and schedule is not None
    assert not await MeasureAdministration.exists()
    assert await measures.send_due_measures(now + timedelta(hours=5)) == 0
    tick = now + timedelta(hours=7)  # the first session is now 23 hours away
    results = await asyncio.gather(*(measures.send_due_measures(tick) for _ in range(3)))
    assert sum(results) == 1
    assert await measures.send_due_measures(tick) == 0
    one = await MeasureAdministration.get(schedule_id=schedule.id)
    assert one.appointment_id == soon.id  # type: ignore[attr-defined]
    assert await measures.send_due_measures(now + timedelta(days=7, hours=1)) == 1
    assert {a.appointment_id for a in await MeasureAdministration.all()} == {soon.id, later.id}  # type: ignore[attr-defined]


async def test_schedule_choices_are_checked(people: dict[str, Any]) -> None:
    actor = Caller.acting_as(people["alice"])
    for kw in ({"every_weeks": 0}, {"every_weeks": 2, "hours_before": 3}, {"hours_before": 999}):
        with pytest.raises(ValidationFailed):
            await measures.do_send_measure(actor, people["camille"], MeasureKind.PHQ9, **kw)
    assert not await MeasureSchedule.exists() and not await MeasureAdministration.exists()


# --- the chart ---------------------------------------------------------------------------


def test_chart_places_points_by_date_and_score_over_the_bands() -> None:
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    rows = [
        MeasureAdministration(
            id=i + 1,
            measure=MeasureKind.PHQ9,
            status=AdministrationStatus.COMPLETED,
            score=s,
            band=PHQ9.band_for(s).key,
            completed_at=start + timedelta(days=d),
            safety_alert=False,
        )
        for i, (s, d) in enumerate([(21, 0), (14, 14), (6, 28), (3, 56)])
    ]
    chart = chart_for(PHQ9, list(reversed(rows)))
    assert [p.score for p in chart.points] == [21, 14, 6, 3]
    xs = [p.x for p in chart.points]
    assert xs == sorted(xs) and xs[0] < xs[-1]
    # Equal time steps, equal distances: 0, 14, 28 then 56 days.
    assert abs((xs[1] - xs[0]) - (xs[2] - xs[1])) < 0.2
    assert abs((xs[3] - xs[2]) - 2 * (xs[1] - xs[0])) < 0.2
    # Higher score, higher on the chart (smaller y).
    ys = [p.y for p in chart.points]
    assert ys == sorted(ys)
    assert [p.band for p in chart.points] == ["severe", "moderate", "mild", "minimal"]
    # The bands stack from the top to the axis without gaps, worst at the top.
    assert [b.key for b in chart.bands][-1] == "severe"
    assert min(b.y for b in chart.bands) == TOP
    by_top = sorted(chart.bands, key=lambda b: b.y)
    for upper, lower in zip(by_top, by_top[1:], strict=False):
        assert abs(upper.y + upper.height - lower.y) < 0.2
    assert abs(by_top[-1].y + by_top[-1].height - (HEIGHT - 28)) < 0.2
    # Each point lies inside its own band.
    for p in chart.points:
        band = next(b for b in chart.bands if b.key == p.band)
        assert band.y <= p.y <= band.y + band.height
    assert chart.polyline.count(",") == 4


async def test_chart_data_through_the_api(http: httpx.AsyncClient, people: dict[str, Any]) -> None:
    for total in (18, 9):
        await measures.do_record_in_session(
            Caller.acting_as(people["alice"]),
            people["camille"],
            MeasureKind.PHQ9,
            form(PHQ9, total),
        )
    await login(http, people["alice"])
    data = (await http.get(f"/api/clients/{people['camille'].id}/measures")).json()
    (chart,) = data["charts"]
    assert chart["measure"] == "phq9" and chart["max_score"] == 27
    assert [p["score"] for p in chart["points"]] == [18, 9]
    assert [b["key"] for b in chart["bands"]] == [
        "minimal",
        "mild",
        "moderate",
        "moderately_severe",
        "severe",
    ]


# --- access ------------------------------------------------------------------------------


async def test_who_sees_what(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    admin_id = await send(people)
    account = await PortalAccountOf.of(people["camille"])
    administration = await MeasureAdministration.get(id=admin_id)
    await measures.do_complete_measure(account, administration, form(PHQ9, 11))
    cid = people["camille"].id
    api = f"/api/clients/{cid}/measures"
    tab = f"/staff/clients/{cid}/measures"

    async def staff_view(who: str) -> tuple[int, Any, str]:
        async with new_http() as h:
            await login(h, people[who])
            r = await h.get(api)
            page = await h.get(tab)
            return r.status_code, r.json(), page.text

    for who in ("owner", "alice"):
        status, body, page = await staff_view(who)
        assert status == 200
        assert body["administrations"][0]["score"] == 11
        assert len(body["administrations"][0]["answers"]) == 9
        assert body["charts"] and "<svg" in page
    status, body, _page = await staff_view("bob")
    assert status == 404
    # The front desk sees what was sent and that it was answered, not the answers.
    status, body, page = await staff_view("desk")
    assert status == 200
    row = body["administrations"][0]
    assert row["status"] == "completed" and row["completed_at"]
    assert row["score"] is None and row["answers"] is None and body["charts"] == []
    assert "<svg" not in page and "Little interest" not in page and "data-score" not in page
    async with new_http() as h:
        await login(h, people["desk"])
        assert (await h.get(f"/api/measures/{admin_id}")).json()["score"] is None
        assert (await h.get(f"/staff/clients/{cid}/measures/fill/phq9")).status_code == 404
    # ... unless the practice opens clinical details to the front desk.
    practice: Practice = people["practice"]
    practice.office_admins_see_clinical = True
    await practice.save()
    status, body, page = await staff_view("desk")
    assert body["administrations"][0]["score"] == 11 and "<svg" in page

    # The client sees their own; another client and nobody see nothing.
    async with new_http("10.0.0.5") as h:
        await login(h, people["camille"])
        assert (await h.get(f"/portal/measures/{admin_id}")).status_code == 200
        assert len((await h.get("/portal/api/measures")).json()) == 1
        assert (await h.get(api)).status_code == 401
    async with new_http("10.0.0.6") as h:
        await login(h, people["other"])
        assert (await h.get(f"/portal/measures/{admin_id}")).status_code == 404
        assert (await h.get("/portal/api/measures")).json() == []
        r = await h.post(f"/portal/api/measures/{admin_id}/answers", json={"answers": {}})
        assert r.status_code == 404
    async with new_http("10.0.0.7") as h:
        assert (await h.get(api)).status_code == 401
        assert (await h.get(f"/portal/measures/{admin_id}")).status_code == 303
        assert (await h.get("/portal/api/measures")).status_code == 401


async def test_a_withdrawn_measure_is_gone_for_the_client(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    admin_id = await send(people)
    await measures.do_cancel_administration(
        Caller.acting_as(people["alice"]), await MeasureAdministration.get(id=admin_id)
    )
    async with new_http("10.0.0.5") as h:
        await login(h, people["camille"])
        assert (await h.get(f"/portal/measures/{admin_id}")).status_code == 404
        assert (await h.get("/portal/api/measures")).json() == []


async def test_portal_trend_only_when_the_practice_allows(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    await measures.do_record_in_session(
        Caller.acting_as(people["alice"]), people["camille"], MeasureKind.GAD7, form(GAD7, 8)
    )
    async with new_http("10.0.0.5") as h:
        await login(h, people["camille"])
        assert "<svg" not in (await h.get("/portal/measures")).text
        practice: Practice = people["practice"]
        practice.clients_see_measure_trend = True
        await practice.save()
        page = (await h.get("/portal/measures")).text
        assert "<svg" in page and 'data-score="8"' in page


async def test_practice_settings_for_measures(
    http: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    await login(http, people["owner"])
    practice: Practice = people["practice"]
    r = await http.post(
        "/staff/practice",
        data={
            "name": practice.name,
            "cancellation_notice_hours": "24",
            "online_booking": "true",
            "video_url_template": practice.video_url_template,
            "clients_see_measure_trend": "true",
            "crisis_message": "  Call 112.  ",
        },
    )
    assert r.status_code == 303
    await practice.refresh_from_db()
    assert practice.clients_see_measure_trend is True
    assert practice.crisis_message == "Call 112."


async def test_schedules_on_the_tab(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    await login(http, people["alice"])
    cid = people["camille"].id
    r = await http.post(
        f"/staff/clients/{cid}/measures",
        data={"measure": "gad7", "repeat": "weeks", "every_weeks": "3", "hours_before": "24"},
    )
    assert r.status_code == 303
    r = await http.post(
        f"/staff/clients/{cid}/measures",
        data={"measure": "phq9", "repeat": "sessions", "every_weeks": "2", "hours_before": "48"},
    )
    assert r.status_code == 303
    page = (await http.get(f"/staff/clients/{cid}/measures")).text
    assert "every 3 weeks" in page and "48 hours before each session" in page
    french = await http.get(f"/staff/clients/{cid}/measures", headers={"Accept-Language": "fr"})
    assert "GAD-7\u00a0: toutes les 3 semaines" in french.text  # it read "GAD-7: toutes…"
    weekly = await MeasureSchedule.get(every_weeks=3)
    # Sent at once for "every 3 weeks"; "before every session" waits for a session.
    assert await MeasureAdministration.filter(client_id=cid).count() == 1
    r = await http.post(f"/staff/clients/{cid}/measures/schedules/{weekly.id}/stop")
    assert r.status_code == 303
    await weekly.refresh_from_db()
    assert weekly.stopped_at is not None
    # Another therapist cannot stop it.
    async with new_http("10.0.0.8") as bob:
        await login(bob, people["bob"])
        other = await MeasureSchedule.get(hours_before=48)
        r = await bob.post(f"/staff/clients/{cid}/measures/schedules/{other.id}/stop")
        assert r.status_code == 404
    await other.refresh_from_db()
    assert other.stopped_at is None
    r = await http.post(
        f"/staff/clients/{cid}/measures",
        data={"measure": "phq9", "repeat": "weeks", "every_weeks": "99"},
    )
    assert r.status_code == 422


async def test_send_pressed_twice_does_not_start_two_schedules(
    http: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    """A double tap on "Send" (or the button pressed again after a slow answer) started two
    schedules of the same questionnaire: two now, and two every two weeks for good. The
    second is a 409 on the tab naming the running schedule; one stopped, it may start again."""
    await login(http, people["alice"])
    cid = people["camille"].id
    url = f"/staff/clients/{cid}/measures"
    data = {"measure": "phq9", "repeat": "weeks", "every_weeks": "2"}
    assert (await http.post(url, data=data)).status_code == 303
    r = await http.post(url, data={**data, "every_weeks": "4"})
    assert r.status_code == 409
    assert "PHQ-9 is already sent to this client on a schedule (every 2 weeks)" in r.text
    assert 'role="alert"' in r.text and "data-schedule-id=" in r.text  # the tab, its list
    # "Before every session" of the same questionnaire too; through the API as well.
    r = await http.post(url, data={"measure": "phq9", "repeat": "sessions"})
    assert r.status_code == 409
    r = await http.post(f"/api/clients/{cid}/measures", json={"measure": "phq9", "every_weeks": 1})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    running = await MeasureSchedule.filter(client_id=cid, stopped_at=None)
    assert len(running) == 1
    assert await MeasureAdministration.filter(client_id=cid).count() == 1
    # Another questionnaire, or sending this one once, is not refused.
    assert (await http.post(url, data={**data, "measure": "gad7"})).status_code == 303
    assert (await http.post(url, data={"measure": "phq9"})).status_code == 303
    # Both presses at once: one schedule.
    actor = Caller.acting_as(people["alice"])
    await measures.do_stop_schedule(actor, running[0])
    results = await asyncio.gather(
        *(
            measures.do_send_measure(actor, people["camille"], MeasureKind.PHQ9, every_weeks=2)
            for _ in range(2)
        ),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "tuple"]
    assert await MeasureSchedule.filter(client_id=cid, measure="phq9", stopped_at=None).count() == 1


async def test_send_once_pressed_twice_sends_one_questionnaire(
    http: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    """ "Send" (once) pressed twice, or sent again after a slow answer, sent two
    questionnaires and two emails. The form's key finds the first; the page shown again
    sends a new one."""
    await login(http, people["alice"])
    cid = people["camille"].id
    url = f"/staff/clients/{cid}/measures"
    key = await request_key_of(http, url)
    for _ in range(2):
        r = await http.post(url, data={"measure": "gad7", "request_key": key})
        assert r.status_code == 303
    assert await MeasureAdministration.filter(client_id=cid).count() == 1
    assert await OutboxMessage.filter(purpose="measure_sent").count() == 1
    r = await http.post(
        url, data={"measure": "gad7", "request_key": await request_key_of(http, url)}
    )
    assert r.status_code == 303
    assert await MeasureAdministration.filter(client_id=cid).count() == 2
    # The API takes a key of the caller's own.
    api = f"/api/clients/{cid}/measures"
    sent = [
        (await http.post(api, json={"measure": "phq9", "request_key": "k-1"})).json()[
            "administration"
        ]["id"]
        for _ in range(2)
    ]
    assert sent[0] == sent[1]
    assert await MeasureAdministration.filter(client_id=cid).count() == 3


async def test_an_inactive_client_gets_nothing_more(people: dict[str, Any]) -> None:
    from models.clients import Client, ClientStatus

    _first, schedule = await measures.do_send_measure(
        Caller.acting_as(people["alice"]), people["camille"], MeasureKind.PHQ9, every_weeks=1
    )
    assert schedule is not None
    await Client.filter(id=people["camille"].id).update(status=ClientStatus.ARCHIVED)
    assert await measures.send_due_measures(datetime.now(UTC) + timedelta(weeks=1, hours=1)) == 0
    await schedule.refresh_from_db()
    # The schedule moved on, so reactivating the client does not send a backlog.
    assert schedule.next_due_at is not None
    assert schedule.next_due_at > datetime.now(UTC) + timedelta(weeks=1, hours=1)
    assert await MeasureAdministration.filter(client_id=people["camille"].id).count() == 1


async def test_the_export_has_measures_and_forms_as_the_caller_may_see_them(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    import json

    from tests.test_export import export_of
    from tests.test_forms import full_answers, intake

    actor = Caller.acting_as(people["alice"])
    await measures.do_record_in_session(actor, people["camille"], MeasureKind.PHQ9, form(PHQ9, 13))
    from server.actions import forms

    sent = await forms.do_send_form(actor, people["camille"], await intake(people))
    account = await PortalAccountOf.of(people["camille"])
    await forms.do_submit_form(account, sent, full_answers())
    _r, archive = await export_of(new_http, people["alice"], people["camille"])
    assert archive is not None
    record = json.loads(archive.read("record.json"))
    assert record["measures"][0]["score"] == 13 and record["measures"][0]["measure"] == "PHQ-9"
    assert record["forms"][0]["answers"]["f3"] == "Sleep, mostly."
    _r, archive = await export_of(new_http, people["desk"], people["camille"])
    assert archive is not None
    record = json.loads(archive.read("record.json"))
    assert record["measures"][0]["status"] == "completed"
    assert "score" not in record["measures"][0] and "answers" not in record["forms"][0]


async def test_the_worker_sends_what_is_due_on_its_tick(people: dict[str, Any]) -> None:
    from server.worker import run_worker

    _first, schedule = await measures.do_send_measure(
        Caller.acting_as(people["alice"]), people["camille"], MeasureKind.GAD7, every_weeks=4
    )
    assert schedule is not None
    await MeasureSchedule.filter(id=schedule.id).update(
        next_due_at=datetime.now(UTC) - timedelta(minutes=1)
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(stop, interval=0.05))
    for _ in range(100):
        if await MeasureAdministration.filter(schedule_id=schedule.id).count() == 2:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await worker
    assert await MeasureAdministration.filter(schedule_id=schedule.id).count() == 2


async def test_a_moved_session_is_asked_once_and_a_cancelled_one_is_withdrawn(
    people: dict[str, Any],
) -> None:
    from models.agenda import Attendance

    practice = people["practice"]
    book = await session_booker(practice, people["alice"], people["camille"])
    now = datetime.now(UTC)

    first = await book(now + timedelta(hours=30))
    second = await book(now + timedelta(days=5, hours=30))
    actor = Caller.acting_as(people["alice"])
    _none, schedule = await measures.do_send_measure(
        actor, people["camille"], MeasureKind.PHQ9, hours_before=24
    )
    assert schedule is not None
    assert await measures.send_due_measures(now + timedelta(hours=7)) == 1
    asked = await MeasureAdministration.get(schedule_id=schedule.id)
    assert asked.appointment_id == first.id  # type: ignore[attr-defined]
    # Moved two hours later: the same session, no second questionnaire; the waiting one
    # follows it to its new date.
    moved = await agenda.do_move_appointment(None, first, now + timedelta(hours=32))
    assert await measures.send_due_measures(now + timedelta(hours=9)) == 0
    await asked.refresh_from_db()
    assert asked.appointment_id == moved.id  # type: ignore[attr-defined]
    assert asked.status is AdministrationStatus.SENT
    assert await MeasureAdministration.filter(schedule_id=schedule.id).count() == 1
    # The moved session is then cancelled: the unanswered questionnaire is withdrawn.
    await agenda.do_set_attendance(None, moved, Attendance.CANCELLED_BY_CLIENT)
    assert await measures.send_due_measures(now + timedelta(hours=10)) == 0
    await asked.refresh_from_db()
    assert asked.status is AdministrationStatus.CANCELLED
    entry = await AuditEntry.get(action="measure.cancelled", object_id=str(asked.id))
    assert entry.detail["reason"] == "session_cancelled"

    # An answered one stays when its session is cancelled afterwards.
    tick = now + timedelta(days=5, hours=7)
    assert await measures.send_due_measures(tick) == 1
    answered = await MeasureAdministration.get(appointment_id=second.id)
    account = await PortalAccountOf.of(people["camille"])
    await measures.do_complete_measure(account, answered, form(PHQ9, 4))
    await agenda.do_set_attendance(None, second, Attendance.CANCELLED_BY_PRACTITIONER)
    await measures.send_due_measures(tick + timedelta(hours=1))
    await answered.refresh_from_db()
    assert answered.status is AdministrationStatus.COMPLETED and answered.score == 4


async def test_a_session_moved_out_of_reach_then_cancelled_withdraws_what_was_sent(
    people: dict[str, Any],
) -> None:
    """Sent for tomorrow's session, which is then moved ten days later (out of the 24 hours'
    reach, so the questionnaire does not follow it yet), moved again, then cancelled: the
    questionnaire left waiting on the portal is withdrawn. While the session still stands
    at its new date, it waits."""
    from models.agenda import Attendance

    book = await session_booker(people["practice"], people["alice"], people["camille"])
    now = datetime.now(UTC)
    first = await book(now + timedelta(hours=30))
    _none, schedule = await measures.do_send_measure(
        Caller.acting_as(people["alice"]), people["camille"], MeasureKind.PHQ9, hours_before=24
    )
    assert schedule is not None
    assert await measures.send_due_measures(now + timedelta(hours=7)) == 1
    asked = await MeasureAdministration.get(schedule_id=schedule.id)
    assert asked.appointment_id == first.id  # type: ignore[attr-defined]
    moved = await agenda.do_move_appointment(None, first, now + timedelta(days=10))
    moved = await agenda.do_move_appointment(None, moved, now + timedelta(days=11))
    assert await measures.send_due_measures(now + timedelta(hours=8)) == 0
    await asked.refresh_from_db()
    assert asked.status is AdministrationStatus.SENT  # the session still stands
    await agenda.do_set_attendance(None, moved, Attendance.CANCELLED_BY_CLIENT)
    await measures.send_due_measures(now + timedelta(hours=9))
    await asked.refresh_from_db()
    assert asked.status is AdministrationStatus.CANCELLED, asked.status
    entry = await AuditEntry.get(action="measure.cancelled", object_id=str(asked.id))
    assert entry.detail == {"reason": "session_cancelled", "appointment_id": moved.id}


async def test_a_session_booked_in_the_minute_another_is_moved_is_asked_about(
    people: dict[str, Any],
) -> None:
    """On the phone with the client: a new session in five days is booked, and tomorrow's
    (already answered) is moved an hour later within the same minute. The new session is
    not taken for the moved one's replacement: it is asked about when it comes within
    reach. A move made before appointments kept the link is still told by the data."""
    from models.agenda import Appointment

    book = await session_booker(people["practice"], people["alice"], people["camille"])
    now = datetime.now(UTC)
    first = await book(now + timedelta(hours=30))
    _none, schedule = await measures.do_send_measure(
        Caller.acting_as(people["alice"]), people["camille"], MeasureKind.PHQ9, hours_before=24
    )
    assert schedule is not None
    assert await measures.send_due_measures(now + timedelta(hours=7)) == 1
    asked = await MeasureAdministration.get(schedule_id=schedule.id)
    await measures.do_complete_measure(
        await PortalAccountOf.of(people["camille"]), asked, form(PHQ9, 3)
    )
    extra = await book(now + timedelta(days=5))
    await agenda.do_move_appointment(None, first, now + timedelta(hours=31))
    assert await measures.send_due_measures(now + timedelta(hours=8)) == 0  # asked already
    assert await measures.send_due_measures(now + timedelta(days=4, hours=1)) == 1
    assert await MeasureAdministration.filter(appointment_id=extra.id).count() == 1

    # A move from before the link (moved_from left empty): the answered questionnaire
    # still counts for the session at its new date.
    later = await book(now + timedelta(days=9))
    assert await measures.send_due_measures(now + timedelta(days=8, hours=1)) == 1
    again = await agenda.do_move_appointment(None, later, now + timedelta(days=9, hours=2))
    await Appointment.filter(id=again.id).update(moved_from_id=None)
    assert await measures.send_due_measures(now + timedelta(days=8, hours=2)) == 0
    assert await MeasureAdministration.filter(appointment_id=again.id).count() == 1


async def test_the_fhir_export_has_completed_measures_for_who_may_read_them(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    from tests.test_export import export_of, validated_bundle

    actor = Caller.acting_as(people["alice"])
    done = await measures.do_record_in_session(
        actor, people["camille"], MeasureKind.PHQ9, form(PHQ9, 13)
    )
    await send(people, MeasureKind.GAD7)  # still waiting: not a response yet

    async def resources(who: str) -> list[dict[str, Any]]:
        r, archive = await export_of(new_http, people[who], people["camille"])
        assert r.status_code == 200 and archive is not None
        raw, _bundle = validated_bundle(archive)  # R4B, each resource on its own too
        kinds = {"QuestionnaireResponse", "Observation"}
        return [e["resource"] for e in raw["entry"] if e["resource"]["resourceType"] in kinds]

    for who in ("alice", "owner"):
        response, score = await resources(who)
        assert response["resourceType"] == "QuestionnaireResponse"
        assert response["questionnaire"] == "http://loinc.org/q/44249-1"
        assert response["status"] == "completed"
        assert [i["linkId"] for i in response["item"]][:9] == [str(n) for n in range(1, 10)]
        values = [int(i["answer"][0]["valueCoding"]["code"]) for i in response["item"][:9]]
        assert sum(values) == 13 == done.score
        assert response["item"][0]["text"].startswith("Little interest")
        assert score["resourceType"] == "Observation"
        assert score["code"]["coding"][0] == {
            "system": "http://loinc.org",
            "code": "44261-6",
            "display": "Patient Health Questionnaire 9 item (PHQ-9) total score",
        }
        assert score["valueInteger"] == 13 and score["interpretation"][0]["text"]
        assert score["derivedFrom"][0]["reference"].endswith(response["id"])
    assert await resources("desk") == []
    practice: Practice = people["practice"]
    practice.office_admins_see_clinical = True
    await practice.save()
    assert len(await resources("desk")) == 2
    r, _archive = await export_of(new_http, people["bob"], people["camille"])
    assert r.status_code == 404


async def test_a_sender_who_may_no_longer_see_the_client_does_not_hear_the_score(
    make: Factory, people: dict[str, Any], capture_events: Callable[[], Any]
) -> None:
    """The score goes to whoever may read it now: after Camille moved from Alice to Bob,
    Alice, who sent the questionnaire, hears nothing of her answers (she would get a 404 on
    the file); a front desk sender hears only where the practice opens clinical details."""
    from server.actions.client_file import do_assign_therapist

    account = await make.portal_account(people["camille"])
    camille = Caller.acting_as((account, people["camille"]))
    administration_id = await send(people)
    desk_sent, _ = await measures.do_send_measure(
        Caller.acting_as(people["desk"]), people["camille"], MeasureKind.GAD7
    )
    assert desk_sent is not None
    await do_assign_therapist(Caller.acting_as(people["owner"]), people["camille"], people["bob"])
    captured = capture_events()
    await measures.do_complete_measure(
        camille, await MeasureAdministration.get(id=administration_id), form(PHQ9, 12)
    )
    await measures.do_complete_measure(camille, desk_sent, form(GAD7, 5))
    assert [e.recipient for e in captured.of_type("measure.completed")] == [
        f"s:{people['bob'].id}",
        f"s:{people['bob'].id}",
    ]


async def test_a_schedule_whose_sending_fails_is_held_and_the_others_go_on(
    people: dict[str, Any], monkeypatch: pytest.MonkeyPatch, make: Factory
) -> None:
    """One schedule whose sending raised stopped the tick for every schedule after it, and
    raised again on every tick of the worker (each second)."""
    from server.actions import schedules

    practice = people["practice"]
    book = await session_booker(practice, people["alice"], people["camille"])
    now = datetime.now(UTC)
    tick = now + timedelta(weeks=2, minutes=1)  # the periodic ones are due...
    await book(tick + timedelta(hours=20))  # ...and a session is within a day
    actor = Caller.acting_as(people["alice"])
    _, bad_before = await measures.do_send_measure(
        actor, people["camille"], MeasureKind.PHQ9, hours_before=24
    )
    _, good_before = await measures.do_send_measure(
        actor, people["camille"], MeasureKind.GAD7, hours_before=24
    )
    # Another client for the periodic ones: one running schedule per measure and client.
    other = await make.client(people["alice"], first_name="Léo", last_name="Petit")
    _, bad_periodic = await measures.do_send_measure(actor, other, MeasureKind.PHQ9, every_weeks=2)
    _, good_periodic = await measures.do_send_measure(actor, other, MeasureKind.GAD7, every_weeks=2)
    assert bad_before and good_before and bad_periodic and good_periodic
    bad = {bad_before.id, bad_periodic.id}
    tries: list[int] = []
    send_now, send_before = measures._send_periodic, measures._send_before_sessions

    async def poisoned_now(schedule: MeasureSchedule, client: Any) -> bool:
        if schedule.id in bad:
            tries.append(schedule.id)
            raise RuntimeError("a bad row")
        return await send_now(schedule, client)

    async def poisoned_before(schedule: MeasureSchedule, client: Any, at: datetime) -> int:
        if schedule.id in bad:
            tries.append(schedule.id)
            raise RuntimeError("a bad row")
        return await send_before(schedule, client, at)

    monkeypatch.setattr(measures, "_send_periodic", poisoned_now)
    monkeypatch.setattr(measures, "_send_before_sessions", poisoned_before)
    assert await measures.send_due_measures(tick) == 2
    assert sorted(tries) == sorted(bad)
    assert await MeasureAdministration.filter(schedule_id=good_before.id).count() == 1
    # (A periodic schedule sends its first one when it is made.)
    assert await MeasureAdministration.filter(schedule_id=good_periodic.id).count() == 2
    # Held: the next ticks leave the bad ones alone until the hold is over...
    assert await measures.send_due_measures(tick + timedelta(seconds=1)) == 0
    assert len(tries) == 2
    for schedule in (bad_before, bad_periodic):
        await schedule.refresh_from_db()
        assert schedule.next_due_at == tick + schedules.RETRY_AFTER
    # ...then try them again, and once they send, they go on as before.
    monkeypatch.setattr(measures, "_send_periodic", send_now)
    monkeypatch.setattr(measures, "_send_before_sessions", send_before)
    retry = tick + schedules.RETRY_AFTER
    assert await measures.send_due_measures(retry - timedelta(seconds=1)) == 0
    assert await measures.send_due_measures(retry) == 2
    assert await MeasureAdministration.filter(schedule_id=bad_before.id).count() == 1
    assert await MeasureAdministration.filter(schedule_id=bad_periodic.id).count() == 2
    await bad_periodic.refresh_from_db()
    assert bad_periodic.next_due_at == retry + timedelta(weeks=2)


async def test_a_refused_send_keeps_the_measure_and_schedule_chosen(
    http: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    """A 422 on "Send a measure" (999 hours before each session) showed the error, but the
    form back to PHQ-9 once, now: the measure and the schedule had to be chosen again."""
    await login(http, people["alice"])
    cid = people["camille"].id
    r = await http.post(
        f"/staff/clients/{cid}/measures",
        data={"measure": "gad7", "repeat": "sessions", "every_weeks": "4", "hours_before": "999"},
    )
    assert r.status_code == 422, r.text
    page = r.text.split('id="send"', 1)[1]
    assert re.search(r'<option value="gad7"\s*selected>', page)
    assert re.search(r'name="repeat" value="sessions"\s*checked', page)
    assert not re.search(r'name="repeat" value="once"\s*checked', page)
    assert re.search(r'name="every_weeks"[^>]*value="4"', page)
    assert re.search(r'name="hours_before"[^>]*value="999"[^>]*><span class="field-error">', page)
    assert not await MeasureSchedule.exists()
    assert not await MeasureAdministration.filter(client_id=cid).exists()
