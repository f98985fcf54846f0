"""Session notes: drafts, signing makes them immutable, addenda by the author, countersigning
by the supervisor, and who may read them."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from models.accounts import Practice
from models.agenda import Appointment
from models.audit import AuditEntry
from models.notes import NoteAddendum, NoteTemplate, SessionNote
from server.actions import agenda, notes
from server.auth.sessions import Caller
from server.errors import Conflict
from server.export import client_record
from tests.conftest import Factory, login, request_key_of


@pytest.fixture
async def session(make: Factory) -> dict[str, Any]:
    practice = await make.practice()
    owner = await make.owner(first_name="Olga")
    alice = await make.therapist(first_name="Alice")
    sam = await make.therapist(first_name="Sam", supervisor=alice)
    bob = await make.therapist(first_name="Bob")
    desk = await make.office_admin()
    client = await make.client(sam, first_name="Chloé")
    office = await agenda.do_create_location(None, practice, name="Lyon")
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    appt = await agenda.do_book_appointment(
        None,
        practitioner=sam,
        client=client,
        service=talk,
        starts_at=datetime.now(UTC) - timedelta(days=1),
        location=office,
    )
    return {
        "practice": practice,
        "owner": owner,
        "alice": alice,
        "sam": sam,
        "bob": bob,
        "desk": desk,
        "appt": appt,
        "client": client,
        "talk": talk,
        "office": office,
    }


async def test_draft_sign_addendum_cosign(new_http: Any, session: dict[str, Any]) -> None:
    url = f"/api/appointments/{session['appt'].id}/note"
    sam = new_http("10.6.0.1")
    await login(sam, session["sam"])
    assert (await sam.get(url)).json()["exists"] is False
    r = await sam.put(url, json={"template": "soap", "sections": {"subjective": "Sleeps badly"}})
    assert r.status_code == 200, r.text
    assert r.json()["sections"] == {
        "subjective": "Sleeps badly",
        "objective": "",
        "assessment": "",
        "plan": "",
    }
    r = await sam.put(url, json={"template": "soap", "sections": {"mood": "x"}})
    assert r.status_code == 422
    r = await sam.put(
        url, json={"template": "soap", "sections": {"subjective": "Sleeps badly", "plan": "Diary"}}
    )
    assert r.json()["sections"]["plan"] == "Diary"
    # The supervisor cannot countersign a draft, nor write in it.
    alice = new_http("10.6.0.2")
    await login(alice, session["alice"])
    assert (await alice.post(f"{url}/cosign")).status_code == 409
    assert (await alice.put(url, json={"template": "soap", "sections": {}})).status_code == 409
    assert (await sam.post(f"{url}/sign")).status_code == 200
    # Signed: fixed. Changes are refused with a 409 and change nothing.
    r = await sam.put(url, json={"template": "soap", "sections": {"plan": "Changed"}})
    assert r.status_code == 409
    assert (await SessionNote.get(appointment_id=session["appt"].id)).sections["plan"] == "Diary"
    assert (await sam.post(f"{url}/addenda", json={"text": "  "})).status_code == 422
    r = await sam.post(f"{url}/addenda", json={"text": "Forgot: started melatonin"})
    assert r.status_code == 200 and r.json()["addenda"][0]["text"] == "Forgot: started melatonin"
    assert (await alice.post(f"{url}/addenda", json={"text": "not mine"})).status_code == 409
    # Countersigning is for the author's supervisor only.
    bob = new_http("10.6.0.3")
    await login(bob, session["bob"])
    assert (await bob.post(f"{url}/cosign")).status_code == 404  # not his client's file
    r = await alice.post(f"{url}/cosign")
    assert r.status_code == 200 and r.json()["cosigned_at"] is not None
    assert await NoteAddendum.all().count() == 1
    actions = set(
        await AuditEntry.filter(object_type="session_note").values_list("action", flat=True)
    )
    assert {
        "note.created",
        "note.updated",
        "note.signed",
        "note.addendum",
        "note.cosigned",
    } <= actions


async def test_who_may_read_notes(new_http: Any, session: dict[str, Any]) -> None:
    url = f"/api/appointments/{session['appt'].id}/note"
    sam = new_http("10.6.1.1")
    await login(sam, session["sam"])
    await sam.put(url, json={"template": "blank", "sections": {"note": "Private"}})
    # The front desk sees the agenda, not the notes, unless the practice allows it.
    desk = new_http("10.6.1.2")
    await login(desk, session["desk"])
    missing = await desk.get("/api/appointments/999999/note")
    forbidden = await desk.get(url)
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.json() == missing.json()
    assert (await desk.get(f"/staff/appointments/{session['appt'].id}/note")).status_code == 404
    await Practice.filter(id=session["client"].practice_id).update(office_admins_see_clinical=True)
    assert (await desk.get(url)).json()["withheld"] is True  # a draft: its author's
    assert (await sam.post(f"{url}/sign")).status_code == 200
    assert (await desk.get(url)).json()["sections"] == {"note": "Private"}
    # A client never reaches notes: the staff API refuses portal sessions.
    portal = new_http("10.6.1.3")
    await login(portal, session["client"])
    assert (await portal.get(url)).status_code == 401
    assert await AuditEntry.filter(action="read.note").count() >= 1


async def test_the_note_page(http: httpx.AsyncClient, session: dict[str, Any]) -> None:
    me = await login(http, session["sam"])
    page_url = f"/staff/appointments/{session['appt'].id}/note"
    page = await http.get(page_url + "?template=dap")
    assert page.status_code == 200 and 'name="section_data"' in page.text
    form = {
        "csrf_token": me["csrf_token"],
        "template": "dap",
        "section_data": "Calm",
        "section_plan": "Review",
    }
    assert (await http.post(page_url, data=form)).status_code == 303
    assert 'data-note-state="draft"' in (await http.get(page_url)).text
    assert (await http.post(page_url, data={**form, "sign": "1"})).status_code == 303
    signed = await http.get(page_url)
    assert 'data-note-state="signed"' in signed.text and "Calm" in signed.text
    again = await http.post(page_url, data={**form, "section_data": "Edited"})
    assert again.status_code == 409 and "addendum" in again.text


async def test_a_save_from_a_window_opened_earlier_does_not_write_over_the_note(
    new_http: Any, session: dict[str, Any]
) -> None:
    """Two windows on one draft: the last save won, silently, and the other's text was gone.
    A save carries the version it was written from; a stale one is a 409 that keeps the
    writer's text on the page, beside the note as it is saved now."""
    url = f"/api/appointments/{session['appt'].id}/note"
    page_url = f"/staff/appointments/{session['appt'].id}/note"
    sam = new_http("10.6.1.1")
    me = await login(sam, session["sam"])
    opened = (await sam.get(url)).json()["version"]
    assert opened == ""
    first = await sam.put(url, json={"sections": {"note": "Window A"}, "based_on": opened})
    assert first.status_code == 200
    # Window B still has the empty page: its save would have replaced A's text.
    stale = await sam.put(url, json={"sections": {"note": "Window B"}, "based_on": opened})
    assert stale.status_code == 409
    assert (await sam.get(url)).json()["sections"]["note"] == "Window A"
    # From the current version, the save goes through.
    now = first.json()["version"]
    assert (
        await sam.put(url, json={"sections": {"note": "A, then more"}, "based_on": now})
    ).status_code == 200
    # The form: the stale window's text comes back in its textarea, with the saved note.
    form = {
        "csrf_token": me["csrf_token"],
        "template": "blank",
        "section_note": "Window B, half an hour of writing",
        "based_on": now,
    }
    page = await sam.post(page_url, data=form)
    assert page.status_code == 409
    assert "Window B, half an hour of writing</textarea>" in page.text
    assert "data-saved-elsewhere" in page.text and "A, then more" in page.text
    assert (await SessionNote.get(appointment_id=session["appt"].id)).sections == {
        "note": "A, then more"
    }
    # "Save and sign" from the stale window signs nothing either.
    signed = await sam.post(page_url, data={**form, "sign": "1"})
    assert signed.status_code == 409
    assert (await SessionNote.get(appointment_id=session["appt"].id)).signed_at is None


async def test_signing_checks_the_note_is_the_one_the_signer_saw(session: dict[str, Any]) -> None:
    sam = Caller.acting_as(session["sam"])
    note = await notes.do_save_draft(sam, session["appt"], NoteTemplate.BLANK, {"note": "Seen"})
    seen = notes.note_version(note)
    await notes.do_save_draft(sam, session["appt"], NoteTemplate.BLANK, {"note": "Not seen"})
    with pytest.raises(notes.NoteChanged):
        await notes.do_sign(sam, note, based_on=seen)
    assert (await SessionNote.get(id=note.id)).signed_at is None


async def test_two_first_saves_at_once_are_one_note_and_a_409(session: dict[str, Any]) -> None:
    """No note row to lock yet: the second failed on the unique appointment, a 500 that
    lost its text."""
    sam = Caller.acting_as(session["sam"])
    results = await asyncio.gather(
        *(
            notes.do_save_draft(
                sam, session["appt"], NoteTemplate.BLANK, {"note": text}, based_on=""
            )
            for text in ("one", "two")
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, SessionNote) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 1
    assert await SessionNote.filter(appointment_id=session["appt"].id).count() == 1


async def test_an_addendum_form_sent_twice_adds_one_addendum(
    http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    """An addendum can never be removed: a double click on "Add the addendum" (or a form
    sent again after an answer that never came) must not leave it twice on the record."""
    sam, appt = session["sam"], session["appt"]
    note = await notes.do_save_draft(
        Caller.acting_as(sam), appt, NoteTemplate.BLANK, {"note": "Session went well"}
    )
    await notes.do_sign(Caller.acting_as(sam), note)
    await login(http, sam)
    url = f"/staff/appointments/{appt.id}/note"
    form = {
        "csrf_token": http.headers["X-CSRF-Token"],
        "text": "Started melatonin",
        "request_key": await request_key_of(http, url),
    }
    results = await asyncio.gather(*(http.post(f"{url}/addenda", data=form) for _ in range(2)))
    assert [r.status_code for r in results] == [303, 303]
    assert await NoteAddendum.filter(note_id=note.id).count() == 1
    # The next page's form is a new addendum.
    form["request_key"] = await request_key_of(http, url)
    assert (await http.post(f"{url}/addenda", data=form)).status_code == 303
    assert await NoteAddendum.filter(note_id=note.id).count() == 2


async def test_a_refused_addendum_keeps_what_was_typed(
    http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    """A 422 on "Add the addendum" (longer than the 20,000 characters an addendum holds)
    showed the error above an empty box: the addendum, often long, had to be written again."""
    sam, appt = session["sam"], session["appt"]
    note = await notes.do_save_draft(
        Caller.acting_as(sam), appt, NoteTemplate.BLANK, {"note": "Session went well"}
    )
    await notes.do_sign(Caller.acting_as(sam), note)
    await login(http, sam)
    url = f"/staff/appointments/{appt.id}/note"
    text = "Correction after the session: " + "the client mentioned sleeping badly. " * 600
    r = await http.post(
        f"{url}/addenda",
        data={"csrf_token": http.headers["X-CSRF-Token"], "text": text},
    )
    assert r.status_code == 422, r.text
    assert re.search(
        r'<textarea name="text"[^>]*>' + re.escape(text) + r'</textarea><span class="field-error">',
        r.text,
    )
    assert not await NoteAddendum.filter(note_id=note.id).exists()


async def test_a_draft_is_read_only_by_its_author(new_http: Any, session: dict[str, Any]) -> None:
    """The page told everyone but the author "X is writing this note", but the API handed
    the draft's text to the supervisor, the owner and the front desk (where it may read
    clinical details). Others get who writes it, and no text, until it is signed."""
    await Practice.filter(id=session["practice"].id).update(office_admins_see_clinical=True)
    url = f"/api/appointments/{session['appt'].id}/note"
    sam = new_http("10.6.2.1")
    await login(sam, session["sam"])
    mine = await sam.put(url, json={"template": "blank", "sections": {"note": "Half-written"}})
    assert mine.json()["sections"] == {"note": "Half-written"} and not mine.json()["withheld"]
    for n, who in enumerate(("alice", "owner", "desk")):
        other = new_http(f"10.6.2.{n + 2}")
        await login(other, session[who])
        got = await other.get(url)
        assert got.status_code == 200, who
        assert "Half-written" not in got.text, who
        body = got.json()
        assert body["exists"] and body["withheld"] and body["signed_at"] is None, who
        assert body["author_id"] == session["sam"].id and body["sections"] == {}, who
        assert body["version"] == "", who
        page = await other.get(f"/staff/appointments/{session['appt'].id}/note")
        assert "Half-written" not in page.text and "is writing this note" in page.text, who
    # Once signed, it is the record: everyone who may read notes reads it.
    assert (await sam.post(f"{url}/sign")).status_code == 200
    alice = new_http("10.6.2.9")
    await login(alice, session["alice"])
    signed = (await alice.get(url)).json()
    assert signed["sections"] == {"note": "Half-written"} and not signed["withheld"]


async def test_only_the_practitioner_of_the_session_starts_its_note(
    new_http: Any, session: dict[str, Any]
) -> None:
    """Whoever saved first became the author: the front desk (where it may read clinical
    details), the owner or the supervisor could start the note of a session they did not
    hold, and the practitioner who held it could never write, sign or add to it."""
    await Practice.filter(id=session["practice"].id).update(office_admins_see_clinical=True)
    appt = session["appt"]
    url = f"/api/appointments/{appt.id}/note"
    for n, who in enumerate(("desk", "owner", "alice")):
        other = new_http(f"10.6.3.{n + 1}")
        me = await login(other, session[who])
        r = await other.put(url, json={"template": "blank", "sections": {"note": "not mine"}})
        assert r.status_code == 409 and "held this session" in r.text, who
        page = await other.get(f"/staff/appointments/{appt.id}/note")
        assert page.status_code == 200 and "<textarea" not in page.text, who
        assert "No note was written for this session yet" in page.text, who
        form = {"csrf_token": me["csrf_token"], "template": "blank", "section_note": "mine"}
        posted = await other.post(f"/staff/appointments/{appt.id}/note", data=form)
        assert posted.status_code == 409, who
    assert await SessionNote.filter(appointment_id=appt.id).count() == 0
    sam = new_http("10.6.3.9")
    await login(sam, session["sam"])
    assert "<textarea" in (await sam.get(f"/staff/appointments/{appt.id}/note")).text
    r = await sam.put(url, json={"template": "soap", "sections": {"subjective": "My session"}})
    assert r.status_code == 200 and r.json()["author_id"] == session["sam"].id


async def test_a_draft_is_finished_and_countersigned_after_the_client_is_handed_over(
    new_http: Any, session: dict[str, Any]
) -> None:
    """Who may reach a note was decided by the client's therapist now: once the owner handed
    the client to Bob, Sam got a 404 on his own draft, Bob could not sign it (not his), and
    Alice, Sam's supervisor, could not countersign it: the session stayed unsigned for good."""
    appt = session["appt"]
    url = f"/api/appointments/{appt.id}/note"
    sam = new_http("10.6.4.1")
    await login(sam, session["sam"])
    await sam.put(url, json={"template": "blank", "sections": {"note": "Session content"}})
    owner = new_http("10.6.4.2")
    await login(owner, session["owner"])
    r = await owner.put(
        f"/api/clients/{session['client'].id}/therapist",
        json={"therapist_id": session["bob"].id},
    )
    assert r.status_code == 200, r.text
    bob = new_http("10.6.4.3")
    await login(bob, session["bob"])
    assert (await bob.post(f"{url}/sign")).status_code == 409  # not the author
    assert (await sam.get(url)).json()["sections"] == {"note": "Session content"}
    assert (await sam.get(f"/staff/appointments/{appt.id}/note")).status_code == 200
    assert (await sam.post(f"{url}/sign")).status_code == 200
    assert (await sam.post(f"{url}/addenda", json={"text": "Handed over"})).status_code == 200
    alice = new_http("10.6.4.4")
    await login(alice, session["alice"])
    r = await alice.post(f"{url}/cosign")
    assert r.status_code == 200 and r.json()["cosigned_at"] is not None
    # The note only: the file stays with Bob's caseload.
    for http in (sam, alice):
        assert (await http.get(f"/api/clients/{session['client'].id}")).status_code == 404
        assert (await http.get(f"/staff/clients/{session['client'].id}")).status_code == 404


async def test_a_colleague_covering_a_session_writes_its_note(
    new_http: Any, session: dict[str, Any]
) -> None:
    """Bob covers one session of Sam's client. Only those who see Sam's caseload could reach
    its note, so the clinician who held the session could not write it."""
    covered = await agenda.do_book_appointment(
        None,
        practitioner=session["bob"],
        client=session["client"],
        service=session["talk"],
        starts_at=datetime.now(UTC) - timedelta(days=2),
        location=session["office"],
    )
    bob = new_http("10.6.5.1")
    await login(bob, session["bob"])
    url = f"/api/appointments/{covered.id}/note"
    r = await bob.put(url, json={"template": "blank", "sections": {"note": "I saw Chloé"}})
    assert r.status_code == 200, r.text
    assert (await bob.post(f"{url}/sign")).status_code == 200
    # Sam, the client's therapist, reads it once signed.
    sam = new_http("10.6.5.2")
    await login(sam, session["sam"])
    assert (await sam.get(url)).json()["sections"] == {"note": "I saw Chloé"}
    # That session's note only: Sam's sessions' notes and the file stay out of Bob's reach.
    sams = session["appt"]
    await notes.do_save_draft(
        Caller.acting_as(session["sam"]), sams, NoteTemplate.BLANK, {"note": "x"}
    )
    assert (await bob.get(f"/api/appointments/{sams.id}/note")).status_code == 404
    assert (await bob.get(f"/staff/appointments/{sams.id}/note")).status_code == 404
    assert (await bob.get(f"/api/clients/{session['client'].id}")).status_code == 404
    # The front desk kept from clinical details is kept from it all the same.
    desk = new_http("10.6.5.3")
    await login(desk, session["desk"])
    assert (await desk.get(url)).status_code == 404


async def test_a_refused_save_keeps_the_text_whatever_the_note_became(
    new_http: Any, session: dict[str, Any]
) -> None:
    """The page promises an error never costs the writer their text, but two 409s did: the
    note signed from another window (the page showed the signed note, and A's text was
    gone), and the note started from another window under another template (the page drew
    SOAP's boxes, and A's blank-note text was in none of them)."""
    appt = session["appt"]
    page_url = f"/staff/appointments/{appt.id}/note"
    url = f"/api/appointments/{appt.id}/note"
    sam = new_http("10.6.6.1")
    me = await login(sam, session["sam"])
    # Window B starts the note as SOAP while window A has the new blank note open.
    r = await sam.put(url, json={"template": "soap", "sections": {"subjective": "From B"}})
    assert r.status_code == 200
    form = {
        "csrf_token": me["csrf_token"],
        "template": "blank",
        "section_note": "A whole session written in window A",
        "based_on": "",
    }
    page = await sam.post(page_url, data=form)
    assert page.status_code == 409
    assert "data-not-saved" in page.text and "A whole session written in window A" in page.text
    # B's text stays in its boxes: saving from here does not blank it.
    assert ">From B</textarea>" in page.text
    # Window B signs; window A, opened on that same draft, saves.
    opened = r.json()["version"]
    assert (await sam.post(f"{url}/sign")).status_code == 200
    form = {
        "csrf_token": me["csrf_token"],
        "template": "soap",
        "section_subjective": "From B, and twenty minutes of more writing",
        "section_plan": "",
        "based_on": opened,
    }
    page = await sam.post(page_url, data=form)
    assert page.status_code == 409 and 'data-note-state="signed"' in page.text
    assert "data-not-saved" in page.text and "twenty minutes of more writing" in page.text
    assert (await SessionNote.get(appointment_id=appt.id)).sections["subjective"] == "From B"


async def test_a_save_that_fits_the_form_is_not_shown_twice(
    http: httpx.AsyncClient, session: dict[str, Any]
) -> None:
    me = await login(http, session["sam"])
    page_url = f"/staff/appointments/{session['appt'].id}/note"
    form = {"csrf_token": me["csrf_token"], "template": "blank", "section_note": "x" * 20_001}
    page = await http.post(page_url, data=form)
    assert page.status_code == 422 and "x" * 20_001 + "</textarea>" in page.text
    assert "data-not-saved" not in page.text


async def test_a_session_with_a_note_is_cancelled_not_deleted(
    new_http: Any, session: dict[str, Any]
) -> None:
    """Any staff member (the front desk too) could delete an appointment from the agenda; a
    signed note on it then left the client's export and the sessions tab with it. A session
    with a note, signed or draft, is now a 409 that says to cancel it; cancelling keeps it."""
    appt, client = session["appt"], session["client"]
    sam = Caller.acting_as(session["sam"])
    note = await notes.do_save_draft(sam, appt, NoteTemplate.BLANK, {"note": "Signed"})
    desk = new_http("10.6.7.1")
    await login(desk, session["desk"])
    r = await desk.delete(f"/api/appointments/{appt.id}")
    assert r.status_code == 409 and "cancelled" in r.json()["error"]["message"]
    await notes.do_sign(sam, note)
    assert (await desk.delete(f"/api/appointments/{appt.id}")).status_code == 409
    assert (await Appointment.get(id=appt.id)).deleted_at is None
    r = await desk.post(
        f"/api/appointments/{appt.id}/attendance", json={"attendance": "cancelled_by_client"}
    )
    assert r.status_code == 200, r.text
    record, _docs = await client_record(Caller.acting_as(session["owner"]), client)
    assert [n["id"] for n in record["session_notes"]] == [note.id]
    owner = new_http("10.6.7.2")
    await login(owner, session["owner"])
    tab = await owner.get(f"/staff/clients/{client.id}/sessions")
    assert f"/staff/appointments/{appt.id}/note" in tab.text
    # An appointment without a note still goes; a deleted one takes no note afterwards.
    other = await agenda.do_book_appointment(
        None,
        practitioner=session["sam"],
        client=client,
        service=session["talk"],
        starts_at=datetime.now(UTC) + timedelta(days=3),
        location=session["office"],
    )
    assert (await desk.delete(f"/api/appointments/{other.id}")).status_code == 200
    with pytest.raises(Conflict):
        await notes.do_save_draft(sam, other, NoteTemplate.BLANK, {"note": "Too late"})
    assert not await SessionNote.exists(appointment_id=other.id)


async def test_the_api_signs_only_the_version_its_caller_read(
    new_http: Any, session: dict[str, Any]
) -> None:
    """PUT took ``based_on``, but POST .../sign took no body: an API client signed whatever
    was saved last, text from another window it never read included."""
    appt = session["appt"]
    sam = new_http("10.6.8.1")
    await login(sam, session["sam"])
    url = f"/api/appointments/{appt.id}/note"
    seen = (await sam.put(url, json={"sections": {"note": "Seen"}})).json()["version"]
    now = (await sam.put(url, json={"sections": {"note": "Saved elsewhere"}})).json()["version"]
    r = await sam.post(f"{url}/sign", json={"based_on": seen})
    assert r.status_code == 409, r.text
    assert (await SessionNote.get(appointment_id=appt.id)).signed_at is None
    assert (await sam.post(f"{url}/sign", json={"based_on": 5})).status_code == 422
    r = await sam.post(f"{url}/sign", json={"based_on": now})
    assert r.status_code == 200 and r.json()["signed_at"] is not None
    # Without a body (or an empty one), it signs what was saved last, as before.
    other = await agenda.do_book_appointment(
        None,
        practitioner=session["sam"],
        client=session["client"],
        service=session["talk"],
        starts_at=datetime.now(UTC) - timedelta(days=3),
        location=session["office"],
    )
    url = f"/api/appointments/{other.id}/note"
    await sam.put(url, json={"sections": {"note": "Plain"}})
    r = await sam.post(f"{url}/sign", content=b"", headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


async def test_a_double_click_countersigns_once(session: dict[str, Any]) -> None:
    """do_cosign checked cosigned_at on the handler's copy, with no lock: two requests at
    once both countersigned, writing two audit entries, the second moving the time."""
    sam = Caller.acting_as(session["sam"])
    note = await notes.do_save_draft(sam, session["appt"], NoteTemplate.BLANK, {"note": "x"})
    await notes.do_sign(sam, note)
    alice = Caller.acting_as(session["alice"])
    # Each request read the note before either wrote: the second's copy is not cosigned.
    copies = [await SessionNote.get(id=note.id) for _ in range(2)]
    first = await notes.do_cosign(alice, copies[0])
    second = await notes.do_cosign(alice, copies[1])
    assert second.cosigned_at == first.cosigned_at == copies[1].cosigned_at
    assert (await SessionNote.get(id=note.id)).cosigned_at == first.cosigned_at
    assert await AuditEntry.filter(action="note.cosigned", object_id=note.id).count() == 1
