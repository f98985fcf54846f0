"""Realtime delivery as a Hypothesis state machine, against a real server and real sockets.

Rules, in any order: send, read, add a participant, a tab disconnects, a tab reconnects (with
``?after=`` its last seq, as the page does), the broker restarts. On ``memory://`` that is
the hub itself (it stops, which closes every socket with 1012, and starts again); when the
suite runs with Redis (``BROADCAST_URL=redis://...``) the hub is moved to a private
redis-server of the test's own, which "restart broker" really kills (SIGKILL) and starts
again, with a message sent while it is down: the sockets stay open and must resync.

Invariants, checked against the database after every step: nobody ever receives an event
of a conversation the database does not list them in; what each tab holds of a conversation
is a prefix of that conversation's messages in the database (since they joined), in order.
At the end, every participant's tab holds exactly those messages, each once, with gapless
seqs, and the database holds exactly the messages the sends were acknowledged with.

Hypothesis runs the machine in a worker thread; each step runs its coroutine on the test's
event loop, where the live server, the database and the hub live.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import json
import shutil
import time
from collections.abc import Coroutine
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from websockets.asyncio.client import ClientConnection
from websockets.typing import Origin

from models.messaging import Message, Participant
from realtime.hub import hub
from tests import test_realtime as protocol
from tests.conftest import BROADCAST_URL, LiveServer, free_port, require_service
from tests.test_realtime import Cast, Person, SignIn, send, start_conversation
from tests.test_realtime_cluster import RedisServer

pytestmark = [pytest.mark.usefixtures("settled_hub"), pytest.mark.timeout(240)]
# The protocol tests' fixtures, used here by name.
sign_in = protocol.sign_in
cast = protocol.cast

EXAMPLES = 8
STEPS = 14
REDIS = BROADCAST_URL.startswith("redis")


async def database_view(cids: list[int]) -> tuple[dict[int, list[int]], dict[int, set[str]]]:
    """Per conversation: its message ids in the database's order, and its participants as
    recipients (``s:<staff id>``, ``c:<portal account id>``)."""
    messages: dict[int, list[int]] = {}
    members: dict[int, set[str]] = {}
    for cid in cids:
        ids: list[Any] = (
            await Message.filter(conversation_id=cid).order_by("id").values_list("id", flat=True)
        )
        messages[cid] = [int(i) for i in ids]
        rows = await Participant.filter(conversation_id=cid).values_list(
            "staff_user_id", "portal_account_id"
        )
        members[cid] = {f"s:{s}" if s is not None else f"c:{c}" for s, c in rows}
    return messages, members


async def wait_hub(connected: bool, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while hub.connected != connected:
        assert time.monotonic() < deadline, f"the hub never became {connected=}"
        await asyncio.sleep(0.02)


def conversation_of(frame: dict[str, Any]) -> int | None:
    """The conversation a stored event is about (None for events of other domains)."""
    data = frame.get("data") or {}
    kind = frame.get("type", "")
    if kind == "conversation.created":
        return int(data["id"])
    if kind == "conversation.participants_added":
        return int(data["conversation"]["id"])
    if kind.startswith("message."):
        return int(data["conversation_id"])
    return None


class Tab:
    """A page's socket: reads everything in the background, resumes with ?after=."""

    def __init__(self, server: LiveServer, person: Person, label: str) -> None:
        self.server = server
        self.person = person
        self.label = label
        self.frames: list[dict[str, Any]] = []
        self.first_seq: int | None = None
        self.last_seq = 0
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        return self.reader is not None and not self.reader.done()

    async def connect(self) -> None:
        query = "" if self.first_seq is None else f"?after={self.last_seq}"
        self.ws = await websockets.connect(
            f"{self.server.ws_url}{self.person.ws_path}{query}",
            additional_headers={"Cookie": self.person.cookie},
            origin=Origin(self.server.url),
            open_timeout=5,
        )
        ready = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read(self.ws, ready))
        await asyncio.wait_for(ready, 5)

    async def _read(self, ws: ClientConnection, ready: asyncio.Future[None]) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] == "ready":
                    if self.first_seq is None:
                        self.first_seq = self.last_seq = frame["seq"]
                    if not ready.done():
                        ready.set_result(None)
                    continue
                if "seq" in frame and "data" in frame:
                    assert frame["seq"] == self.last_seq + 1, (self.label, frame, self.last_seq)
                    self.last_seq = frame["seq"]
                    self.frames.append(frame)

    async def disconnect(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(BaseException):
                await self.reader
        self.ws = self.reader = None

    async def closed_by_server(self) -> None:
        if self.reader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.reader, 5)
        self.ws = self.reader = None

    def messages(self, cid: int) -> list[int]:
        return [
            int(f["data"]["id"])
            for f in self.frames
            if f["type"] == "message.created" and f["data"]["conversation_id"] == cid
        ]


async def test_delivery_state_machine(live_server: LiveServer, sign_in: SignIn, cast: Cast) -> None:
    broker: RedisServer | None = None
    if REDIS:
        require_service(shutil.which("redis-server") is not None, "redis-server")
        # A Redis of the test's own, so that it can be killed: the suite's is shared.
        broker = RedisServer(free_port())
        broker.start()
        await hub.stop()
        await hub.start(broker.url)
        await wait_hub(True)
    try:
        await _run_machine(live_server, sign_in, cast, broker)
    finally:
        if broker is not None:
            # Back on the suite's broker, so the fixtures stop the hub they started.
            await hub.stop()
            broker.kill()
            await hub.start(BROADCAST_URL)


async def _run_machine(
    live_server: LiveServer, sign_in: SignIn, cast: Cast, broker: RedisServer | None
) -> None:
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    # Signed in once; each example starts conversations and tabs of its own.
    people = {
        "alice": await sign_in(cast.alice),
        "bob": await sign_in(cast.bob),
        "helene": await sign_in(cast.helene),
        "other": await sign_in(cast.other),
    }

    def run(coro: Coroutine[Any, Any, Any], timeout: float = 20) -> Any:
        """Run a step on the test's loop (with its context: the database) and wait for it."""
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def start() -> None:
            task = loop.create_task(coro, context=context.copy())

            def finished(t: asyncio.Task[Any]) -> None:
                if t.cancelled():
                    done.cancel()
                elif t.exception() is not None:
                    done.set_exception(t.exception())  # type: ignore[arg-type]
                else:
                    done.set_result(t.result())

            task.add_done_callback(finished)

        loop.call_soon_threadsafe(start)
        return done.result(timeout)

    class Delivery(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.tabs = {name: Tab(live_server, p, name) for name, p in people.items()}
            # conversation id -> members (names) and, per member, the messages they must get.
            self.members: dict[int, set[str]] = {}
            self.owed: dict[int, dict[str, list[int]]] = {}
            self.conversations: list[int] = []
            # Per conversation and late joiner: the last message id before they joined.
            self.joined_after: dict[int, dict[str, int]] = {}
            self.broker_up = True
            run(self._start())

        async def _start(self) -> None:
            for tab in self.tabs.values():
                await tab.connect()
            for client, name in ((cast.helene, "helene"), (cast.other, "other")):
                cid = await start_conversation(people["alice"], client, f"With {name}")
                self.conversations.append(cid)
                self.members[cid] = {"alice", name}
                self.owed[cid] = {"alice": [], name: []}
                self.joined_after[cid] = {}

        def due(self, name: str, cid: int, stored: list[int]) -> list[int]:
            """The conversation's messages in the database that this member must get."""
            after = self.joined_after[cid].get(name, 0)
            return [m for m in stored if m > after]

        @rule(data=st.data(), which=st.integers(0, 1))
        def send_message(self, data: st.DataObject, which: int) -> None:
            cid = self.conversations[which]
            sender = data.draw(st.sampled_from(sorted(self.members[cid])))
            uid = f"{cid}-{sum(len(v) for v in self.owed[cid].values())}-{time.monotonic()}"
            mid = run(send(people[sender], cid, f"from {sender}", uid))
            for member in self.members[cid]:
                self.owed[cid][member].append(mid)

        @rule(data=st.data(), which=st.integers(0, 1))
        def read(self, data: st.DataObject, which: int) -> None:
            cid = self.conversations[which]
            reader = data.draw(st.sampled_from(sorted(self.members[cid])))
            person = people[reader]

            async def mark() -> None:
                r = await person.http.post(f"{person.api}/conversations/{cid}/read", json={})
                assert r.status_code == 200, r.text

            run(mark())

        @precondition(lambda self: "bob" not in self.members[self.conversations[0]])
        @rule()
        def add_bob(self) -> None:
            cid = self.conversations[0]
            # Bob is a member from the moment the request starts: its event may come first.
            self.members[cid].add("bob")
            self.owed[cid]["bob"] = []

            async def add() -> None:
                last = await Message.filter(conversation_id=cid).order_by("-id").first()
                self.joined_after[cid]["bob"] = int(last.id) if last is not None else 0
                r = await people["alice"].http.post(
                    f"/api/conversations/{cid}/participants",
                    json={"staff_ids": [cast.bob.id], "group_name": "Care team"},
                )
                assert r.status_code == 200, r.text

            run(add())

        @rule(name=st.sampled_from(["alice", "bob", "helene", "other"]))
        def disconnect(self, name: str) -> None:
            run(self.tabs[name].disconnect())

        @rule(name=st.sampled_from(["alice", "bob", "helene", "other"]))
        def reconnect(self, name: str) -> None:
            tab = self.tabs[name]
            if not tab.open:
                run(tab.connect())

        @rule()
        def restart_broker(self) -> None:
            async def restart() -> None:
                await hub.stop()
                for tab in self.tabs.values():
                    await tab.closed_by_server()
                await hub.start(BROADCAST_URL)

            async def kill_and_restart(redis: RedisServer) -> None:
                redis.kill()
                await wait_hub(False)
                # Sending keeps working while Redis is away (this process hands its own
                # sockets what it commits); the tabs stay open.
                cid = self.conversations[0]
                uid = f"outage-{cid}-{time.monotonic()}"
                mid = await send(people["alice"], cid, "while Redis is down", uid)
                for member in self.members[cid]:
                    self.owed[cid][member].append(mid)
                redis.start()
                await wait_hub(True)

            run(restart() if broker is None else kill_and_restart(broker))

        @invariant()
        def nobody_hears_of_conversations_they_are_not_in(self) -> None:
            mine = set(self.conversations)
            _, in_database = run(database_view(self.conversations))
            for name, tab in self.tabs.items():
                for frame in list(tab.frames):
                    cid = conversation_of(frame)
                    if cid is None or cid not in mine:
                        # Other examples' conversations: their tabs started after those ended.
                        assert cid is None, (name, frame)
                        continue
                    assert name in self.members[cid], (name, frame)
                    assert people[name].recipient in in_database[cid], (name, frame)

        @invariant()
        def every_tab_holds_a_prefix_of_the_database(self) -> None:
            stored, _ = run(database_view(self.conversations))
            for cid in self.conversations:
                # What was acknowledged is what is stored.
                assert self.owed[cid]["alice"] == stored[cid], (cid, stored[cid])
                for name in self.tabs:
                    got = self.tabs[name].messages(cid)
                    due = self.due(name, cid, stored[cid]) if name in self.members[cid] else []
                    assert got == due[: len(got)], (name, cid, got, due)

        def teardown(self) -> None:
            run(self._finish(), timeout=30)

        async def _finish(self) -> None:
            try:
                for tab in self.tabs.values():
                    if not tab.open:
                        await tab.connect()
                stored, in_database = await database_view(self.conversations)
                for cid in self.conversations:
                    # Exactly the members the database lists, and exactly what it holds.
                    assert {people[n].recipient for n in self.members[cid]} == in_database[cid]
                    for name, owed in self.owed[cid].items():
                        due = self.due(name, cid, stored[cid])
                        assert owed == due, (name, cid, owed, due)
                        tab = self.tabs[name]
                        # Wait while frames still arrive (half a second of quiet ends it).
                        count, quiet = len(tab.frames), 0
                        while tab.messages(cid) != due and quiet < 25:
                            await asyncio.sleep(0.02)
                            quiet = quiet + 1 if len(tab.frames) == count else 0
                            count = len(tab.frames)
                        assert tab.messages(cid) == due, (name, cid, tab.messages(cid), due)
            finally:
                for tab in self.tabs.values():
                    await tab.disconnect()

    await loop.run_in_executor(
        None,
        lambda: run_state_machine_as_test(
            Delivery,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        ),
    )
