"""Forms: the builder and its versions (a sent version never changes, old answers keep
theirs), sending, drafts, required fields, submitting (answers and a PDF on the file, fixed
afterwards), reminders, the live notice, and who may see what."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest

from models.accounts import PortalAccount, Practice
from models.clients import Document
from models.forms import FieldKind, FormAssignment, FormPurpose, FormStatus, FormVersion
from models.notifications import OutboxMessage
from server import storage
from server.actions import forms
from server.auth.sessions import Caller
from server.errors import Conflict, ValidationFailed
from server.form_fields import FieldIn, check_answers
from server.web import validate
from tests.conftest import login, session_booker


def field(kind: FieldKind, label: str, **kw: Any) -> FieldIn:
    return FieldIn(kind=kind, label=label, **kw)


async def intake(people: dict[str, Any]) -> Any:
    actor = Caller.acting_as(people["alice"])
    template = await forms.do_create_form(actor, "Intake", FormPurpose.INTAKE)
    for f in (
        field(FieldKind.SECTION, "About you", help="So we can reach you"),
        field(FieldKind.SHORT_TEXT, "Full name", required=True),
        field(FieldKind.LONG_TEXT, "What brings you here?", help="A few words"),
        field(FieldKind.SINGLE_CHOICE, "Preferred contact", choices=["Phone", "Email"]),
        field(FieldKind.MULTIPLE_CHOICE, "Days you can come", choices=["Mon", "Tue", "Wed"]),
        field(FieldKind.DATE, "Date of birth"),
        field(FieldKind.NUMBER, "Sessions before"),
        field(FieldKind.YES_NO, "Seen a therapist before?", required=True),
        field(FieldKind.SIGNATURE, "Signature", required=True),
    ):
        await forms.do_edit_form(actor, template, add=f)
    return template


def full_answers() -> dict[str, Any]:
    return {
        "f2": "Camille Martin",
        "f3": "Sleep, mostly.",
        "f4": "Email",
        "f5": ["Mon", "Wed"],
        "f6": "1990-04-02",
        "f7": "3",
        "f8": "no",
        "f9": "Camille Martin",
    }


def test_answers_are_checked_by_kind_and_required_only_when_submitting() -> None:
    specs = [
        field(FieldKind.SHORT_TEXT, "Name", required=True).spec("f1"),
        field(FieldKind.SINGLE_CHOICE, "Pick", choices=["A", "B"]).spec("f2"),
        field(FieldKind.MULTIPLE_CHOICE, "Many", choices=["A", "B"]).spec("f3"),
        field(FieldKind.DATE, "When").spec("f4"),
        field(FieldKind.NUMBER, "How many").spec("f5"),
        field(FieldKind.YES_NO, "Ok?", required=True).spec("f6"),
        field(FieldKind.SIGNATURE, "Sign", required=True).spec("f7"),
        field(FieldKind.SECTION, "Part", required=True).spec("f8"),
    ]
    today = date(2026, 12, 1)
    answers, errors = check_answers(specs, {}, final=False, today=today)
    assert (answers, errors) == ({}, {})
    _, errors = check_answers(specs, {}, final=True, today=today)
    assert set(errors) == {"f1", "f6", "f7"}  # a section is never required
    _, errors = check_answers(
        specs,
        {"f2": "C", "f3": ["A", "Z"], "f4": "31/02/2026", "f5": "lots", "f6": "maybe"},
        final=False,
        today=today,
    )
    assert set(errors) == {"f2", "f3", "f4", "f5", "f6"}
    answers, errors = check_answers(
        specs,
        {"f1": " Ana ", "f3": ["B", "A"], "f5": "2,5", "f6": "yes", "f7": "Ana Diaz"},
        final=True,
        today=today,
    )
    assert errors == {}
    assert answers == {
        "f1": "Ana",
        "f3": ["A", "B"],
        "f5": "2.5",
        "f6": "yes",
        "f7": {"name": "Ana Diaz", "date": "2026-12-01"},
    }
    with pytest.raises(ValidationFailed):
        field(FieldKind.SINGLE_CHOICE, "One choice only", choices=["A"]).spec("f9")


async def test_editing_a_sent_form_makes_a_new_version_and_old_answers_keep_theirs(
    people: dict[str, Any],
) -> None:
    actor = Caller.acting_as(people["alice"])
    template = await intake(people)
    # Never sent: edits change version 1 in place.
    assert await FormVersion.filter(template_id=template.id).count() == 1
    first = await forms.do_send_form(actor, people["camille"], template)
    client = Caller.acting_as(
        (await PortalAccount.get(client_id=people["camille"].id), people["camille"])
    )
    await forms.do_submit_form(client, first, full_answers())
    # Now edit: rename a question, drop one, add one.
    v2 = await forms.do_edit_form(
        actor,
        template,
        update=("f2", field(FieldKind.SHORT_TEXT, "Name and surname", required=True)),
    )
    assert v2.number == 2
    v2 = await forms.do_edit_form(actor, template, remove="f3")
    assert v2.number == 2  # version 2 was not sent yet: changed in place
    v2 = await forms.do_edit_form(actor, template, add=field(FieldKind.SHORT_TEXT, "Pronouns"))
    keys = [f["key"] for f in v2.fields_spec]
    assert "f3" not in keys and keys[-1] == "f10"  # a new key, never a reused one
    await forms.do_edit_form(actor, template, move=("f10", "up"))
    v2 = await FormVersion.get(id=v2.id)
    assert [f["key"] for f in v2.fields_spec][-2:] == ["f10", "f9"]
    # The first submission still reads against version 1.
    await first.refresh_from_db()
    v1 = await FormVersion.get(id=first.version_id)  # type: ignore[attr-defined]
    assert v1.number == 1
    assert [f["label"] for f in v1.fields_spec][1:3] == ["Full name", "What brings you here?"]
    assert first.answers is not None and first.answers["f3"] == "Sleep, mostly."
    second = await forms.do_send_form(actor, people["camille"], template)
    assert second.version_id == v2.id  # type: ignore[attr-defined]
    # Editing after that second sending makes version 3, leaving 2 as sent.
    v3 = await forms.do_edit_form(actor, template, remove="f10")
    assert v3.number == 3
    assert "f10" in [f["key"] for f in (await FormVersion.get(id=v2.id)).fields_spec]


async def test_the_client_saves_a_draft_then_submits_and_it_is_fixed(
    new_http: Callable[..., httpx.AsyncClient],
    people: dict[str, Any],
    capture_events: Callable[[], Any],
) -> None:
    template = await intake(people)
    async with new_http() as staff:
        await login(staff, people["alice"])
        r = await staff.post(
            f"/staff/clients/{people['camille'].id}/forms", data={"form_id": str(template.id)}
        )
        assert r.status_code == 303
    assignment = await FormAssignment.get(client_id=people["camille"].id)
    mail = await OutboxMessage.get(purpose="form_sent")
    assert f"/portal/forms/{assignment.id}" in mail.body_text
    url = f"/portal/forms/{assignment.id}"
    captured = capture_events()
    async with new_http("10.0.0.3") as portal:
        await login(portal, people["camille"])
        page = await portal.get(url)
        assert "What brings you here?" in page.text and "A few words" in page.text
        # A draft keeps what is there, required or not.
        r = await portal.post(url, data={"action": "draft", "f2": "Camille", "f5": ["Mon", "Tue"]})
        assert r.status_code == 303 and "draft=1" in r.headers["location"]
        again = await portal.get(url)
        assert 'value="Camille"' in again.text
        await assignment.refresh_from_db()
        assert assignment.draft == {"f2": "Camille", "f5": ["Mon", "Tue"]}
        assert assignment.status is FormStatus.SENT
        # Submitting without the required fields: 422, they are named, nothing changes.
        r = await portal.post(url, data={"action": "submit", "f2": "Camille"})
        assert r.status_code == 422
        assert r.text.count("field-error") == 2  # yes/no and signature
        assert not await Document.exists()
        data = {k: v for k, v in full_answers().items()}
        r = await portal.post(url, data={"action": "submit", **data})
        assert r.status_code == 303
        done = await portal.get(r.headers["location"])
        assert "your form was sent" in done.text
        # Fixed: neither a draft nor a second submission changes it.
        assert (await portal.post(url, data={"action": "draft", "f2": "X"})).status_code == 409
        assert (await portal.post(url, data={"action": "submit", **data})).status_code == 409
        # The client keeps a copy among their documents.
        await assignment.refresh_from_db()
        pdf = await portal.get(f"/portal/documents/{assignment.document_id}")  # type: ignore[attr-defined]
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert assignment.status is FormStatus.COMPLETED
    assert assignment.answers is not None
    assert assignment.answers["f9"]["name"] == "Camille Martin"
    document = await Document.get(id=assignment.document_id)  # type: ignore[attr-defined]
    assert document.client_id == people["camille"].id  # type: ignore[attr-defined]
    assert document.content_type == "application/pdf"
    assert (await storage.read(document.storage_key)).startswith(b"%PDF")
    events = captured.of_type("form.completed")
    assert [e.recipient for e in events] == [f"s:{people['alice'].id}"]
    assert events[0].payload["form_name"] == "Intake"


async def test_staff_see_what_was_sent_remind_and_withdraw(
    http: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    template = await intake(people)
    sent = await forms.do_send_form(Caller.acting_as(people["alice"]), people["camille"], template)
    await login(http, people["desk"])
    tab = await http.get(f"/staff/clients/{people['camille'].id}/forms")
    assert 'data-status="sent"' in tab.text and "Waiting for the client" in tab.text
    base = f"/staff/clients/{people['camille'].id}/forms/{sent.id}"
    assert (await http.post(f"{base}/remind")).status_code == 303
    assert await OutboxMessage.filter(purpose="form_reminder").count() == 1
    assert (await http.post(f"{base}/cancel")).status_code == 303
    await sent.refresh_from_db()
    assert sent.status is FormStatus.CANCELLED
    assert (await http.post(f"{base}/remind")).status_code == 409
    client = Caller.acting_as(
        (await PortalAccount.get(client_id=people["camille"].id), people["camille"])
    )
    with pytest.raises(Conflict):
        await forms.do_submit_form(client, sent, full_answers())


async def test_the_builder_through_the_pages(
    http: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    await login(http, people["bob"])
    r = await http.post("/staff/forms", data={"name": "Consent", "purpose": "consent"})
    assert r.status_code == 303
    url = r.headers["location"]
    r = await http.post(
        f"{url}/fields",
        data={
            "kind": "single_choice",
            "label": "Recording",
            "choices": "Yes\nNo\n",
            "required": "1",
        },
    )
    assert r.status_code == 303
    r = await http.post(
        f"{url}/fields", data={"kind": "single_choice", "label": "Bad", "choices": "Only"}
    )
    assert r.status_code == 422 and "at least two choices" in r.text
    r = await http.post(f"{url}/fields", data={"kind": "signature", "label": "Signature"})
    page = await http.get(url)
    assert "Recording" in page.text and "Signature (typed name and date)" in page.text
    assert 'data-version="1"' in page.text
    listing = await http.get("/staff/forms")
    assert "Consent" in listing.text
    # Bob's colleague cannot reach a form of another practice's... but one of his own, yes;
    # a client never reaches the builder.
    assert (await http.get("/staff/forms/999")).status_code == 404


async def test_a_field_labelled_only_with_spaces_is_refused(
    http: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    """The label's length was checked before it was stripped: "   " passed, and a question
    with no text went to clients. Adding or changing a field so is a 422 on the label."""
    template = await forms.do_create_form(
        Caller.acting_as(people["alice"]), "Intake", FormPurpose.INTAKE
    )
    await login(http, people["alice"])
    url = f"/staff/forms/{template.id}/fields"
    r = await http.post(url, data={"kind": "short_text", "label": " \t "})
    assert r.status_code == 422 and 'role="alert"' in r.text
    version = await FormVersion.get(template_id=template.id)
    assert version.fields_spec == []
    assert (await http.post(url, data={"kind": "short_text", "label": " Name "})).status_code == 303
    r = await http.post(f"{url}/f1/update", data={"kind": "short_text", "label": "   "})
    assert r.status_code == 422
    await version.refresh_from_db()
    assert [f["label"] for f in version.fields_spec] == ["Name"]
    with pytest.raises(ValidationFailed) as info:
        validate(FieldIn, {"kind": "short_text", "label": "  "})
    assert set(info.value.fields) == {"label"}


async def test_the_forms_list_counts_only_the_callers_clients(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    """Each form's "sent" count took in every client of the practice: a therapist learnt how
    many of a colleague's clients had an intake form. It counts those the caller may see."""
    template = await intake(people)
    await forms.do_send_form(Caller.acting_as(people["alice"]), people["camille"], template)

    async def count(who: str) -> str:
        http = new_http(f"10.0.4.{len(who)}")
        await login(http, people[who])
        page = (await http.get("/staff/forms")).text
        row = re.search(rf'data-form-id="{template.id}">.*?</tr>', page, re.S)
        assert row, page
        return re.findall(r"<td>([^<]*)</td>", row.group(0))[-1]

    assert await count("alice") == "1"
    assert await count("bob") == "0"
    assert await count("desk") == "1"  # the front desk sees the practice's files


async def test_who_sees_what(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    template = await intake(people)
    sent = await forms.do_send_form(Caller.acting_as(people["alice"]), people["camille"], template)
    client = Caller.acting_as(
        (await PortalAccount.get(client_id=people["camille"].id), people["camille"])
    )
    await forms.do_submit_form(client, sent, full_answers())
    tab = f"/staff/clients/{people['camille'].id}/forms"

    async def staff_tab(who: str) -> httpx.Response:
        async with new_http() as h:
            await login(h, people[who])
            return await h.get(tab)

    for who in ("owner", "alice"):
        r = await staff_tab(who)
        assert r.status_code == 200 and "Sleep, mostly." in r.text
    assert (await staff_tab("bob")).status_code == 404
    r = await staff_tab("desk")
    assert r.status_code == 200 and 'data-status="completed"' in r.text
    assert "Sleep, mostly." not in r.text
    practice: Practice = people["practice"]
    practice.office_admins_see_clinical = True
    await practice.save()
    assert "Sleep, mostly." in (await staff_tab("desk")).text

    async with new_http("10.0.0.5") as h:
        await login(h, people["camille"])
        assert (await h.get(f"/portal/forms/{sent.id}")).status_code == 200
        listed = (await h.get("/portal/api/forms")).json()
        assert [f["id"] for f in listed] == [sent.id]
        assert (await h.get("/staff/forms")).status_code in (303, 401)
    async with new_http("10.0.0.6") as h:
        await login(h, people["other"])
        assert (await h.get(f"/portal/forms/{sent.id}")).status_code == 404
        assert (await h.get("/portal/api/forms")).json() == []
        r = await h.post(f"/portal/api/forms/{sent.id}", json={"answers": {}, "submit": False})
        assert r.status_code == 404
    async with new_http("10.0.0.7") as h:
        assert (await h.get(f"/portal/forms/{sent.id}")).status_code == 303
        assert (await h.get("/portal/api/forms")).status_code == 401


async def test_the_api_saves_drafts_and_enforces_required_fields(
    http: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    template = await intake(people)
    sent = await forms.do_send_form(Caller.acting_as(people["alice"]), people["camille"], template)
    await login(http, people["camille"])
    url = f"/portal/api/forms/{sent.id}"
    r = await http.post(url, json={"answers": {"f2": "Camille"}, "submit": False})
    assert r.status_code == 200 and r.json()["answers"] == {"f2": "Camille"}
    r = await http.post(url, json={"answers": {"f2": "Camille"}, "submit": True})
    assert r.status_code == 422
    assert set(r.json()["error"]["fields"]) == {"f8", "f9"}
    r = await http.post(url, json={"answers": full_answers(), "submit": True})
    assert r.status_code == 200 and r.json()["status"] == "completed"
    assert r.json()["document_id"] is not None


async def test_answers_no_database_can_hold_are_refused_not_stored(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    """A lone surrogate ("\\ud800" in JSON) was stored in a draft or in the final answers,
    and every later page showing the form answered 500: the client's forms, and the forms tab
    of their file. A NUL inside a list of answers passed too (PostgreSQL's jsonb refuses
    it). Each is now a 422 on its field, and nothing is kept."""
    template = await intake(people)
    sent = await forms.do_send_form(Caller.acting_as(people["alice"]), people["camille"], template)
    await login(http, people["camille"])
    url = f"/portal/api/forms/{sent.id}"
    for raw in (
        b'{"answers": {"f2": "a\\ud800b"}, "submit": false}',
        b'{"answers": {"f2": ["a\\u0000b"]}, "submit": false}',
    ):
        r = await http.post(url, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert "answers" in r.json()["error"]["fields"]
    # The page's own form, which does not go through the API's validation.
    r = await http.post(f"/portal/forms/{sent.id}", data={"f2": "a\x00b", "action": "draft"})
    assert r.status_code == 422, r.text
    await sent.refresh_from_db()
    assert not sent.draft and not sent.answers
    assert (await http.get("/portal/api/forms")).status_code == 200
    staff = new_http("10.0.3.1")
    await login(staff, people["alice"])
    assert (await staff.get(f"/staff/clients/{people['camille'].id}/forms")).status_code == 200


async def test_the_signed_pdf_is_named_with_the_practices_day(
    people: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed at 00:30 on 2 April in Paris: the file said 1 April (the UTC date), its
    signature line 2 April."""
    from datetime import UTC, datetime

    from server.actions import forms as forms_actions

    class HalfPastMidnightInParis(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            moment = datetime(2026, 4, 1, 22, 30, tzinfo=UTC)
            return moment.astimezone(tz) if tz else moment.replace(tzinfo=None)

    template = await intake(people)
    sent = await forms.do_send_form(Caller.acting_as(people["alice"]), people["camille"], template)
    client = Caller.acting_as(
        (await PortalAccount.get(client_id=people["camille"].id), people["camille"])
    )
    monkeypatch.setattr(forms_actions, "datetime", HalfPastMidnightInParis)
    await forms.do_submit_form(client, sent, full_answers())
    await sent.refresh_from_db()
    document = await Document.get(id=sent.document_id)  # type: ignore[attr-defined]
    assert document.name.endswith(" 2026-04-02.pdf"), document.name


async def test_the_submitted_pdf_is_a_clinical_document(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    template = await intake(people)
    sent = await forms.do_send_form(Caller.acting_as(people["alice"]), people["camille"], template)
    client = Caller.acting_as(
        (await PortalAccount.get(client_id=people["camille"].id), people["camille"])
    )
    await forms.do_submit_form(client, sent, full_answers())
    await sent.refresh_from_db()
    document = await Document.get(id=sent.document_id)  # type: ignore[attr-defined]
    assert document.clinical is True and document.shared_with_client is True
    cid = people["camille"].id

    async def reach(who: str) -> tuple[int, int, bool, bool]:
        async with new_http() as h:
            await login(h, people[who])
            one = await h.get(f"/api/documents/{document.id}/content")
            page = await h.get(f"/staff/clients/{cid}/documents/{document.id}")
            listed = await h.get(f"/api/clients/{cid}/documents")
            listed_ids = [d["id"] for d in listed.json()] if listed.status_code == 200 else []
            export = await h.get(f"/api/clients/{cid}/export")
            in_export = export.status_code == 200 and any(
                n.startswith(f"documents/{document.id}-")
                for n in zipfile.ZipFile(io.BytesIO(export.content)).namelist()
            )
            return one.status_code, page.status_code, document.id in listed_ids, in_export

    assert await reach("owner") == (200, 200, True, True)
    assert await reach("alice") == (200, 200, True, True)
    assert await reach("bob") == (404, 404, False, False)
    assert await reach("desk") == (404, 404, False, False)
    practice: Practice = people["practice"]
    practice.office_admins_see_clinical = True
    await practice.save()
    assert await reach("desk") == (200, 200, True, True)
    # The client keeps their copy; another client does not reach it.
    async with new_http("10.0.0.8") as h:
        await login(h, people["camille"])
        assert (await h.get(f"/portal/documents/{document.id}")).status_code == 200
    async with new_http("10.0.0.9") as h:
        await login(h, people["other"])
        assert (await h.get(f"/portal/documents/{document.id}")).status_code == 404


# --- on a schedule ---------------------------------------------------------------------------


async def test_a_refused_submission_shows_back_the_signature_and_the_right_boxes(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    """The 422 page shows back what the client typed: the signature came back empty (the
    page read ``name`` of the posted text), and a ticked "Monday" also ticked "Mon" (a test
    of "Mon" within the text "Monday"), so submitting again stored both."""
    actor = Caller.acting_as(people["alice"])
    template = await forms.do_create_form(actor, "Consent", FormPurpose.CONSENT)
    for f in (
        field(FieldKind.SHORT_TEXT, "Full name", required=True),
        field(FieldKind.MULTIPLE_CHOICE, "Days", choices=["Mon", "Monday", "Tue"]),
        field(FieldKind.SIGNATURE, "Signature", required=True),
    ):
        await forms.do_edit_form(actor, template, add=f)
    assignment = await forms.do_send_form(actor, people["camille"], template)
    url = f"/portal/forms/{assignment.id}"

    def box(page: str, choice: str) -> str:
        found = re.search(rf'<input type="checkbox" name="f2" value="{choice}"[^>]*>', page)
        assert found is not None
        return found.group(0)

    async with new_http("10.0.0.3") as portal:
        await login(portal, people["camille"])
        r = await portal.post(
            url, data={"f1": "", "f2": "Monday", "f3": "Camille Martin", "action": "submit"}
        )
        assert r.status_code == 422
        signature = re.search(r'<input id="field-f3"[^>]*>', r.text)
        assert signature is not None and 'value="Camille Martin"' in signature.group(0)
        assert "checked" in box(r.text, "Monday") and "checked" not in box(r.text, "Mon")
        # Sent again as the refused page shows it: what the client chose, once.
        ticked = re.findall(r'name="f2" value="(\w+)" checked', r.text)
        again = {"f1": "Camille", "f2": ticked, "f3": "Camille Martin", "action": "submit"}
        # Two boxes come back as a list; a saved draft's signature as it was stored.
        r = await portal.post(url, data={"f2": ["Mon", "Tue"], "action": "submit"})
        assert "checked" in box(r.text, "Mon") and "checked" not in box(r.text, "Monday")
        account = await PortalAccount.get(client_id=people["camille"].id)
        client = Caller.acting_as((account, people["camille"]))
        await forms.do_save_draft(client, assignment, {"f3": "Camille M."})
        assert 'value="Camille M."' in (await portal.get(url)).text
        assert (await portal.post(url, data=again)).status_code == 303
    await assignment.refresh_from_db()
    assert assignment.answers is not None and assignment.answers["f2"] == ["Monday"]


async def test_send_pressed_twice_sends_one_form(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    """A form sent once had no key: a double tap, or "Send" pressed again after a slow
    answer, gave the client two copies to fill in and two emails."""
    from tests.conftest import request_key_of

    template = await intake(people)
    cid = people["camille"].id
    tab = f"/staff/clients/{cid}/forms"
    async with new_http() as staff:
        await login(staff, people["alice"])
        key = await request_key_of(staff, tab)
        for _ in range(2):
            r = await staff.post(tab, data={"form_id": str(template.id), "request_key": key})
            assert r.status_code == 303
        assert await FormAssignment.filter(client_id=cid).count() == 1
        assert await OutboxMessage.filter(purpose="form_sent").count() == 1
        # The tab shown again carries a new key: sending the form again is a new send.
        again = await request_key_of(staff, tab)
        assert again != key
        r = await staff.post(tab, data={"form_id": str(template.id), "request_key": again})
        assert r.status_code == 303
        assert await FormAssignment.filter(client_id=cid).count() == 2


async def test_a_form_every_n_weeks_from_the_tab_then_stopped(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    from datetime import UTC, datetime, timedelta

    from models.forms import FormSchedule
    from server.actions import form_schedules

    template = await intake(people)
    cid = people["camille"].id
    async with new_http() as staff:
        await login(staff, people["alice"])
        r = await staff.post(
            f"/staff/clients/{cid}/forms",
            data={"form_id": str(template.id), "repeat": "weeks", "every_weeks": "3"},
        )
        assert r.status_code == 303
        schedule = await FormSchedule.get(client_id=cid)
        assert schedule.every_weeks == 3 and schedule.hours_before is None
        assert await FormAssignment.filter(client_id=cid, schedule_id=schedule.id).count() == 1
        page = await staff.get(f"/staff/clients/{cid}/forms")
        assert f'data-form-schedule-id="{schedule.id}"' in page.text
        assert "every 3 weeks" in page.text
        # Out-of-range choices: 422, nothing scheduled.
        r = await staff.post(
            f"/staff/clients/{cid}/forms",
            data={"form_id": str(template.id), "repeat": "weeks", "every_weeks": "99"},
        )
        assert r.status_code == 422 and await FormSchedule.all().count() == 1
        # "Send" pressed again: a 409 naming the running schedule, nothing more sent.
        r = await staff.post(
            f"/staff/clients/{cid}/forms",
            data={"form_id": str(template.id), "repeat": "sessions", "hours_before": "24"},
        )
        assert r.status_code == 409 and 'role="alert"' in r.text
        assert "Intake is already sent to this client on a schedule (every 3 weeks)" in r.text
        assert await FormSchedule.all().count() == 1
        assert await FormAssignment.filter(client_id=cid).count() == 1
        later = datetime.now(UTC) + timedelta(weeks=3, hours=1)
        assert await form_schedules.send_due_forms(later) == 1
        assert await form_schedules.send_due_forms(later) == 0
        assert await OutboxMessage.filter(purpose="form_sent").count() == 2
        # Bob does not reach Camille's schedule; another client's path neither.
        async with new_http("10.0.1.2") as bob:
            await login(bob, people["bob"])
            stop = f"/staff/clients/{cid}/forms/schedules/{schedule.id}/stop"
            assert (await bob.post(stop)).status_code == 404
        other = people["other"].id
        r = await staff.post(f"/staff/clients/{other}/forms/schedules/{schedule.id}/stop")
        assert r.status_code == 404
        r = await staff.post(f"/staff/clients/{cid}/forms/schedules/{schedule.id}/stop")
        assert r.status_code == 303
    await schedule.refresh_from_db()
    assert schedule.stopped_at is not None
    assert await form_schedules.send_due_forms(later + timedelta(weeks=3)) == 0
    async with new_http("10.0.1.3") as portal:
        await login(portal, people["camille"])
        stop = f"/staff/clients/{cid}/forms/schedules/{schedule.id}/stop"
        assert (await portal.post(stop)).status_code in (303, 401)


async def test_a_form_before_each_session_moved_and_cancelled(people: dict[str, Any]) -> None:
    from datetime import UTC, datetime, timedelta

    from models.agenda import Attendance
    from server.actions import agenda, form_schedules

    template = await intake(people)
    practice = people["practice"]
    book = await session_booker(practice, people["alice"], people["camille"])
    now = datetime.now(UTC)

    first = await book(now + timedelta(hours=30))
    second = await book(now + timedelta(days=5, hours=30))
    actor = Caller.acting_as(people["alice"])
    none_yet, schedule = await form_schedules.do_schedule_form(
        actor, people["camille"], template, hours_before=24
    )
    assert none_yet is None and not await FormAssignment.exists()
    assert await form_schedules.send_due_forms(now + timedelta(hours=7)) == 1
    asked = await FormAssignment.get(schedule_id=schedule.id)
    assert asked.appointment_id == first.id  # type: ignore[attr-defined]
    moved = await agenda.do_move_appointment(None, first, now + timedelta(hours=32))
    assert await form_schedules.send_due_forms(now + timedelta(hours=9)) == 0
    await asked.refresh_from_db()
    assert asked.appointment_id == moved.id  # type: ignore[attr-defined]
    await agenda.do_set_attendance(None, moved, Attendance.CANCELLED_BY_CLIENT)
    await form_schedules.send_due_forms(now + timedelta(hours=10))
    await asked.refresh_from_db()
    assert asked.status is FormStatus.CANCELLED

    # One the client has started stays when its session is cancelled.
    tick = now + timedelta(days=5, hours=7)
    assert await form_schedules.send_due_forms(tick) == 1
    started = await FormAssignment.get(appointment_id=second.id)
    client = Caller.acting_as(
        (await PortalAccount.get(client_id=people["camille"].id), people["camille"])
    )
    await forms.do_save_draft(client, started, {"f2": "Camille"})
    await agenda.do_set_attendance(None, second, Attendance.CANCELLED_BY_PRACTITIONER)
    await form_schedules.send_due_forms(tick + timedelta(hours=1))
    await started.refresh_from_db()
    assert started.status is FormStatus.SENT


async def test_a_form_for_a_session_moved_out_of_reach_then_deleted_is_withdrawn(
    people: dict[str, Any],
) -> None:
    """The form sent for tomorrow's session stays waiting when the session is moved ten days
    later (beyond the schedule's 24 hours), and is withdrawn once that session is deleted."""
    from datetime import UTC, datetime, timedelta

    from server.actions import agenda, form_schedules

    template = await intake(people)
    book = await session_booker(people["practice"], people["alice"], people["camille"])
    now = datetime.now(UTC)
    first = await book(now + timedelta(hours=30))
    _none, schedule = await form_schedules.do_schedule_form(
        Caller.acting_as(people["alice"]), people["camille"], template, hours_before=24
    )
    assert await form_schedules.send_due_forms(now + timedelta(hours=7)) == 1
    asked = await FormAssignment.get(schedule_id=schedule.id)
    moved = await agenda.do_move_appointment(None, first, now + timedelta(days=10))
    await form_schedules.send_due_forms(now + timedelta(hours=8))
    await asked.refresh_from_db()
    assert asked.status is FormStatus.SENT
    await agenda.do_delete_appointment(None, moved)
    await form_schedules.send_due_forms(now + timedelta(hours=9))
    await asked.refresh_from_db()
    assert asked.status is FormStatus.CANCELLED, asked.status


async def test_a_sender_who_may_no_longer_see_the_client_is_not_told_of_the_answers(
    people: dict[str, Any], capture_events: Callable[[], Any]
) -> None:
    """Alice sent the intake, then Camille moved to Bob: Alice may no longer open her file,
    so only Bob hears that the form came back. The front desk, who may not read clinical
    details here, is not told either when it was the sender."""
    from server.actions.client_file import do_assign_therapist

    template = await intake(people)
    by_alice = await forms.do_send_form(
        Caller.acting_as(people["alice"]), people["camille"], template
    )
    by_desk = await forms.do_send_form(
        Caller.acting_as(people["desk"]), people["camille"], template
    )
    await do_assign_therapist(Caller.acting_as(people["owner"]), people["camille"], people["bob"])
    camille = Caller.acting_as(
        (await PortalAccount.get(client_id=people["camille"].id), people["camille"])
    )
    captured = capture_events()
    await forms.do_submit_form(camille, by_alice, full_answers())
    await forms.do_submit_form(camille, by_desk, full_answers())
    assert [e.recipient for e in captured.of_type("form.completed")] == [
        f"s:{people['bob'].id}",
        f"s:{people['bob'].id}",
    ]


async def test_a_refused_send_keeps_the_form_and_schedule_chosen(
    http: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    """A 422 on "Send a form" (every 99 weeks) showed the error, but the form back to the
    first in the list, once, now: the form and the schedule had to be chosen again, and
    nothing said which number was refused."""
    from models.forms import FormSchedule

    await intake(people)
    actor = Caller.acting_as(people["alice"])
    consent = await forms.do_create_form(actor, "Consent", FormPurpose.CONSENT)
    await forms.do_edit_form(actor, consent, add=field(FieldKind.YES_NO, "I agree"))
    cid = people["camille"].id
    await login(http, people["alice"])
    r = await http.post(
        f"/staff/clients/{cid}/forms",
        data={"form_id": str(consent.id), "repeat": "weeks", "every_weeks": "99"},
    )
    assert r.status_code == 422, r.text
    page = r.text.split('id="send-form"', 1)[1]
    assert re.search(rf'<option value="{consent.id}"\s*selected>', page)
    assert re.search(r'name="repeat" value="weeks"\s*checked', page)
    assert not re.search(r'name="repeat" value="once"\s*checked', page)
    assert re.search(r'name="every_weeks"[^>]*value="99"[^>]*><span class="field-error">', page)
    assert not await FormSchedule.exists()
    assert not await FormAssignment.filter(client_id=cid).exists()


async def test_a_refused_new_form_keeps_what_was_typed(
    http: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    """A 422 on "New form" (a name longer than the 200 characters a form's name holds)
    showed the error above an empty form: the name and the kind had to be given again, and
    nothing said it was the name that was refused."""
    from models.forms import FormTemplate

    await login(http, people["alice"])
    name = "Consentement éclairé pour enregistrer les séances " * 5
    r = await http.post("/staff/forms", data={"name": name, "purpose": "consent"})
    assert r.status_code == 422, r.text
    page = r.text.split('action="/staff/forms"', 1)[1]
    assert re.search(
        r'name="name"[^>]*value="' + re.escape(name) + r'"[^>]*><span class="field-error">',
        page,
    )
    assert re.search(r'<option value="consent"\s*selected>', page)
    assert not await FormTemplate.exists()
