"""Tasks on client files: by hand, from a client's message (note prefilled, editable), done
and reopened, the "my tasks" list, and access for every kind of caller."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from models.accounts import Practice, StaffRole, StaffUser
from models.audit import AuditEntry
from models.tasks import Task
from tests.conftest import login
from tests.test_messaging import cast, new_client_conversation, send

__all__ = ["cast"]  # the fixture, re-used


async def client_message(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any], text: str
) -> tuple[httpx.AsyncClient, int, int]:
    """Alice and Hélène talk; returns Alice's client, the conversation and Hélène's message."""
    staff, cid = await new_client_conversation(new_http, cast["alice"], cast["helene"])
    assert (await send(staff, "/api", cid, "Comment allez-vous ?", "s1")).status_code == 200
    portal = new_http("10.2.0.9")
    await login(portal, cast["helene"])
    r = await send(portal, "/portal/api", cid, text, "c1")
    assert r.status_code == 200, r.text
    return staff, cid, r.json()["id"]


async def test_task_from_a_client_message(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    staff, cid, mid = await client_message(new_http, cast, "Pouvez-vous m'envoyer une facture ?")
    # The dialog prefills the note with the message; staff edit it before saving.
    r = await staff.post(
        f"/api/messages/{mid}/task",
        json={"note": "Envoyer la facture de mars", "due_date": "2026-12-01"},
    )
    assert r.status_code == 200, r.text
    task = r.json()
    assert task["client_id"] == cast["helene"].id
    assert task["note"] == "Envoyer la facture de mars"
    assert task["source_message_id"] == mid
    assert task["assignee_id"] == cast["alice"].id  # no assignee given: the author
    assert task["due_date"] == "2026-12-01"
    listed = (await staff.get(f"/api/clients/{cast['helene'].id}/tasks")).json()
    assert [t["id"] for t in listed] == [task["id"]]
    assert await AuditEntry.filter(action="task.created", client_id=cast["helene"].id).exists()


async def test_no_task_from_a_staff_message_or_a_foreign_conversation(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    staff, cid, mid = await client_message(new_http, cast, "Bonjour")
    own = (await staff.get(f"/api/conversations/{cid}")).json()["messages"][0]
    assert own["sender"]["role"] == "staff"
    r = await staff.post(f"/api/messages/{own['id']}/task", json={"note": "x"})
    assert r.status_code == 404
    # Bob is not in the conversation: the message does not exist for him.
    bob = new_http("10.1.0.7")
    await login(bob, cast["bob"])
    assert (await bob.post(f"/api/messages/{mid}/task", json={"note": "x"})).status_code == 404
    assert (await bob.post("/api/messages/999999/task", json={"note": "x"})).status_code == 404
    assert await Task.all().count() == 0


async def test_bad_input_changes_nothing(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    staff, _cid, mid = await client_message(new_http, cast, "Bonjour")
    r = await staff.post(f"/api/messages/{mid}/task", json={"note": "   "})
    assert r.status_code == 422 and "note" in r.json()["error"]["fields"]
    r = await staff.post(f"/api/messages/{mid}/task", json={"note": "ok", "due_date": "soon"})
    assert r.status_code == 422 and "due_date" in r.json()["error"]["fields"]
    # Staff of another practice cannot be assigned: same answer as an unknown id.
    elsewhere = await Practice.create(name="Another practice")
    stranger = await StaffUser.create(
        practice=elsewhere,
        email="stranger@example.org",
        password_hash="x",
        first_name="S",
        last_name="Tranger",
        role=StaffRole.THERAPIST,
    )
    r = await staff.post(
        f"/api/messages/{mid}/task", json={"note": "ok", "assignee_id": stranger.id}
    )
    assert r.status_code == 404
    assert await Task.all().count() == 0


async def test_done_reopen_and_my_tasks(http: httpx.AsyncClient, cast: dict[str, Any]) -> None:
    await login(http, cast["alice"])
    helene, other = cast["helene"], cast["other"]
    later = await http.post(
        f"/api/clients/{helene.id}/tasks", json={"note": "Later", "due_date": "2026-12-20"}
    )
    soon = await http.post(
        f"/api/clients/{other.id}/tasks", json={"note": "Soon", "due_date": "2026-12-02"}
    )
    undated = await http.post(f"/api/clients/{helene.id}/tasks", json={"note": "Whenever"})
    for_desk = await http.post(
        f"/api/clients/{helene.id}/tasks",
        json={"note": "The desk's", "assignee_id": cast["desk"].id},
    )
    assert all(r.status_code == 200 for r in (later, soon, undated, for_desk))
    mine = [t["note"] for t in (await http.get("/api/tasks")).json()]
    assert mine == ["Soon", "Later", "Whenever"]
    r = await http.post(f"/api/tasks/{soon.json()['id']}/done", json={"done": True})
    assert r.status_code == 200 and r.json()["done_at"] is not None
    mine = [t["note"] for t in (await http.get("/api/tasks")).json()]
    assert mine == ["Later", "Whenever", "Soon"]  # done ones go below the open ones
    r = await http.post(f"/api/tasks/{soon.json()['id']}/done", json={"done": False})
    assert r.json()["done_at"] is None
    task = await Task.get(id=soon.json()["id"])
    assert task.done_by_id is None  # type: ignore[attr-defined]


async def test_home_counts_the_same_tasks_as_my_list(
    http: httpx.AsyncClient, cast: dict[str, Any]
) -> None:
    """A client moved to a colleague takes Alice's tasks on their file out of her list; the
    home page counted them still (and so told her that file had work left on it)."""
    from models.clients import Client

    await login(http, cast["alice"])
    helene, other = cast["helene"], cast["other"]
    for client, due in ((helene, "2020-01-06"), (other, "2020-01-07"), (other, None)):
        body = {"note": "Call back", **({"due_date": due} if due else {})}
        assert (await http.post(f"/api/clients/{client.id}/tasks", json=body)).status_code == 200
    home = await http.get("/staff/")
    assert "3 open tasks" in home.text and "2 overdue" in home.text
    await Client.filter(id=other.id).update(therapist_id=cast["bob"].id)
    assert [t["client_id"] for t in (await http.get("/api/tasks")).json()] == [helene.id]
    home = await http.get("/staff/")
    assert "1 open task" in home.text and "1 overdue" in home.text
    assert "3 open tasks" not in home.text and "2 overdue" not in home.text


async def test_access_every_caller(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    alice = new_http("10.1.0.2")
    await login(alice, cast["alice"])
    task = (
        await alice.post(f"/api/clients/{cast['helene'].id}/tasks", json={"note": "Appeler"})
    ).json()
    # Bob's caseload does not include Hélène: her file and its tasks are a 404 for him.
    bob = new_http("10.1.0.3")
    await login(bob, cast["bob"])
    missing = await bob.post("/api/tasks/999999/done", json={"done": True})
    forbidden = await bob.post(f"/api/tasks/{task['id']}/done", json={"done": True})
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.json() == missing.json()
    assert (await bob.get(f"/api/clients/{cast['helene'].id}/tasks")).status_code == 404
    assert (
        await bob.post(f"/api/clients/{cast['helene'].id}/tasks", json={"note": "x"})
    ).status_code == 404
    assert (await bob.get("/api/tasks")).json() == []
    # The front desk sees every file, so every task on it.
    desk = new_http("10.1.0.4")
    await login(desk, cast["desk"])
    assert (
        await desk.post(f"/api/tasks/{task['id']}/done", json={"done": True})
    ).status_code == 200
    # Clients never reach tasks: the staff API refuses a portal session.
    portal = new_http("10.2.0.4")
    await login(portal, cast["helene"])
    assert (await portal.get("/api/tasks")).status_code in (401, 403)
    assert (await portal.get(f"/api/clients/{cast['helene'].id}/tasks")).status_code in (401, 403)


async def test_pages_add_and_complete(http: httpx.AsyncClient, cast: dict[str, Any]) -> None:
    me = await login(http, cast["alice"])
    token = me["csrf_token"]
    helene = cast["helene"]
    r = await http.post(
        f"/staff/clients/{helene.id}/tasks",
        data={
            "note": "Rappeler pour le rendez-vous",
            "assignee_id": "",
            "due_date": "",
            "csrf_token": token,
        },
    )
    assert r.status_code == 303, r.text
    page = await http.get(f"/staff/clients/{helene.id}/tasks")
    assert "Rappeler pour le rendez-vous" in page.text
    task = await Task.get(client_id=helene.id)
    assert task.assignee_id == cast["alice"].id  # type: ignore[attr-defined]
    listing = await http.get("/staff/tasks")
    assert "Rappeler pour le rendez-vous" in listing.text and helene.full_name in listing.text
    r = await http.post(
        f"/staff/tasks/{task.id}/done?back=/staff/tasks", data={"csrf_token": token}
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/tasks"
    await task.refresh_from_db()
    assert task.done_at is not None
    # Nowhere else to go back to: an outside address falls back to the client file.
    r = await http.post(
        f"/staff/tasks/{task.id}/reopen?back=https://evil.example", data={"csrf_token": token}
    )
    assert r.headers["location"] == f"/staff/clients/{helene.id}/tasks"
    r = await http.post(f"/staff/tasks/{task.id}/finish", data={"csrf_token": token})
    assert r.status_code == 404
    empty = await http.post(
        f"/staff/clients/{helene.id}/tasks", data={"note": " ", "csrf_token": token}
    )
    assert empty.status_code == 422 and "Write what to do." in empty.text


@pytest.mark.parametrize("path", ["/staff/tasks"])
async def test_pages_need_sign_in(http: httpx.AsyncClient, path: str) -> None:
    r = await http.get(path)
    assert r.status_code in (302, 303)


# --- open tasks follow the file when their assignee stops seeing it ---------------------------


async def _listed_by(
    new_http: Callable[..., httpx.AsyncClient], people: list[StaffUser], task_id: int
) -> list[str]:
    """Whose "My tasks" shows the task (each signed in anew: access is read afresh)."""
    listed = []
    for n, who in enumerate(people):
        h = new_http(f"10.7.0.{n + 1}")
        await login(h, who)
        if task_id in [t["id"] for t in (await h.get("/api/tasks")).json()]:
            listed.append(who.first_name)
    return listed


async def test_a_role_change_hands_over_tasks_on_files_no_longer_seen(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    """The front desk, who sees every file, has a task on Hélène's; the owner makes it a
    therapist with an empty caseload. The task goes to Hélène's therapist."""
    desk = new_http("10.7.1.1")
    await login(desk, cast["desk"])
    r = await desk.post(f"/api/clients/{cast['helene'].id}/tasks", json={"note": "Send invoice"})
    task_id = r.json()["id"]
    owner = new_http("10.7.1.2")
    await login(owner, cast["owner"])
    r = await owner.put(
        f"/api/staff/{cast['desk'].id}",
        json={"role": "therapist", "supervisor_id": None, "portal_enabled": False},
    )
    assert r.status_code == 200, r.text
    assert (await Task.get(id=task_id)).assignee_id == cast["alice"].id  # type: ignore[attr-defined]
    people = [cast["desk"], cast["alice"], cast["owner"]]
    assert await _listed_by(new_http, people, task_id) == ["Alice"]
    entry = await AuditEntry.get(action="task.reassigned", object_id=str(task_id))
    assert entry.detail == {"from": cast["desk"].id, "to": cast["alice"].id}


async def test_a_supervisor_change_hands_over_the_old_supervisors_tasks(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any], make: Any
) -> None:
    """Sam supervises Alice and takes a task on Hélène's file; Alice gets another supervisor
    and Sam no longer sees Hélène: the task goes to Alice. His task on a file he still sees
    (a client of his own) stays his."""
    sam = await make.therapist(first_name="Sam")
    tom = await make.therapist(first_name="Tom")
    alice = cast["alice"]
    alice.supervisor = sam
    await alice.save(update_fields=["supervisor_id"])
    own = await make.client(sam, first_name="Own")
    h = new_http("10.7.2.1")
    await login(h, sam)
    r = await h.post(f"/api/clients/{cast['helene'].id}/tasks", json={"note": "Review"})
    task_id = r.json()["id"]
    kept = (await h.post(f"/api/clients/{own.id}/tasks", json={"note": "Mine"})).json()["id"]
    owner = new_http("10.7.2.2")
    await login(owner, cast["owner"])
    r = await owner.put(
        f"/api/staff/{alice.id}",
        json={"role": "therapist", "supervisor_id": tom.id, "portal_enabled": True},
    )
    assert r.status_code == 200, r.text
    assert await _listed_by(new_http, [sam, tom, alice], task_id) == ["Alice"]
    assert (await Task.get(id=kept)).assignee_id == sam.id  # type: ignore[attr-defined]


async def test_a_client_left_with_no_therapist_keeps_their_tasks_in_a_list(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any], make: Any
) -> None:
    """The desk sets Hélène's therapist to none: Alice's open task on her file, and Alice's
    supervisor's, go to the owner (a clinician: a safety alert's task asks for one), not to
    the desk that made the change. A task already done stays where it was."""
    sam = await make.therapist(first_name="Sam")
    alice = cast["alice"]
    alice.supervisor = sam
    await alice.save(update_fields=["supervisor_id"])
    ids = []
    for n, who in enumerate((alice, sam)):
        h = new_http(f"10.7.3.{n + 1}")
        await login(h, who)
        r = await h.post(f"/api/clients/{cast['helene'].id}/tasks", json={"note": "Urgent call"})
        ids.append(r.json()["id"])
    done = await Task.create(
        practice_id=alice.practice_id,  # type: ignore[attr-defined]
        client=cast["helene"],
        note="Called",
        assignee=alice,
        created_by=alice,
    )
    done.done_at = done.created_at
    await done.save(update_fields=["done_at"])
    desk = new_http("10.7.3.9")
    await login(desk, cast["desk"])
    r = await desk.put(f"/api/clients/{cast['helene'].id}/therapist", json={"therapist_id": None})
    assert r.status_code == 200, r.text
    for task_id in ids:
        people = [alice, sam, cast["desk"], cast["owner"]]
        assert await _listed_by(new_http, people, task_id) == [cast["owner"].first_name]
    assert (await Task.get(id=done.id)).assignee_id == alice.id  # type: ignore[attr-defined]


async def test_a_client_handed_to_a_supervisee_leaves_the_supervisors_tasks_alone(
    cast: dict[str, Any], make: Any
) -> None:
    """Alice hands Hélène to Bob, whom she supervises: both still see the file, so Bob's
    task on it stays his and nothing is handed over."""
    from server.actions.client_file import do_assign_therapist
    from server.actions.tasks import hand_over_unseen_tasks
    from server.auth.sessions import Caller

    alice, bob = cast["alice"], cast["bob"]
    bob.supervisor = alice
    await bob.save(update_fields=["supervisor_id"])
    task = await Task.create(
        practice_id=alice.practice_id,  # type: ignore[attr-defined]
        client=cast["helene"],
        note="Follow up",
        assignee=bob,
        created_by=alice,
    )
    await do_assign_therapist(Caller.acting_as(cast["owner"]), cast["helene"], bob)
    assert (await Task.get(id=task.id)).assignee_id == bob.id  # type: ignore[attr-defined]
    assert await hand_over_unseen_tasks(Caller.acting_as(cast["owner"]), [alice.id, bob.id]) == 0


# --- a task is only for someone who may open the file ------------------------------------------


async def test_a_task_is_refused_for_a_colleague_who_may_not_open_the_file(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any], make: Any
) -> None:
    """Bob may not open Hélène's file: "My tasks" would never show him a task on it, so a
    task for him is refused on the field, by hand and from her message. Alice's supervisor,
    the owner and the front desk may be given one."""
    staff, _cid, mid = await client_message(new_http, cast, "Rappelez-moi")
    helene, bob = cast["helene"], cast["bob"]
    for url in (f"/api/clients/{helene.id}/tasks", f"/api/messages/{mid}/task"):
        r = await staff.post(url, json={"note": "Call back", "assignee_id": bob.id})
        assert r.status_code == 422, r.text
        assert "assignee_id" in r.json()["error"]["fields"]
    assert await Task.all().count() == 0
    sam = await make.therapist(first_name="Sam")
    cast["alice"].supervisor = sam
    await cast["alice"].save(update_fields=["supervisor_id"])
    for who in (sam, cast["owner"], cast["desk"]):
        r = await staff.post(
            f"/api/clients/{helene.id}/tasks", json={"note": "Call back", "assignee_id": who.id}
        )
        assert r.status_code == 200, r.text
    # The file's form refuses it the same way, with the form shown again.
    page = await staff.post(
        f"/staff/clients/{helene.id}/tasks", data={"note": "Call back", "assignee_id": str(bob.id)}
    )
    assert page.status_code == 422 and "may not open this client" in page.text
    assert await Task.filter(assignee_id=bob.id).count() == 0


async def test_the_assignee_lists_offer_only_who_may_open_the_file(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    staff, _cid, mid = await client_message(new_http, cast, "Rappelez-moi")
    helene, bob = cast["helene"], cast["bob"]
    page = (await staff.get(f"/staff/clients/{helene.id}/tasks")).text
    for who in (cast["alice"], cast["owner"], cast["desk"]):
        assert page.count(f'<option value="{who.id}"') == 1
    assert f'<option value="{bob.id}"' not in page
    # The messaging page's task dialog: the writer's file decides; without a message, the
    # list to add someone to a conversation is still everyone.
    offered = (await staff.get("/api/messaging/staff", params={"message_id": mid})).json()
    assert {u["id"] for u in offered} == {cast["alice"].id, cast["owner"].id, cast["desk"].id}
    everyone = (await staff.get("/api/messaging/staff")).json()
    assert bob.id in {u["id"] for u in everyone}
    # A message the caller cannot reach is a 404, like any id.
    other = new_http("10.1.0.8")
    await login(other, bob)
    r = await other.get("/api/messaging/staff", params={"message_id": mid})
    assert r.status_code == 404
    r = await other.get("/api/messaging/staff", params={"message_id": "x"})
    assert r.status_code == 404


async def test_a_refused_task_keeps_what_was_typed(
    http: httpx.AsyncClient, cast: dict[str, Any]
) -> None:
    """A due date mistyped (a six-digit year, which a date field lets through) was refused
    with the form shown again empty: the task's text, often long, was lost."""
    helene, desk = cast["helene"], cast["desk"]
    await login(http, cast["alice"])
    form = {
        "note": "Rappeler la mutuelle au sujet du remboursement de mars.",
        "assignee_id": str(desk.id),
        "due_date": "20266-12-01",
    }
    r = await http.post(f"/staff/clients/{helene.id}/tasks", data=form)
    assert r.status_code == 422, r.text
    page = r.text
    assert f">{form['note']}</textarea>" in page
    assert f'<option value="{desk.id}" selected>' in page
    assert re.search(r'name="due_date" value="20266-12-01"><span class="field-error">', page)
    assert await Task.all().count() == 0
