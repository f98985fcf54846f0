"""Secure messaging through the API: every rule of the conversation and message lifecycle,
and access for every kind of caller."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from models.accounts import PortalAccount, StaffUser
from models.clients import Client, Relationship
from models.messaging import Message
from models.notifications import OutboxMessage
from server import jobs
from server.actions import reminder_jobs  # noqa: F401 - registers the notice's handler
from server.actions.circle import do_unlink_clients
from server.actions.clients import do_link_clients
from server.queries.messaging import presence_audience
from tests.conftest import IS_POSTGRES, Factory, login
from tests.test_messaging_batch import fail_pg_send_at_the_end


@pytest.fixture
async def cast(make: Factory) -> dict[str, Any]:
    """A small practice: an owner, two therapists, an office admin, two clients of Alice."""
    owner = await make.owner()
    alice = await make.therapist(first_name="Alice")
    bob = await make.therapist(first_name="Bob")
    desk = await make.office_admin(portal_enabled=False)
    helene = await make.client(alice, first_name="Hélène", last_name="Dubois")
    other = await make.client(alice, first_name="Other", last_name="Client")
    bobs = await make.client(bob, first_name="Bobs", last_name="Client")
    return {
        "owner": owner,
        "alice": alice,
        "bob": bob,
        "desk": desk,
        "helene": helene,
        "other": other,
        "bobs": bobs,
    }


async def start(http: httpx.AsyncClient, who: Any, **body: Any) -> httpx.Response:
    await login(http, who)
    return await http.post("/api/conversations", json=body)


async def new_client_conversation(
    new_http: Callable[..., httpx.AsyncClient], therapist: StaffUser, client: Client, **extra: Any
) -> tuple[httpx.AsyncClient, int]:
    staff_http = new_http("10.1.0.1")
    r = await start(
        staff_http, therapist, kind="client", subject="Next steps", client_id=client.id, **extra
    )
    assert r.status_code == 200, r.text
    return staff_http, r.json()["id"]


async def send(
    http: httpx.AsyncClient, prefix: str, cid: int, body: str, uid: str
) -> httpx.Response:
    return await http.post(
        f"{prefix}/conversations/{cid}/messages", json={"body": body, "client_uid": uid}
    )


async def test_client_and_therapist_talk(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    staff, cid = await new_client_conversation(new_http, cast["alice"], cast["helene"])
    assert (await send(staff, "/api", cid, "Bonjour Hélène", "u1")).status_code == 200
    portal = new_http("10.2.0.1")
    await login(portal, cast["helene"])
    listing = (await portal.get("/portal/api/conversations")).json()
    assert [c["id"] for c in listing["conversations"]] == [cid]
    assert listing["unread_total"] == 1
    thread = (await portal.get(f"/portal/api/conversations/{cid}")).json()
    assert [m["body"] for m in thread["messages"]] == ["Bonjour Hélène"]
    assert (await portal.post(f"/portal/api/conversations/{cid}/read", json={})).status_code == 200
    assert (await portal.get("/portal/api/conversations")).json()["unread_total"] == 0
    # The sender sees it read, by whom and when.
    mine = (await staff.get(f"/api/conversations/{cid}")).json()["messages"][0]
    assert [r["name"] for r in mine["reads"]] == ["Hélène Dubois"]
    r = await send(portal, "/portal/api", cid, "Merci !", "p1")
    assert r.status_code == 200
    waiting = (await staff.get("/api/conversations?waiting=1")).json()["conversations"]
    assert [c["id"] for c in waiting] == [cid]


async def test_subject_required_and_group_name_beyond_two(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    http = new_http()
    r = await start(http, cast["alice"], kind="client", subject="  ", client_id=cast["helene"].id)
    assert r.status_code == 422 and "subject" in r.json()["error"]["fields"]
    r = await http.post(
        "/api/conversations",
        json={
            "kind": "client",
            "subject": "S",
            "client_id": cast["helene"].id,
            "staff_ids": [cast["bob"].id],
        },
    )
    assert r.status_code == 422 and "group_name" in r.json()["error"]["fields"]
    r = await http.post(
        "/api/conversations",
        json={
            "kind": "client",
            "subject": "S",
            "group_name": "Team",
            "client_id": cast["helene"].id,
            "staff_ids": [cast["bob"].id],
        },
    )
    assert r.status_code == 200


async def test_client_without_portal_account_cannot_be_added(
    new_http: Callable[..., httpx.AsyncClient], make: Factory, cast: dict[str, Any]
) -> None:
    no_portal = await make.client(cast["alice"], portal=False, first_name="Nope")
    http = new_http()
    r = await start(http, cast["alice"], kind="client", subject="S", client_id=no_portal.id)
    assert r.status_code == 422 and "client_id" in r.json()["error"]["fields"]
    picker = (await http.get("/api/messaging/clients?q=Nope")).json()
    assert picker == [
        {
            "id": no_portal.id,
            "name": "Nope Number" + picker[0]["name"].split("Number")[1],
            "has_portal": False,
            "links": [],
        }
    ]


async def test_therapist_must_be_allowed_on_portal(
    new_http: Callable[..., httpx.AsyncClient], make: Factory, cast: dict[str, Any]
) -> None:
    offline = await make.therapist(portal_enabled=False)
    client = await make.client(offline)
    r = await start(new_http(), offline, kind="client", subject="S", client_id=client.id)
    assert r.status_code == 422 and "staff_ids" in r.json()["error"]["fields"]


async def test_office_presets_and_no_clients(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    http = new_http()
    r = await start(
        http, cast["desk"], kind="office", subject="Rota", group_name="All", preset="all_therapists"
    )
    assert r.status_code == 200
    thread = (await http.get(f"/api/conversations/{r.json()['id']}")).json()
    assert {p["staff_id"] for p in thread["participants"]} == {
        cast["desk"].id,
        cast["alice"].id,
        cast["bob"].id,
    }
    assert thread["counts"] == {"staff": 3, "clients": 0, "linked": 0}
    r = await http.post(
        "/api/conversations",
        json={
            "kind": "office",
            "subject": "x",
            "client_id": cast["helene"].id,
            "staff_ids": [cast["bob"].id],
        },
    )
    assert r.status_code in {404, 422}


async def test_participants_added_never_removed_and_see_history(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    staff, cid = await new_client_conversation(new_http, cast["alice"], cast["helene"])
    await send(staff, "/api", cid, "before Bob", "a1")
    r = await staff.post(
        f"/api/conversations/{cid}/participants", json={"staff_ids": [cast["bob"].id]}
    )
    assert r.status_code == 422 and "group_name" in r.json()["error"]["fields"]
    r = await staff.post(
        f"/api/conversations/{cid}/participants",
        json={"staff_ids": [cast["bob"].id], "group_name": "Care team"},
    )
    assert r.status_code == 200
    bob = new_http("10.1.0.9")
    await login(bob, cast["bob"])
    history = (await bob.get(f"/api/conversations/{cid}")).json()["messages"]
    assert [m["body"] for m in history] == ["before Bob"]
    # There is no way to remove anyone: no such route.
    r = await staff.delete(f"/api/conversations/{cid}/participants")
    assert r.status_code == 405


async def test_linked_accounts_join_client_conversations(
    new_http: Callable[..., httpx.AsyncClient], make: Factory, cast: dict[str, Any]
) -> None:
    parent = await make.client(cast["alice"], first_name="Parent")
    await do_link_clients(None, cast["helene"], parent, Relationship.CHILD)
    staff, cid = await new_client_conversation(
        new_http, cast["alice"], cast["helene"], linked_client_ids=[parent.id], group_name="Family"
    )
    thread = (await staff.get(f"/api/conversations/{cid}")).json()
    assert thread["counts"] == {"staff": 1, "clients": 1, "linked": 1}
    # Someone not linked to this client cannot be slipped in.
    r = await staff.post(
        f"/api/conversations/{cid}/participants", json={"linked_client_ids": [cast["other"].id]}
    )
    assert r.status_code == 404


async def test_an_unlinked_account_leaves_the_clients_conversations(
    new_http: Callable[..., httpx.AsyncClient],
    make: Factory,
    cast: dict[str, Any],
    capture_events: Callable[[], Any],
) -> None:
    """A parent unlinked from a child's file (a custody change) kept reading every message of
    the child's conversations, and being told of them. Now they leave those conversations:
    no events, no access, no notice; their earlier messages keep their name; linking and
    adding them again brings them back."""
    parent = await make.client(cast["alice"], first_name="Parent")
    await do_link_clients(None, cast["helene"], parent, Relationship.CHILD)
    staff, cid = await new_client_conversation(
        new_http, cast["alice"], cast["helene"], linked_client_ids=[parent.id], group_name="Family"
    )
    portal = new_http("10.2.0.7")
    await login(portal, parent)
    assert (await send(portal, "/portal/api", cid, "From the parent", "p1")).status_code == 200
    account = await PortalAccount.get(client_id=parent.id)
    told = capture_events()
    await do_unlink_clients(None, cast["helene"], parent)
    leaver = f"c:{account.id}"
    (left,) = [e for e in told.of_type("conversation.participant_left") if e.recipient == leaver]
    assert left.payload["conversation_id"] == cid and left.payload["participant"]["left"] is True
    assert f"s:{cast['alice'].id}" in told.recipients("conversation.participant_left")
    captured = capture_events()
    assert (await send(staff, "/api", cid, "After the unlinking", "s9")).status_code == 200
    assert f"c:{account.id}" not in captured.recipients("message.created")
    assert captured.recipients("message.created")  # the others still hear it
    assert (await portal.get(f"/portal/api/conversations/{cid}")).status_code == 404
    assert (await send(portal, "/portal/api", cid, "Still here?", "p2")).status_code == 404
    # Nor when the therapist comes online: that dot is in a list they no longer see.
    assert leaver not in await presence_audience(f"s:{cast['alice'].id}")
    listed = (await portal.get("/portal/api/conversations")).json()
    assert cid not in [c["id"] for c in listed["conversations"]] and listed["unread_total"] == 0
    # No "a message is waiting" email either, whenever the notices fall due.
    await jobs.run_due(now=datetime.now(UTC) + timedelta(days=1))
    assert not await OutboxMessage.filter(to=account.email).exists()
    thread = (await staff.get(f"/api/conversations/{cid}")).json()
    bodies = [m["body"] for m in thread["messages"]]
    assert "From the parent" in bodies
    names = {p["name"]: p["left"] for p in thread["participants"]}
    assert names[f"Parent {parent.last_name}"] is True
    # Linked and added again: back in, with the history.
    await do_link_clients(None, cast["helene"], parent, Relationship.CHILD)
    r = await staff.post(
        f"/api/conversations/{cid}/participants", json={"linked_client_ids": [parent.id]}
    )
    assert r.status_code == 200, r.text
    assert (await portal.get(f"/portal/api/conversations/{cid}")).status_code == 200


async def test_a_new_conversation_sent_twice_is_started_once(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    """The dialog resubmitted after a lost answer made a second conversation, and the client
    read the first message twice."""
    http = new_http("10.2.0.12")
    await login(http, cast["alice"])
    body = {
        "kind": "client",
        "subject": "Your next session",
        "client_id": cast["helene"].id,
        "body": "Shall we move Thursday?",
        "client_uid": "dialog-1",
    }
    first = await http.post("/api/conversations", json=body)
    again = await http.post("/api/conversations", json=body)
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert await Message.filter(body="Shall we move Thursday?").count() == 1
    other = await http.post("/api/conversations", json={**body, "client_uid": "dialog-2"})
    assert other.json()["id"] != first.json()["id"]  # a new dialog starts a new one


async def test_idempotent_send(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    staff, cid = await new_client_conversation(new_http, cast["alice"], cast["helene"])
    first = await send(staff, "/api", cid, "once", "same-uid")
    again = await send(staff, "/api", cid, "once", "same-uid")
    assert first.json()["id"] == again.json()["id"] and again.json()["created"] is False
    responses = await asyncio.gather(
        *[send(staff, "/api", cid, "race", "race-uid") for _ in range(3)]
    )
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1 and all(r.status_code == 200 for r in responses)
    assert await Message.filter(conversation_id=cid).count() == 2


async def test_delete_only_while_unread(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    staff, cid = await new_client_conversation(new_http, cast["alice"], cast["helene"])
    m1 = (await send(staff, "/api", cid, "oops", "d1")).json()["id"]
    m2 = (await send(staff, "/api", cid, "keep", "d2")).json()["id"]
    assert (await staff.delete(f"/api/messages/{m1}")).status_code == 200
    portal = new_http("10.2.0.2")
    await login(portal, cast["helene"])
    bodies = [
        m["body"] for m in (await portal.get(f"/portal/api/conversations/{cid}")).json()["messages"]
    ]
    assert bodies == ["keep"]
    await portal.post(f"/portal/api/conversations/{cid}/read", json={})
    r = await staff.delete(f"/api/messages/{m2}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert (await Message.get(id=m2)).deleted_at is None
    # Only the sender may delete: the client cannot delete the therapist's message.
    m3 = (await send(staff, "/api", cid, "mine", "d3")).json()["id"]
    assert (await portal.delete(f"/portal/api/messages/{m3}")).status_code == 409


async def test_search_by_client_subject_and_text(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    staff, cid = await new_client_conversation(new_http, cast["alice"], cast["helene"])
    await send(staff, "/api", cid, "about the insomnia diary", "s1")
    for q, found in [("Dubois", True), ("next steps", True), ("insomnia", True), ("zebra", False)]:
        got = [
            c["id"] for c in (await staff.get(f"/api/conversations?q={q}")).json()["conversations"]
        ]
        assert (got == [cid]) is found, q
    # Found in its messages, a conversation names the newest that matched: the page opens it
    # there. Found by its client or subject only, none.
    later = (await send(staff, "/api", cid, "the diary again: insomnia", "s2")).json()["id"]
    await send(staff, "/api", cid, "see you Tuesday", "s3")
    (found,) = (await staff.get("/api/conversations?q=insomnia")).json()["conversations"]
    assert found["match_id"] == later
    (found,) = (await staff.get("/api/conversations?q=Dubois")).json()["conversations"]
    assert found["match_id"] is None


async def test_access_every_caller(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    staff, cid = await new_client_conversation(new_http, cast["alice"], cast["helene"])
    mid = (await send(staff, "/api", cid, "private", "x1")).json()["id"]
    missing = 999_999
    outsiders: list[tuple[Any, str]] = [
        (cast["owner"], "/api"),
        (cast["bob"], "/api"),
        (cast["desk"], "/api"),
        (cast["other"], "/portal/api"),
        (cast["bobs"], "/portal/api"),
    ]
    for i, (who, prefix) in enumerate(outsiders):
        http = new_http(f"10.3.0.{i}")
        await login(http, who)
        listing = (await http.get(f"{prefix}/conversations")).json()
        assert listing["conversations"] == []
        for target in (cid, missing):
            assert (await http.get(f"{prefix}/conversations/{target}")).status_code == 404
            assert (await send(http, prefix, target, "intrusion", f"i{target}")).status_code == 404
            assert (
                await http.post(f"{prefix}/conversations/{target}/read", json={})
            ).status_code == 404
            assert (await http.post(f"{prefix}/conversations/{target}/typing")).status_code == 404
        for target in (mid, missing):
            assert (await http.delete(f"{prefix}/messages/{target}")).status_code == 404
        # Forbidden and missing ids get the very same answer, body included.
        seen = (await http.get(f"{prefix}/conversations/{cid}")).json()
        assert seen == (await http.get(f"{prefix}/conversations/{missing}")).json()
        if prefix == "/api":
            for target in (cid, missing):
                r = await http.post(
                    f"/api/conversations/{target}/participants",
                    json={"staff_ids": [who.id], "group_name": "Sneaking in"},
                )
                assert r.status_code == 404
                assert (
                    await http.post(f"/api/messages/{mid}/task", json={"note": "x"})
                ).status_code == 404
    nobody = new_http("10.4.0.1")
    assert (await nobody.get("/api/conversations")).status_code == 401
    assert (await nobody.get(f"/portal/api/conversations/{cid}")).status_code == 401
    # A client cannot reach the staff API at all, even for their own conversation.
    portal = new_http("10.2.0.3")
    await login(portal, cast["helene"])
    assert (await portal.get(f"/api/conversations/{cid}")).status_code == 401
    assert await Message.filter(conversation_id=cid).count() == 1


async def test_events_go_to_participants_only(
    new_http: Callable[..., httpx.AsyncClient],
    cast: dict[str, Any],
    capture_events: Callable[..., Any],
) -> None:
    captured = capture_events()
    staff, cid = await new_client_conversation(new_http, cast["alice"], cast["helene"])
    await send(staff, "/api", cid, "hello", "e1")
    account = await PortalAccount.get(client_id=cast["helene"].id)
    expected = {f"s:{cast['alice'].id}", f"c:{account.id}"}
    assert captured.recipients("conversation.created") == expected
    assert captured.recipients("message.created") == expected
    created = captured.of_type("message.created")
    assert all(e.payload["body"] == "hello" for e in created) and len(created) == 2


async def test_rolled_back_send_publishes_nothing(
    new_http: Callable[..., httpx.AsyncClient],
    cast: dict[str, Any],
    capture_events: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server.actions import reminders

    staff, cid = await new_client_conversation(new_http, cast["alice"], cast["helene"])
    captured = capture_events()

    async def boom(*a: Any, **k: Any) -> None:
        raise RuntimeError("disk full")

    # The last write of the send fails, after the message and its events: on SQLite the
    # transaction's last statement, on PostgreSQL the one statement's last row.
    if IS_POSTGRES:
        fail_pg_send_at_the_end(monkeypatch)
    else:
        monkeypatch.setattr(reminders, "on_messages_sent", boom)
    with pytest.raises(Exception, match="disk full|division by zero"):
        await send(staff, "/api", cid, "lost", "rb1")
    monkeypatch.undo()
    assert captured.events == []
    assert await Message.filter(client_uid="rb1").count() == 0


class FakeSocket:
    """A local socket as the hub sees it, recording what it is offered."""

    def __init__(self, recipient: str) -> None:
        self.recipient, self.session_id = recipient, "fake"
        self.ephemeral: list[dict[str, Any]] = []

    def offer(self, seq: int, event: Any) -> None:
        pass

    def offer_ephemeral(self, payload: dict[str, Any]) -> None:
        self.ephemeral.append(payload)

    def resync(self) -> None:
        pass

    def kick(self, code: int, reason: str) -> None:
        pass


async def test_presence_pushed_to_people_who_share_a_conversation(
    new_http: Callable[..., httpx.AsyncClient],
    cast: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from realtime import hub as hub_module
    from realtime.hub import hub

    monkeypatch.setattr(hub_module, "PRESENCE_GRACE", 0.05)
    _staff, cid = await new_client_conversation(new_http, cast["alice"], cast["helene"])
    account = await PortalAccount.get(client_id=cast["helene"].id)
    client_tab, bob_tab = FakeSocket(f"c:{account.id}"), FakeSocket(f"s:{cast['bob'].id}")
    alice_tab = FakeSocket(f"s:{cast['alice'].id}")
    hub.register(client_tab)
    hub.register(bob_tab)
    try:
        hub.register(alice_tab)
        await asyncio.sleep(0.2)
        came = {"type": "presence", "data": {"staff_id": cast["alice"].id, "online": True}}
        assert came in client_tab.ephemeral
        # Bob shares no conversation with Alice: her comings and goings are none of his.
        assert bob_tab.ephemeral == []
        # The thread shows her online, then offline once her last tab is gone.
        portal = new_http("10.2.0.8")
        await login(portal, cast["helene"])
        thread = (await portal.get(f"/portal/api/conversations/{cid}")).json()
        assert [p["online"] for p in thread["participants"] if p["role"] == "staff"] == [True]
        hub.unregister(alice_tab)
        await asyncio.sleep(0.3)
        left = {"type": "presence", "data": {"staff_id": cast["alice"].id, "online": False}}
        assert client_tab.ephemeral[-1] == left
        thread = (await portal.get(f"/portal/api/conversations/{cid}")).json()
        assert [p["online"] for p in thread["participants"] if p["role"] == "staff"] == [False]
    finally:
        hub.unregister(client_tab)
        hub.unregister(bob_tab)


async def test_deleted_text_is_not_replayed_to_resuming_tabs(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    from models.realtime import RealtimeEvent

    staff, cid = await new_client_conversation(new_http, cast["alice"], cast["helene"])
    mid = (await send(staff, "/api", cid, "sent to the wrong person", "w1")).json()["id"]
    assert (await staff.delete(f"/api/messages/{mid}")).status_code == 200
    stored = await RealtimeEvent.filter(type="message.created")
    mine = [e for e in stored if e.payload.get("id") == mid]
    assert len(mine) == 2  # Alice's tabs and Hélène's
    assert all(e.payload["body"] == "" and e.payload["deleted"] for e in mine)
    assert "wrong person" not in str([e.payload for e in stored])


async def test_a_client_writes_first_to_their_therapist(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    """The portal says "write to your therapist": a client with no conversation yet starts
    one. It goes to their therapist only, waits for a staff reply, and a retry of the same
    dialog (a lost answer) starts nothing more."""
    portal = new_http("10.2.1.1")
    await login(portal, cast["helene"])
    page = await portal.get("/portal/messages")
    assert 'id="new-message"' in page.text and "Alice" in page.text
    body = {"subject": "Thursday", "body": "Can we talk about Thursday?", "client_uid": "w-1"}
    r = await portal.post("/portal/api/conversations", json=body)
    assert r.status_code == 200, r.text
    cid = r.json()["id"]
    again = await portal.post("/portal/api/conversations", json=body)
    assert again.status_code == 200 and again.json()["id"] == cid
    assert await Message.filter(body="Can we talk about Thursday?").count() == 1
    thread = (await portal.get(f"/portal/api/conversations/{cid}")).json()
    assert sorted(p["name"] for p in thread["participants"]) == [
        cast["alice"].full_name,
        "Hélène Dubois",
    ]
    alice = new_http("10.2.1.2")
    await login(alice, cast["alice"])
    waiting = (await alice.get("/api/conversations?waiting=1")).json()["conversations"]
    assert [c["id"] for c in waiting] == [cid] and waiting[0]["unread"] == 1
    assert (await send(alice, "/api", cid, "Of course.", "a-1")).status_code == 200
    # Nobody else was added: another therapist, the owner and another client see nothing.
    for who, ip in ((cast["bob"], "10.2.1.3"), (cast["owner"], "10.2.1.4")):
        other = new_http(ip)
        await login(other, who)
        assert (await other.get(f"/api/conversations/{cid}")).status_code == 404
    stranger = new_http("10.2.1.5")
    await login(stranger, cast["other"])
    assert (await stranger.get(f"/portal/api/conversations/{cid}")).status_code == 404


async def test_what_a_client_writes_first_needs_and_where_it_goes(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any], make: Factory
) -> None:
    portal = new_http("10.2.2.1")
    await login(portal, cast["helene"])
    url = "/portal/api/conversations"
    r = await portal.post(url, json={"subject": " ", "body": "Hello", "client_uid": "e-1"})
    assert r.status_code == 422 and "subject" in r.json()["error"]["fields"]
    r = await portal.post(url, json={"subject": "Hi", "body": "  ", "client_uid": "e-2"})
    assert r.status_code == 422 and "body" in r.json()["error"]["fields"]
    # A therapist kept off the portal: the practice's owners hear it instead.
    await StaffUser.filter(id=cast["alice"].id).update(portal_enabled=False)
    r = await portal.post(url, json={"subject": "Hi", "body": "Anyone?", "client_uid": "e-3"})
    assert r.status_code == 200
    thread = (await portal.get(f"{url}/{r.json()['id']}")).json()
    staff = [p["name"] for p in thread["participants"] if p["role"] == "staff"]
    assert staff == [cast["owner"].full_name]
    # Nobody who may: a clear 409, nothing started, and no button on the page.
    await StaffUser.filter(id=cast["owner"].id).update(portal_enabled=False)
    before = await Message.all().count()
    r = await portal.post(url, json={"subject": "Hi", "body": "Anyone?", "client_uid": "e-4"})
    assert r.status_code == 409 and "cannot receive secure messages" in r.json()["error"]["message"]
    assert await Message.all().count() == before
    assert 'id="new-message"' not in (await portal.get("/portal/messages")).text
    # Staff do not start conversations through the portal's API.
    staff_http = new_http("10.2.2.2")
    await login(staff_http, cast["alice"])
    r = await staff_http.post(url, json={"subject": "Hi", "body": "x", "client_uid": "e-5"})
    assert r.status_code == 401


async def test_a_client_handed_over_takes_their_conversations_to_the_new_therapist(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any], capture_events: Any
) -> None:
    """The desk handed Hélène from Alice to Bob: Alice could no longer open the file, yet
    Hélène's next message ("mes idées noires reviennent") went to Alice's thread and badge,
    and Bob, now responsible for her, was never told."""
    alice, cid = await new_client_conversation(new_http, cast["alice"], cast["helene"])
    assert (await send(alice, "/api", cid, "Comment allez-vous ?", "a1")).status_code == 200
    desk = new_http("10.1.0.4")
    await login(desk, cast["desk"])
    captured = capture_events()
    r = await desk.put(
        f"/api/clients/{cast['helene'].id}/therapist", json={"therapist_id": cast["bob"].id}
    )
    assert r.status_code == 200, r.text
    left = captured.of_type("conversation.participant_left")
    assert f"s:{cast['alice'].id}" in {e.recipient for e in left}
    portal = new_http("10.2.0.1")
    await login(portal, cast["helene"])
    r = await send(portal, "/portal/api", cid, "Mes idées noires reviennent", "c1")
    assert r.status_code == 200, r.text
    bob = new_http("10.1.0.3")
    await login(bob, cast["bob"])
    bobs = (await bob.get("/api/conversations")).json()
    assert cid in [c["id"] for c in bobs["conversations"]]
    # Bob reads the history too, as anyone added does.
    thread = (await bob.get(f"/api/conversations/{cid}")).json()
    assert [m["body"] for m in thread["messages"]] == [
        "Comment allez-vous ?",
        "Mes idées noires reviennent",
    ]
    alices = (await alice.get("/api/conversations")).json()
    assert cid not in [c["id"] for c in alices["conversations"]]
    assert (await alice.get(f"/api/conversations/{cid}")).status_code == 404
    # Handed back, Alice is in again.
    r = await desk.put(
        f"/api/clients/{cast['helene'].id}/therapist", json={"therapist_id": cast["alice"].id}
    )
    assert r.status_code == 200
    assert (await alice.get(f"/api/conversations/{cid}")).status_code == 200


async def test_a_client_left_with_no_therapist_is_heard_by_the_owners(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    alice, cid = await new_client_conversation(new_http, cast["alice"], cast["helene"])
    desk = new_http("10.1.0.4")
    await login(desk, cast["desk"])
    r = await desk.put(f"/api/clients/{cast['helene'].id}/therapist", json={"therapist_id": None})
    assert r.status_code == 200, r.text
    owner = new_http("10.1.0.5")
    await login(owner, cast["owner"])
    assert (await owner.get(f"/api/conversations/{cid}")).status_code == 200
    assert (await alice.get(f"/api/conversations/{cid}")).status_code == 404


async def test_the_new_conversation_picker_finds_names_as_the_client_list_does(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    """The picker matched the whole query against the first or the last name, accents
    included: "helene" and "Hélène Dubois" found nobody, though the client list finds both."""
    alice = new_http("10.1.0.2")
    await login(alice, cast["alice"])
    for q in ("helene", "Hélène Dubois", "dubois helene", "DUB"):
        found = (await alice.get("/api/messaging/clients", params={"q": q})).json()
        assert [c["id"] for c in found] == [cast["helene"].id], q
    # Still only the caller's caseload.
    found = (await alice.get("/api/messaging/clients", params={"q": "bobs"})).json()
    assert found == []


async def test_a_long_conversation_comes_in_pages_newest_first(
    new_http: Callable[..., httpx.AsyncClient], cast: dict[str, Any]
) -> None:
    """A conversation of years sent its whole history, and every receipt, each time it was
    opened: on a phone, hundreds of messages to load before the newest showed. It opens with
    the newest 50; ``?before=<id>`` gives the 50 before that message, oldest first."""
    staff, cid = await new_client_conversation(new_http, cast["alice"], cast["helene"])
    for n in range(120):
        assert (await send(staff, "/api", cid, f"m{n}", f"u{n}")).status_code == 200
    portal = new_http("10.2.0.9")
    await login(portal, cast["helene"])
    first = (await portal.get(f"/portal/api/conversations/{cid}")).json()
    assert [m["body"] for m in first["messages"]] == [f"m{n}" for n in range(70, 120)]
    assert first["has_more"] is True
    oldest = first["messages"][0]["id"]
    second = (await portal.get(f"/portal/api/conversations/{cid}?before={oldest}")).json()
    assert [m["body"] for m in second["messages"]] == [f"m{n}" for n in range(20, 70)]
    assert second["has_more"] is True
    oldest = second["messages"][0]["id"]
    last = (await portal.get(f"/portal/api/conversations/{cid}?before={oldest}")).json()
    assert [m["body"] for m in last["messages"]] == [f"m{n}" for n in range(20)]
    assert last["has_more"] is False
    # Reading the conversation still reads all of it, loaded or not.
    assert (await portal.post(f"/portal/api/conversations/{cid}/read", json={})).status_code == 200
    assert (await portal.get("/portal/api/conversations")).json()["unread_total"] == 0
    # A mistyped page is a 422 naming it; another client's page is a 404.
    r = await portal.get(f"/portal/api/conversations/{cid}?before=abc")
    assert r.status_code == 422 and "before" in r.json()["error"]["fields"]
    other = new_http("10.2.0.10")
    await login(other, cast["other"])
    assert (await other.get(f"/portal/api/conversations/{cid}?before={oldest}")).status_code == 404
