"""The websocket protocol against a real uvicorn server with a real websocket client.

Each test signs people in through the HTTP API of a live server, opens their sockets the way
a browser tab does (session cookie, same-site Origin), acts through the HTTP API and looks
at what arrives: every stored event once and in ``seq`` order, across reconnects, stalls and
sign-outs. Runs on SQLite + memory:// and on PostgreSQL + Redis (see conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Origin

from models.accounts import AuthSession, Realm, StaffUser
from models.clients import Client, Relationship
from models.realtime import RealtimeEvent
from realtime import endpoint
from realtime.events import Event
from realtime.hub import hub
from server.actions.circle import do_unlink_clients
from server.actions.clients import do_link_clients
from server.auth.sessions import hash_token
from server.settings import get_settings
from tests.conftest import Factory, LiveServer, login

pytestmark = pytest.mark.usefixtures("settled_hub")

# Generous: the server answers in milliseconds; these only bound a hung test.
WAIT = 5.0


# --- people and their tabs -------------------------------------------------------------------


@dataclass
class Person:
    """Someone signed in through the live server's API, as a browser would be."""

    who: StaffUser | Client
    http: httpx.AsyncClient
    cookie: str
    recipient: str
    staff: bool

    @property
    def api(self) -> str:
        return "/api" if self.staff else "/portal/api"

    @property
    def ws_path(self) -> str:
        return "/staff/ws" if self.staff else "/portal/ws"


SignIn = Callable[[StaffUser | Client], Awaitable[Person]]


@pytest.fixture
async def sign_in(live_server: LiveServer) -> AsyncIterator[SignIn]:
    async with contextlib.AsyncExitStack() as stack:

        async def open_browser(who: StaffUser | Client) -> Person:
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=live_server.url))
            me = await login(http, who)
            staff = isinstance(who, StaffUser)
            name = "cabinet_staff" if staff else "cabinet_portal"
            cookie = f"{name}={http.cookies[name]}"
            return Person(who, http, cookie, me["recipient"], staff)

        yield open_browser


@dataclass
class Tab:
    """One open socket. ``backlog`` is what came before ``ready``; ``last`` the last seq."""

    ws: ClientConnection
    backlog: list[dict[str, Any]]
    ready_seq: int
    last: int
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def next(self) -> dict[str, Any]:
        """The next frame other than a heartbeat; stored events must come in seq order."""
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), WAIT))
            if frame["type"] == "heartbeat":
                continue
            if "seq" in frame and "data" in frame:
                assert frame["seq"] == self.last + 1, (frame, self.last)
                self.last = frame["seq"]
            self.seen.append(frame)
            return frame  # type: ignore[no-any-return]

    async def expect(self, type_: str) -> dict[str, Any]:
        """The next frame, which must be of this type."""
        frame = await self.next()
        assert frame["type"] == type_, frame
        return frame

    async def until_closed(self) -> int | None:
        """Read until the server closes the socket; returns the close code."""
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await self.next()
        return self.ws.close_code


async def open_tab(
    server: LiveServer,
    person: Person,
    *,
    after: int | None = None,
    **connect: Any,
) -> Tab:
    """Open ``person``'s socket like a tab does and read up to ``ready``."""
    query = "" if after is None else f"?after={after}"
    ws = await websockets.connect(
        f"{server.ws_url}{person.ws_path}{query}",
        additional_headers={"Cookie": person.cookie},
        origin=Origin(server.url),
        open_timeout=WAIT,
        **connect,
    )
    backlog: list[dict[str, Any]] = []
    last = after or 0
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if frame["type"] == "ready":
            break
        assert frame["seq"] == last + 1, (frame, last)
        last = frame["seq"]
        backlog.append(frame)
    if after is not None:
        assert frame["seq"] == last
    return Tab(ws, backlog, frame["seq"], frame["seq"])


async def refused(server: LiveServer, path: str, cookie: str | None, origin: str) -> bool:
    """True when the server refuses the socket (403 before the handshake, or 4003)."""
    headers = {"Cookie": cookie} if cookie else {}
    try:
        async with websockets.connect(
            f"{server.ws_url}{path}", additional_headers=headers, origin=Origin(origin)
        ) as ws:
            await asyncio.wait_for(ws.recv(), WAIT)
    except websockets.InvalidStatus as exc:
        return exc.response.status_code == 403
    except websockets.ConnectionClosed as exc:
        return exc.rcvd is not None and exc.rcvd.code == endpoint.CLOSE_FORBIDDEN
    return False


# --- the practice ----------------------------------------------------------------------------


@dataclass
class Cast:
    owner: StaffUser
    alice: StaffUser
    bob: StaffUser
    helene: Client
    other: Client


@pytest.fixture
async def cast(make: Factory) -> Cast:
    owner = await make.owner()
    alice = await make.therapist(first_name="Alice")
    bob = await make.therapist(first_name="Bob")
    helene = await make.client(alice, first_name="Hélène", last_name="Dubois")
    other = await make.client(alice, first_name="Other", last_name="Client")
    return Cast(owner, alice, bob, helene, other)


async def start_conversation(staff: Person, client: Client, subject: str = "Next steps") -> int:
    r = await staff.http.post(
        "/api/conversations", json={"kind": "client", "subject": subject, "client_id": client.id}
    )
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


async def send(person: Person, cid: int, body: str, uid: str) -> int:
    r = await person.http.post(
        f"{person.api}/conversations/{cid}/messages", json={"body": body, "client_uid": uid}
    )
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def message_ids(frames: list[dict[str, Any]]) -> list[int]:
    return [f["data"]["id"] for f in frames if f["type"] == "message.created"]


# --- 1. delivery -----------------------------------------------------------------------------


async def test_every_conversation_event_arrives_live(
    live_server: LiveServer, sign_in: SignIn, cast: Cast
) -> None:
    alice = await sign_in(cast.alice)
    helene = await sign_in(cast.helene)
    bob = await sign_in(cast.bob)
    alice_tab = await open_tab(live_server, alice)
    helene_tab = await open_tab(live_server, helene)
    bob_tab = await open_tab(live_server, bob)
    # A fresh tab (no ?after) starts from now: nothing from before.
    assert alice_tab.backlog == helene_tab.backlog == bob_tab.backlog == []

    cid = await start_conversation(alice, cast.helene)
    for tab in (alice_tab, helene_tab):
        created = await tab.expect("conversation.created")
        assert set(created) == {"seq", "type", "data"}
        assert created["data"]["id"] == cid and created["data"]["subject"] == "Next steps"
        names = {p["name"] for p in created["data"]["participants"]}
        assert names == {cast.alice.full_name, "Hélène Dubois"}

    # Alice writes: Hélène sees it (and Alice's other tabs would too).
    mid = await send(alice, cid, "Bonjour Hélène", "a1")
    for tab in (helene_tab, alice_tab):
        new = await tab.expect("message.created")
        assert new["data"]["id"] == mid and new["data"]["body"] == "Bonjour Hélène"
        assert new["data"]["sender"]["staff_id"] == cast.alice.id

    # Hélène reads it: Alice gets the receipt live.
    r = await helene.http.post(f"/portal/api/conversations/{cid}/read", json={})
    assert r.json() == {"message_ids": [mid]}
    for tab in (alice_tab, helene_tab):
        read = await tab.expect("message.read")
        assert read["data"]["message_ids"] == [mid]
        assert read["data"]["reader"]["name"] == "Hélène Dubois"

    # Hélène answers, then takes it back before anyone reads it.
    reply = await send(helene, cid, "Oups", "h1")
    assert (await alice_tab.expect("message.created"))["data"]["id"] == reply
    assert (await helene_tab.expect("message.created"))["data"]["id"] == reply
    assert (await helene.http.delete(f"/portal/api/messages/{reply}")).status_code == 200
    for tab in (alice_tab, helene_tab):
        deleted = await tab.expect("message.deleted")
        assert deleted["data"] == {"conversation_id": cid, "message_id": reply}

    # Typing is a push without a seq, to the others only.
    r = await helene.http.post(f"/portal/api/conversations/{cid}/typing")
    assert r.status_code == 200
    typing = await alice_tab.expect("typing")
    assert "seq" not in typing
    # Ids only, no name: typing crosses Redis, and the tab knows the participants' names.
    assert set(typing["data"]) == {"conversation_id", "participant_id"}
    assert typing["data"]["conversation_id"] == cid

    # Bob joins: he learns of the conversation on his socket, the others see him added.
    r = await alice.http.post(
        f"/api/conversations/{cid}/participants",
        json={"staff_ids": [cast.bob.id], "group_name": "Care team"},
    )
    assert r.status_code == 200, r.text
    for tab in (alice_tab, helene_tab, bob_tab):
        added = await tab.expect("conversation.participants_added")
        assert [p["staff_id"] for p in added["data"]["added"]] == [cast.bob.id]
        assert added["data"]["conversation"]["group_name"] == "Care team"

    # Nothing else was queued for anyone: the next frame of each tab is this last message
    # (Hélène never saw her own typing notice, Bob saw nothing from before he joined).
    last = await send(alice, cid, "Welcome Bob", "a2")
    for tab in (alice_tab, helene_tab, bob_tab):
        assert (await tab.expect("message.created"))["data"]["id"] == last
    assert bob_tab.last == 2 and helene_tab.last == alice_tab.last == 7
    for tab in (alice_tab, helene_tab, bob_tab):
        await tab.ws.close()


# --- 2. resume -------------------------------------------------------------------------------


async def test_an_unlinked_parent_replays_nothing_of_the_childs_conversations(
    live_server: LiveServer, sign_in: SignIn, cast: Cast, make: Factory
) -> None:
    """Unlinked, a parent got 404 from the thread, but a socket resumed from seq 0 replayed
    every stored event of the child's conversations, the subject and the text of each
    message, and a message deleted afterwards came back whole. What was stored for them
    about those conversations is now withdrawn: the seqs still arrive, empty."""
    parent_file = await make.client(cast.alice, first_name="Parent", last_name="Dubois")
    await do_link_clients(None, cast.helene, parent_file, Relationship.PARENT)
    alice = await sign_in(cast.alice)
    r = await alice.http.post(
        "/api/conversations",
        json={
            "kind": "client",
            "subject": "Family matters",
            "client_id": cast.helene.id,
            "linked_client_ids": [parent_file.id],
            "group_name": "Family",
        },
    )
    assert r.status_code == 200, r.text
    cid = int(r.json()["id"])
    kept = await send(alice, cid, "before the unlinking: a private detail", "u1")
    parent = await sign_in(parent_file)
    before = await open_tab(live_server, parent, after=0)
    assert "a private detail" in json.dumps(before.backlog)
    await before.ws.close()

    await do_unlink_clients(None, cast.helene, parent_file)
    assert (await alice.http.delete(f"/api/messages/{kept}")).status_code == 200
    tab = await open_tab(live_server, parent, after=0)  # every seq, in order (open_tab)
    text = json.dumps(tab.backlog)
    assert "private detail" not in text and "Family matters" not in text
    assert [f["type"] for f in tab.backlog] == [
        "withdrawn",
        "withdrawn",
        "conversation.participant_left",
    ]
    assert all(f["data"] == {} for f in tab.backlog[:2])
    await tab.ws.close()


async def test_reconnecting_with_after_gets_everything_missed_once_in_order(
    live_server: LiveServer, sign_in: SignIn, cast: Cast
) -> None:
    alice = await sign_in(cast.alice)
    helene = await sign_in(cast.helene)
    cid = await start_conversation(alice, cast.helene)
    tab = await open_tab(live_server, helene, after=0)
    assert [f["type"] for f in tab.backlog] == ["conversation.created"]
    first = await send(alice, cid, "one", "m0")
    assert (await tab.expect("message.created"))["data"]["id"] == first
    seen = tab.last
    await tab.ws.close()

    missed = [await send(alice, cid, f"missed {i}", f"m{i + 1}") for i in range(6)]
    await alice.http.post(f"/api/conversations/{cid}/typing")  # ephemeral: not replayed

    tab = await open_tab(live_server, helene, after=seen)
    assert {f["type"] for f in tab.backlog} == {"message.created"}
    assert message_ids(tab.backlog) == missed
    assert [f["seq"] for f in tab.backlog] == list(range(seen + 1, seen + 7))
    assert tab.ready_seq == seen + 6
    # And then live, without repeating anything from the backlog.
    live = await send(alice, cid, "live", "m-live")
    frame = await tab.expect("message.created")
    assert frame["data"]["id"] == live and frame["seq"] == seen + 7
    await tab.ws.close()

    # Resuming from an older point replays from there, in the same order.
    again = await open_tab(live_server, helene, after=seen - 1)
    assert message_ids(again.backlog) == [first, *missed, live]
    await again.ws.close()


@pytest.mark.parametrize("after", ["500", "9" * 30])
async def test_a_seq_from_another_history_is_reset_not_skipped(
    live_server: LiveServer, sign_in: SignIn, cast: Cast, after: str
) -> None:
    """A tab that remembers seq 500 (say, before a database restore) must not wait for the
    server to pass 500 again: ready tells it the real seq and events flow at once. A seq
    past what the database can compare with is the same, not a socket closed with 1011."""
    alice = await sign_in(cast.alice)
    helene = await sign_in(cast.helene)
    cid = await start_conversation(alice, cast.helene)
    ws = await websockets.connect(
        f"{live_server.ws_url}{helene.ws_path}?after={after}",
        additional_headers={"Cookie": helene.cookie},
        origin=Origin(live_server.url),
        open_timeout=WAIT,
    )
    ready = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert ready == {"type": "ready", "seq": 1}  # conversation.created is seq 1
    tab = Tab(ws, [], ready["seq"], ready["seq"])
    mid = await send(alice, cid, "after the restore", "r1")
    frame = await tab.expect("message.created")
    assert frame["data"]["id"] == mid and frame["seq"] == 2
    await ws.close()


async def test_reconnecting_while_messages_stream_in_loses_and_repeats_nothing(
    live_server: LiveServer, sign_in: SignIn, cast: Cast
) -> None:
    alice = await sign_in(cast.alice)
    helene = await sign_in(cast.helene)
    cid = await start_conversation(alice, cast.helene)
    first = await open_tab(live_server, alice, after=0)
    last = first.last
    await first.ws.close()
    per_sender = 25
    sent: list[int] = []

    async def stream(person: Person, tag: str) -> None:
        for i in range(per_sender):
            sent.append(await send(person, cid, f"{tag} {i}", f"{tag}-{i}"))

    # Alice and Hélène both write while Alice's tab keeps dropping and resuming: her
    # recipient sequence advances from two sources at once.
    senders = asyncio.gather(stream(alice, "a"), stream(helene, "h"))
    received: list[dict[str, Any]] = []
    reads_before_drop = [1, 3, 0, 2, 5, 1]
    reconnects = 0
    while len(received) < 2 * per_sender:
        if senders.done():
            senders.result()  # a failed send fails here, not as a read timeout later
        tab = await open_tab(live_server, alice, after=last)
        received += tab.backlog
        for _ in range(reads_before_drop[reconnects % len(reads_before_drop)]):
            if len(received) == 2 * per_sender:
                break
            received.append(await tab.next())
        last = tab.last
        # Frames the server sent after the last one read are simply lost with the socket;
        # ?after= asks for them again.
        await tab.ws.close()
        reconnects += 1
    await senders
    assert reconnects > 3
    seqs = [f["seq"] for f in received]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert sorted(message_ids(received)) == sorted(sent) and len(sent) == 2 * per_sender


# --- 3. a reader that stops reading ----------------------------------------------------------


def _server_connection(server: LiveServer, ws: ClientConnection) -> Any:
    """uvicorn's protocol object for this client socket (to read its write buffer)."""
    port = ws.local_address[1]
    matches = [c for c in server.server.server_state.connections if c.client[1] == port]
    assert len(matches) == 1
    return matches[0]


async def test_a_stalled_reader_is_cut_off_with_4008_and_resumes_without_loss(
    live_server: LiveServer, sign_in: SignIn, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A smaller queue bound makes the stall quick; the mechanism is the same at 512.
    monkeypatch.setattr(endpoint, "QUEUE_LIMIT", 16)
    alice = await sign_in(cast.alice)
    helene = await sign_in(cast.helene)
    cid = await start_conversation(alice, cast.helene)

    # A tab that stops reading: tiny kernel receive buffer, and the client library stops
    # taking frames off the socket after the first unread one.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", live_server.port))
    tab = await open_tab(live_server, helene, after=0, sock=raw, max_queue=1)
    (registered,) = hub.sockets[helene.recipient]
    assert isinstance(registered, endpoint.Socket)
    server_socket = registered
    conn = _server_connection(live_server, tab.ws)
    # Without a cap, Linux lets the server's kernel absorb megabytes for a silent peer
    # before uvicorn's buffer fills; a slow link is the same story, only slower to set up.
    conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)

    big = "x" * 8000
    sent: list[int] = []
    buffered: list[int] = []
    while not server_socket.closed:
        assert len(sent) < 400, "the server never gave up on the stalled socket"
        sent.append(await send(alice, cid, big, f"s{len(sent)}"))
        assert server_socket.queued <= endpoint.QUEUE_LIMIT
        buffered.append(conn.transport.get_write_buffer_size())
    assert server_socket.close_code == endpoint.CLOSE_RESYNC
    # What the server holds for this socket is bounded: its queue, plus the transport's
    # buffer (uvicorn stops accepting frames above its high-water mark, 64 KiB).
    assert max(buffered) < 64 * 1024 + 2 * len(big)
    # The hub let go of it: further events for Hélène are stored, not held for this socket.
    for _ in range(20):
        if helene.recipient not in hub.sockets:
            break
        await asyncio.sleep(0.05)
    assert helene.recipient not in hub.sockets
    held = conn.transport.get_write_buffer_size()
    sent += [await send(alice, cid, big, f"after-kick-{i}") for i in range(3)]
    assert conn.transport.get_write_buffer_size() <= held

    # The tab reads again: whatever the kernel still held, then the 4008 close.
    assert await tab.until_closed() == endpoint.CLOSE_RESYNC
    got = tab.backlog + tab.seen
    assert len(message_ids(got)) < len(sent)

    resumed = await open_tab(live_server, helene, after=tab.last)
    everything = got + resumed.backlog
    assert [f["seq"] for f in everything] == list(range(1, len(everything) + 1))
    assert message_ids(everything) == sent
    await resumed.ws.close()


# --- 4. access while the socket stays open ---------------------------------------------------


async def _sign_out(cast: Cast, person: Person, boss: Person) -> httpx.Response:
    return await person.http.delete(f"{person.api}/session")


async def _deactivate(cast: Cast, person: Person, boss: Person) -> httpx.Response:
    return await boss.http.post(f"/api/staff/{cast.alice.id}/active", json={"active": False})


async def _disable_portal(cast: Cast, person: Person, boss: Person) -> httpx.Response:
    return await boss.http.post(
        f"/api/clients/{cast.helene.id}/portal/active", json={"active": False}
    )


@pytest.mark.parametrize(
    ("who", "cut_off"),
    [
        ("alice", _sign_out),
        ("helene", _sign_out),
        ("alice", _deactivate),
        ("helene", _disable_portal),
    ],
    ids=["staff-signs-out", "client-signs-out", "staff-deactivated", "portal-disabled"],
)
async def test_a_socket_closes_when_its_access_ends_and_gets_nothing_after(
    live_server: LiveServer,
    sign_in: SignIn,
    cast: Cast,
    who: str,
    cut_off: Callable[[Cast, Person, Person], Awaitable[httpx.Response]],
) -> None:
    boss = await sign_in(cast.owner)
    alice = await sign_in(cast.alice)
    helene = await sign_in(cast.helene)
    cid = await start_conversation(alice, cast.helene)
    # The owner writes from the conversation's other side, so the message is not the
    # cut-off person's own.
    r = await alice.http.post(
        f"/api/conversations/{cid}/participants",
        json={"staff_ids": [cast.owner.id], "group_name": "Team"},
    )
    assert r.status_code == 200, r.text
    person = alice if who == "alice" else helene
    tab = await open_tab(live_server, person)
    before = await send(boss, cid, "still allowed", "b1")
    assert (await tab.expect("message.created"))["data"]["id"] == before

    r = await cut_off(cast, person, boss)
    assert r.status_code == 200, r.text
    started = time.monotonic()
    after = await send(boss, cid, "not for you any more", "b2")
    assert await tab.until_closed() == endpoint.CLOSE_SESSION_ENDED
    assert time.monotonic() - started < 2.0
    assert after not in message_ids(tab.seen)
    # The event is kept for them, but the old cookie opens no socket to read it.
    assert await RealtimeEvent.filter(recipient=person.recipient).count() == tab.last + 1
    assert await refused(live_server, person.ws_path, person.cookie, live_server.url)


@pytest.mark.parametrize("how", ["expired", "idled out", "revoked", "gone"])
async def test_a_socket_whose_session_ended_unannounced_is_closed_by_the_sweep(
    live_server: LiveServer, sign_in: SignIn, cast: Cast, how: str
) -> None:
    # Written straight to the database, the end sends no close notice: the hub's sweep
    # (every second) must find it, whichever way the session ended.
    helene = await sign_in(cast.helene)
    bystander = await sign_in(cast.other)
    tab = await open_tab(live_server, helene)
    other_tab = await open_tab(live_server, bystander)
    started = time.monotonic()
    now = datetime.now(UTC)
    session = AuthSession.filter(id=hash_token(helene.cookie.split("=", 1)[1]))
    if how == "expired":
        await session.update(expires_at=now - timedelta(seconds=1))
    elif how == "idled out":
        idle = get_settings().portal_idle_minutes
        await session.update(last_seen_at=now - timedelta(minutes=idle, seconds=1))
    elif how == "revoked":
        await session.update(revoked_at=now)
    else:
        await session.delete()
    assert await tab.until_closed() == endpoint.CLOSE_SESSION_ENDED
    assert time.monotonic() - started < 2.5
    assert await refused(live_server, helene.ws_path, helene.cookie, live_server.url)
    # The sweep closed that session's socket only.
    await asyncio.sleep(1.2)
    assert other_tab.ws.close_code is None
    await other_tab.ws.close()


async def test_opening_a_socket_does_not_keep_the_session_alive(
    live_server: LiveServer, sign_in: SignIn, cast: Cast
) -> None:
    """A tab reconnects by itself (a network blip, a laptop waking, a server restart): its
    handshake must not push back the idle timeout, or an unattended screen that keeps
    reconnecting never signs itself out. An HTTP request does push it back."""
    helene = await sign_in(cast.helene)
    session = AuthSession.filter(id=hash_token(helene.cookie.split("=", 1)[1]))
    idle_since = datetime.now(UTC) - timedelta(minutes=get_settings().portal_idle_minutes - 1)
    await session.update(last_seen_at=idle_since)
    tab = await open_tab(live_server, helene)
    await tab.ws.close()
    assert (await session.get()).last_seen_at == idle_since
    assert (await helene.http.get("/portal/api/me")).status_code == 200
    assert (await session.get()).last_seen_at > idle_since + timedelta(seconds=30)


async def test_the_sweep_finds_exactly_the_ended_sessions_among_many(make: Factory) -> None:
    """More sessions than one statement of the sweep takes on SQLite, each way of ending
    spread through them, and ids that never existed: the ended ones, and only those."""
    from realtime.hub import SWEEP_BATCH, _ended_sessions

    alice = await make.therapist()
    now = datetime.now(UTC)
    idle = 600
    ways = ["live", "live", "expired", "idled out", "revoked", "live", "gone"]
    rows, expected = [], set()
    for i in range(SWEEP_BATCH * 2 + 37):
        way = ways[i % len(ways)]
        sid = hash_token(f"sweep-{i}")
        if way != "live":
            expected.add(sid)
        if way == "gone":
            continue
        rows.append(
            AuthSession(
                id=sid,
                realm=Realm.STAFF,
                staff_user_id=alice.id,
                csrf_token="c",
                last_seen_at=now - timedelta(seconds=idle + 1 if way == "idled out" else 5),
                expires_at=now - timedelta(seconds=1) if way == "expired" else now + timedelta(1),
                idle_seconds=idle,
                revoked_at=now if way == "revoked" else None,
            )
        )
    await AuthSession.bulk_create(rows)
    ids = [hash_token(f"sweep-{i}") for i in range(SWEEP_BATCH * 2 + 37)]
    assert await _ended_sessions(ids, idle, now) == expected
    live = [i for i in ids if i not in expected]
    assert await _ended_sessions(live, idle, now) == set()
    assert await _ended_sessions(live[:1], idle, now) == set()


async def test_a_client_gets_nothing_from_conversations_they_are_not_in(
    live_server: LiveServer, sign_in: SignIn, cast: Cast
) -> None:
    alice = await sign_in(cast.alice)
    other = await sign_in(cast.other)
    other_tab = await open_tab(live_server, other, after=0)
    cid = await start_conversation(alice, cast.helene, subject="Private")
    await send(alice, cid, "for Hélène only", "p1")
    await alice.http.post(f"/api/conversations/{cid}/typing")
    own = await start_conversation(alice, cast.other, subject="Yours")
    # The other client's first frame is about their own conversation: nothing of
    # Hélène's was stored for them or pushed to them.
    created = await other_tab.expect("conversation.created")
    assert created["seq"] == 1 and created["data"]["id"] == own
    assert await RealtimeEvent.filter(recipient=other.recipient).count() == 1
    await other_tab.ws.close()


async def test_sockets_are_refused_without_the_right_session_or_origin(
    live_server: LiveServer, sign_in: SignIn, cast: Cast
) -> None:
    alice = await sign_in(cast.alice)
    helene = await sign_in(cast.helene)
    same_site = live_server.url
    # Each realm's socket reads only its own cookie.
    assert await refused(live_server, "/staff/ws", helene.cookie, same_site)
    assert await refused(live_server, "/portal/ws", alice.cookie, same_site)
    # Both cookies at once (one browser signed in to both) still opens only the right realm.
    both = f"{alice.cookie}; {helene.cookie}"
    staff_tab = await open_tab(live_server, Person(cast.alice, alice.http, both, "", True))
    await staff_tab.ws.close()
    # Another site's page cannot open a socket with the user's cookie.
    assert await refused(live_server, "/staff/ws", alice.cookie, "https://evil.example")
    assert await refused(live_server, "/portal/ws", helene.cookie, "http://127.0.0.1:1")
    # Same host and port, another scheme: a plain-http page is not the site.
    other_scheme = live_server.url.replace("http://", "https://", 1)
    assert await refused(live_server, "/staff/ws", alice.cookie, other_scheme)
    # No cookie, or a made-up one.
    assert await refused(live_server, "/staff/ws", None, same_site)
    assert await refused(live_server, "/portal/ws", "cabinet_portal=forged", same_site)


# --- 5. ping and heartbeat -------------------------------------------------------------------


async def test_a_failed_publish_reconnects_the_hub_and_nothing_is_lost(
    live_server: LiveServer, sign_in: SignIn, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A publish that fails while the subscription still runs used to leave the hub saying
    # "broker down" for good (/healthz false) until the next real loss. Now the hub tears
    # the connection down, reconnects and resyncs its sockets.
    alice = await sign_in(cast.alice)
    helene = await sign_in(cast.helene)
    cid = await start_conversation(alice, cast.helene)
    tab = await open_tab(live_server, helene)
    before = hub.reconnects
    broken = hub._broadcast
    assert broken is not None
    real_publish = broken.publish
    failed: list[str] = []

    async def publish_once_broken(channel: str, message: Any) -> None:
        if not failed and '"k":"ev"' in message:
            failed.append(message)
            raise ConnectionError("the broker dropped this publish")
        await real_publish(channel, message)

    monkeypatch.setattr(broken, "publish", publish_once_broken)
    during = await send(alice, cid, "said as the publish failed", "p-fail")
    assert (await tab.expect("message.created"))["data"]["id"] == during
    assert failed

    deadline = time.monotonic() + WAIT
    while hub.reconnects == before or not hub.connected:
        assert time.monotonic() < deadline, "the hub never reconnected"
        await asyncio.sleep(0.02)
    health = (await alice.http.get("/healthz")).json()
    assert health["broker"] is True and health["broker_for"] < WAIT
    # The resync after the reconnect repeats nothing, and the next message is live.
    after = await send(alice, cid, "and after", "p-after")
    frame = await tab.expect("message.created")
    assert frame["data"]["id"] == after
    assert message_ids(tab.seen) == [during, after]
    await tab.ws.close()


async def test_ping_gets_pong_and_a_quiet_socket_gets_heartbeats(
    live_server: LiveServer, sign_in: SignIn, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoint, "HEARTBEAT_SECONDS", 0.2)
    alice = await sign_in(cast.alice)
    await start_conversation(alice, cast.helene)
    tab = await open_tab(live_server, alice, after=0)
    await tab.ws.send(json.dumps({"type": "ping"}))
    assert await tab.expect("pong") == {"type": "pong", "seq": 1}
    # Unknown or malformed client messages are ignored; the socket stays up.
    await tab.ws.send(json.dumps({"type": "no-such-thing"}))
    await tab.ws.send(json.dumps(["not", "an", "object"]))
    await tab.ws.send("{not json")
    await tab.ws.send(b"\x00binary")
    await tab.ws.send(json.dumps({"type": "ping"}))
    assert await tab.expect("pong") == {"type": "pong", "seq": 1}
    # Quiet: the server proves the socket alive, and says where the tab stands.
    frame = json.loads(await asyncio.wait_for(tab.ws.recv(), WAIT))
    assert frame == {"type": "heartbeat", "seq": 1}
    await tab.ws.close()


# --- 6. what an idle socket holds --------------------------------------------------------------


def _server_tasks() -> int:
    """Tasks of this process other than the test's websocket clients' own and the hub's
    wait for its broker (a task that comes and goes every half second)."""
    return sum(
        1
        for t in asyncio.all_tasks()
        if not any(
            part in t.get_coro().cr_code.co_filename  # type: ignore[union-attr]
            for part in ("websockets/asyncio/", "broadcaster/")
        )
    )


async def test_idle_sockets_hold_no_task_or_queue_of_their_own_and_still_get_everything(
    live_server: LiveServer, sign_in: SignIn, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Thousands of sockets idle in one process: each is served by its connection's task
    # alone (no writer, reader or heartbeat task, no queue), and wakes up when needed.
    monkeypatch.setattr(endpoint, "HEARTBEAT_SECONDS", 0.4)
    alice = await sign_in(cast.alice)
    helene = await sign_in(cast.helene)
    cid = await start_conversation(alice, cast.helene)
    await open_tab(live_server, alice)  # the process's heartbeat timer is running now
    before = _server_tasks()
    tabs = [await open_tab(live_server, helene) for _ in range(10)]
    await asyncio.sleep(0.1)
    # The ten sockets' own tasks (uvicorn's), and nothing more (three tasks a socket would
    # make thirty).
    assert _server_tasks() - before <= 10
    held = list(hub.sockets[helene.recipient])
    assert len(held) == 10
    for sock in held:
        assert isinstance(sock, endpoint.Socket)
        assert sock._writer is None and sock._pending is None

    # Live events still reach every tab, in order, and the writer goes away again.
    mid = await send(alice, cid, "to ten tabs", "idle-1")
    for tab in tabs:
        frame = await tab.next()
        while frame["type"] == "presence":  # Alice came online (through Redis: any time)
            frame = await tab.next()
        assert frame["type"] == "message.created" and frame["data"]["id"] == mid
    await asyncio.sleep(0.05)
    assert all(s._writer is None and s._pending is None for s in held)  # type: ignore[attr-defined]

    # Quiet again: each tab gets a heartbeat with the seq it stands at, and a ping its pong.
    for tab in tabs:
        frame = json.loads(await asyncio.wait_for(tab.ws.recv(), WAIT))
        while frame["type"] == "presence":
            frame = json.loads(await asyncio.wait_for(tab.ws.recv(), WAIT))
        assert frame == {"type": "heartbeat", "seq": tab.last}
    await tabs[0].ws.send(json.dumps({"type": "ping"}))
    assert await tabs[0].expect("pong") == {"type": "pong", "seq": tabs[0].last}
    for tab in tabs:
        await tab.ws.close()


async def test_a_client_message_handler_gets_the_caller_as_they_are_now(
    live_server: LiveServer, sign_in: SignIn, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The socket keeps ids, not the caller's rows: a handler gets the caller reloaded from
    # the session, and a socket whose session ended is closed instead.
    seen: list[tuple[str, dict[str, Any]]] = []

    async def handler(caller: Any, message: dict[str, Any]) -> None:
        seen.append((caller.recipient, message))

    monkeypatch.setitem(endpoint.client_handlers, "wave", handler)
    helene = await sign_in(cast.helene)
    tab = await open_tab(live_server, helene)
    await tab.ws.send(json.dumps({"type": "wave", "n": 1}))
    await tab.ws.send(json.dumps({"type": "ping"}))
    await tab.expect("pong")
    assert seen == [(helene.recipient, {"type": "wave", "n": 1})]

    await AuthSession.filter(id=hash_token(helene.cookie.split("=", 1)[1])).update(
        revoked_at=datetime.now(UTC)
    )
    await tab.ws.send(json.dumps({"type": "wave", "n": 2}))
    assert await tab.until_closed() == endpoint.CLOSE_SESSION_ENDED
    assert len(seen) == 1


class GatedWebSocket:
    """A websocket whose client side is full while ``room`` is cleared: its sends wait, as
    uvicorn's do while the transport is paused."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.room = asyncio.Event()
        self.room.set()

    async def send_text(self, text: str) -> None:
        await self.room.wait()
        self.sent.append(json.loads(text)["seq"])


async def test_a_frame_goes_out_at_once_and_a_full_socket_hands_over_to_a_writer() -> None:
    ws = GatedWebSocket()
    caller = SimpleNamespace(
        recipient="c:1", session=SimpleNamespace(id="s", idle_seconds=60), realm=Realm.PORTAL
    )
    sock = endpoint.Socket(typing.cast(Any, ws), typing.cast(Any, caller), after=0)
    sock.ready = True

    def event(seq: int) -> Event:
        return Event("c:1", seq, "message.created", {"id": seq}, f'{{"id":{seq}}}')

    # A socket that keeps up: the frame is written by the publisher, no task made for it.
    sock.offer(1, event(1))
    assert ws.sent == [1] and sock.last == 1
    assert sock._writer is None and sock._pending is None

    # The client's side is full: a writer finishes that frame, then the queue, in order.
    ws.room.clear()
    for seq in (2, 3, 4):
        sock.offer(seq, event(seq))
    writer = sock._writer
    assert writer is not None and ws.sent == [1] and sock.queued == 2
    ws.room.set()
    await asyncio.wait_for(writer, WAIT)
    assert ws.sent == [1, 2, 3, 4] and sock.last == 4
    assert sock._writer is None and sock._pending is None

    # Closed while a frame waits: it is dropped, and nothing more is written.
    ws.room.clear()
    sock.offer(5, event(5))
    writer = sock._writer
    assert writer is not None
    sock.kick(endpoint.CLOSE_RESYNC, "too far behind, resume")
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(writer, WAIT)
    ws.room.set()
    sock.offer(6, event(6))
    await asyncio.sleep(0.01)
    assert ws.sent == [1, 2, 3, 4] and sock.last == 4


# --- a clinical result, told again to a tab that resumes ---------------------------------------


def clinical_frames(tab: Tab, client_id: int) -> list[dict[str, Any]]:
    return [
        f
        for f in tab.backlog
        if f["type"] in {"measure.completed", "measure.alert", "form.completed"}
        and f["data"].get("client_id") == client_id
    ]


async def test_a_therapist_who_handed_a_client_over_is_not_told_her_scores_again(
    live_server: LiveServer, sign_in: SignIn, people: dict[str, Any], make: Factory
) -> None:
    """Alice heard of Camille's PHQ-9 and its safety alert when Camille answered. Once
    Camille goes to Bob, Alice's file and measure pages are 404s: a tab resumed from the
    start must not hand her the score, the band or the alert either; their seqs arrive
    withdrawn, with no data, so the tab sees no gap."""
    from models.measures import MeasureAdministration, MeasureKind
    from server.actions import measures
    from server.actions.client_file import do_assign_therapist
    from server.auth.sessions import Caller
    from server.instruments import PHQ9
    from tests.test_measures import form

    camille = people["camille"]
    sent, _ = await measures.do_send_measure(
        Caller.acting_as(people["alice"]), camille, MeasureKind.PHQ9
    )
    assert sent is not None
    account = await make.portal_account(camille)
    await measures.do_complete_measure(
        Caller.acting_as((account, camille)),
        await MeasureAdministration.get(id=sent.id),
        form(PHQ9, 17, item9=2),
    )
    alice = await sign_in(people["alice"])
    before = await open_tab(live_server, alice, after=0)
    await before.ws.close()
    told = clinical_frames(before, camille.id)
    assert [f["type"] for f in told] == ["measure.completed", "measure.alert"]

    await do_assign_therapist(Caller.acting_as(people["owner"]), camille, people["bob"])
    assert (await alice.http.get(f"/api/measures/{sent.id}")).status_code == 404
    after = await open_tab(live_server, alice, after=0)
    await after.ws.close()
    assert clinical_frames(after, camille.id) == []
    withdrawn = {f["seq"]: f["data"] for f in after.backlog if f["type"] == "withdrawn"}
    assert withdrawn == {f["seq"]: {} for f in told}
    assert [f["seq"] for f in after.backlog] == list(range(1, after.last + 1))


async def test_the_front_desk_is_not_told_scores_again_once_clinical_details_are_closed(
    live_server: LiveServer, sign_in: SignIn, people: dict[str, Any], make: Factory
) -> None:
    """The desk sent Camille a GAD-7 and heard her score while the practice opened clinical
    details to it. Once closed, the score is hidden over HTTP, and a resumed tab is not told
    it again; opened again, it is."""
    from models.measures import MeasureKind
    from server.actions import measures
    from server.auth.sessions import Caller
    from server.instruments import GAD7
    from tests.test_measures import form

    practice = people["practice"]
    practice.office_admins_see_clinical = True
    await practice.save()
    camille = people["camille"]
    sent, _ = await measures.do_send_measure(
        Caller.acting_as(people["desk"]), camille, MeasureKind.GAD7
    )
    assert sent is not None
    account = await make.portal_account(camille)
    await measures.do_complete_measure(Caller.acting_as((account, camille)), sent, form(GAD7, 16))
    desk = await sign_in(people["desk"])

    async def scores() -> list[Any]:
        tab = await open_tab(live_server, desk, after=0)
        await tab.ws.close()
        return [f["data"]["score"] for f in clinical_frames(tab, camille.id)]

    assert await scores() == [16]
    practice.office_admins_see_clinical = False
    await practice.save()
    assert (await desk.http.get(f"/api/measures/{sent.id}")).json()["score"] is None
    assert await scores() == []
    practice.office_admins_see_clinical = True
    await practice.save()
    assert await scores() == [16]


async def test_the_front_desk_is_not_told_of_a_clinical_form_again_once_clinical_details_are_closed(
    live_server: LiveServer, sign_in: SignIn, people: dict[str, Any]
) -> None:
    """The same for a completed form: its PDF is a clinical document, a 404 to the desk once
    clinical details are closed to it, and a resumed tab no longer names it."""
    from models.accounts import PortalAccount
    from server.actions import forms
    from server.auth.sessions import Caller
    from tests.test_forms import full_answers, intake

    practice = people["practice"]
    practice.office_admins_see_clinical = True
    await practice.save()
    camille = people["camille"]
    sent = await forms.do_send_form(Caller.acting_as(people["desk"]), camille, await intake(people))
    account = await PortalAccount.get(client_id=camille.id)
    done = await forms.do_submit_form(Caller.acting_as((account, camille)), sent, full_answers())
    desk = await sign_in(people["desk"])
    before = await open_tab(live_server, desk, after=0)
    await before.ws.close()
    assert [f["type"] for f in clinical_frames(before, camille.id)] == ["form.completed"]

    practice.office_admins_see_clinical = False
    await practice.save()
    assert (await desk.http.get(f"/api/documents/{done.document_id}")).status_code == 404
    after = await open_tab(live_server, desk, after=0)
    await after.ws.close()
    assert clinical_frames(after, camille.id) == []
