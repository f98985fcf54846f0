"""Realtime delivery as a Hypothesis state machine, against a real server and real sockets.

Rules, in any order: send, read, add a participant, a tab disconnects, a tab reconnects (with
``?after=`` its last seq, as the page does), the broker connection restarts (the hub stops,
which closes every socket with 1012, and starts again). Invariants: nobody ever receives an
event of a conversation they are not in; at the end every participant's tab holds exactly
the conversation's messages (since they joined), each once, in order, with gapless seqs.

Hypothesis runs the machine in a worker thread; each step runs its coroutine on the test's
event loop, where the live server, the database and the hub live.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import json
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

from realtime.hub import hub
from tests import test_realtime as protocol
from tests.conftest import BROADCAST_URL, LiveServer
from tests.test_realtime import Cast, Person, SignIn, send, start_conversation

pytestmark = [pytest.mark.usefixtures("settled_hub"), pytest.mark.timeout(240)]
# The protocol tests' fixtures, used here by name.
sign_in = protocol.sign_in
cast = protocol.cast

EXAMPLES = 8
STEPS = 14


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
            run(self._start())

        async def _start(self) -> None:
            for tab in self.tabs.values():
                await tab.connect()
            for client, name in ((cast.helene, "helene"), (cast.other, "other")):
                cid = await start_conversation(people["alice"], client, f"With {name}")
                self.conversations.append(cid)
                self.members[cid] = {"alice", name}
                self.owed[cid] = {"alice": [], name: []}

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

            run(restart())

        @invariant()
        def nobody_hears_of_conversations_they_are_not_in(self) -> None:
            mine = set(self.conversations)
            for name, tab in self.tabs.items():
                for frame in list(tab.frames):
                    cid = conversation_of(frame)
                    if cid is None or cid not in mine:
                        # Other examples' conversations: their tabs started after those ended.
                        assert cid is None, (name, frame)
                        continue
                    assert name in self.members[cid], (name, frame)

        def teardown(self) -> None:
            run(self._finish(), timeout=30)

        async def _finish(self) -> None:
            try:
                for tab in self.tabs.values():
                    if not tab.open:
                        await tab.connect()
                for cid in self.conversations:
                    for name, owed in self.owed[cid].items():
                        tab = self.tabs[name]
                        # Wait while frames still arrive (half a second of quiet ends it).
                        count, quiet = len(tab.frames), 0
                        while tab.messages(cid) != owed and quiet < 25:
                            await asyncio.sleep(0.02)
                            quiet = quiet + 1 if len(tab.frames) == count else 0
                            count = len(tab.frames)
                        assert tab.messages(cid) == owed, (name, cid, tab.messages(cid), owed)
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
