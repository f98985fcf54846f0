"""Several web processes behind one database and one Redis, as in production.

Each test starts its own redis-server on a free port (so it can kill it, and so nothing else
talking on the shared Redis can blur what these processes say to each other) and two real
uvicorn processes serving the app factory, both on a fresh database: a PostgreSQL database
of its own when the suite runs on PostgreSQL, else a SQLite file (WAL) the two share. A client
and a clinician sign in through the HTTP API and listen on real websockets.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from server import db as dbmod
from server.actions import agenda
from server.settings import ROOT, set_settings
from tests.conftest import (
    DATABASE_URL,
    IS_POSTGRES,
    PASSWORD,
    Factory,
    free_port,
    make_settings,
    port_open,
    postgres_available,
    postgres_connection,
    require_service,
)

SECRET_KEY = "cluster-test-secret-key"
# How long a web process may take to start (see WebProcess.wait_started).
STARTUP_SECONDS = 90
# How much longer than its bound a wait for the broker may poll (see wait_broker).
POLL_GRACE = 20


# --- a private redis-server ----------------------------------------------------------------


class RedisServer:
    """A throwaway redis-server: nothing saved, so a restart starts empty, like a crash."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not port_open("127.0.0.1", self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the subscribers, as when a Redis host dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    require_service(shutil.which("redis-server") is not None, "redis-server")
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


# --- a fresh database, shared by the processes ----------------------------------------------


def _with_path(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def _pg_admin(url: str, sql: str) -> None:
    conn = await postgres_connection(_with_path(url, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _migrate_only(url: str, tmp: Path) -> None:
    set_settings(make_settings(tmp, url))
    await dbmod.migrate(url)
    await dbmod.close_db()


# Migrated once per test session and copied for each test: applying every migration takes
# 15 to 30 s on CI's two cores, and a dozen tests here each want a database of their own.
_TEMPLATE: dict[str, str] = {}


def _drop_templates() -> None:
    if "pg" in _TEMPLATE:
        with contextlib.suppress(Exception):
            asyncio.run(
                _pg_admin(DATABASE_URL, f'DROP DATABASE IF EXISTS "{_TEMPLATE["pg"]}" WITH (FORCE)')
            )
    if "dir" in _TEMPLATE:
        shutil.rmtree(_TEMPLATE["dir"], ignore_errors=True)


atexit.register(_drop_templates)


async def _fresh_database(tmp_path: Path) -> tuple[str, str]:
    """(url, PostgreSQL database name or ""): a migrated, empty database for one test."""
    loop = asyncio.get_running_loop()
    if IS_POSTGRES:
        if "pg" not in _TEMPLATE:
            template = f"cabinet_cluster_tpl_{uuid.uuid4().hex[:10]}"
            await _pg_admin(DATABASE_URL, f'CREATE DATABASE "{template}"')
            _TEMPLATE["pg"] = template
            await loop.run_in_executor(
                None, asyncio.run, _migrate_only(_with_path(DATABASE_URL, template), tmp_path)
            )
        name = f"cabinet_cluster_{uuid.uuid4().hex[:10]}"
        await _pg_admin(DATABASE_URL, f'CREATE DATABASE "{name}" TEMPLATE "{_TEMPLATE["pg"]}"')
        return _with_path(DATABASE_URL, name), name
    if "sqlite" not in _TEMPLATE:
        folder = tempfile.mkdtemp(prefix="cabinet-cluster-")
        _TEMPLATE["dir"] = folder
        path = Path(folder) / "template.sqlite3"
        await loop.run_in_executor(None, asyncio.run, _migrate_only(f"sqlite://{path}", tmp_path))
        _TEMPLATE["sqlite"] = str(path)
    target = tmp_path / "cluster.sqlite3"
    shutil.copy(_TEMPLATE["sqlite"], target)
    return f"sqlite://{target}", ""


async def _seed(url: str, tmp: Path) -> dict[str, Any]:
    """Create a practice in a migrated database: a clinician, a colleague and a client with
    a portal."""
    set_settings(make_settings(tmp, url))
    await dbmod.init_db(url)
    try:
        make = Factory()
        clinician = await make.therapist(first_name="Alice", last_name="Martin")
        colleague = await make.therapist(first_name="Bruno", last_name="Petit")
        client = await make.client(clinician, first_name="Hélène", last_name="Dubois")
        account = await make.portal_account(client)
        # For the agenda: a place, a service and Alice's hours there.
        practice = await make.practice()
        office = await agenda.do_create_location(None, practice, name="Lyon")
        talk = await agenda.do_create_service(
            None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
        )
        return {
            "office": office.id,
            "talk": talk.id,
            "clinician": {"email": clinician.email, "id": clinician.id},
            "colleague": {"email": colleague.email, "id": colleague.id},
            "client": {"email": account.email, "id": client.id, "name": client.full_name},
        }
    finally:
        await dbmod.close_db()


class ClusterDatabase:
    def __init__(self, url: str, people: dict[str, Any]) -> None:
        self.url = url
        self.people = people


@pytest.fixture
async def cluster_db(tmp_path: Path) -> AsyncIterator[ClusterDatabase]:
    if IS_POSTGRES:
        require_service(postgres_available(), "PostgreSQL")
    # A database of our own: other tests may be truncating the suite's one right now.
    url, name = await _fresh_database(tmp_path)
    try:
        # On a loop of its own in a thread: a fresh Tortoise context, as the processes have.
        loop = asyncio.get_running_loop()
        people = await loop.run_in_executor(None, asyncio.run, _seed(url, tmp_path))
        yield ClusterDatabase(url, people)
    finally:
        if name:
            await _pg_admin(DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the web processes ----------------------------------------------------------------------


class WebProcess:
    """``uvicorn server.app:create_app --factory`` in a subprocess of its own."""

    def __init__(self, name: str, database_url: str, broadcast_url: str, tmp: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log_path = tmp / f"uvicorn-{name}.log"
        self.env = dict(
            os.environ,
            DATABASE_URL=database_url,
            BROADCAST_URL=broadcast_url,
            SECRET_KEY=SECRET_KEY,
            PUBLIC_URL=self.url,
            CABINET_ENV="test",
            CABINET_DATA_DIR=str(tmp),
            CABINET_EMBEDDED_WORKER="false",
            ARGON2_TIME_COST="1",
            ARGON2_MEMORY_KIB="1024",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "server.app:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--ws-per-message-deflate",
                    "false",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def broker_state(self, http: httpx.AsyncClient) -> tuple[bool, float] | None:
        """From /healthz: whether the hub is subscribed to its broker, and since when (on
        this machine's monotonic clock, as the server measured it); None if unreachable."""
        assert self.proc is not None and self.proc.poll() is None, self.log()
        try:
            answer = (await http.get(f"{self.url}/healthz")).json()
        except (httpx.HTTPError, ValueError):
            return None
        return bool(answer["broker"]), time.monotonic() - float(answer["broker_for"])

    async def wait_started(self) -> None:
        """Up and listening to its broker. Generous: starting a process that imports the
        whole app takes 2 s on a quiet machine and has taken over 15 s on a busy one; how
        fast a broker comes back after a fault is ``wait_broker``'s bound, not this one."""
        await self.wait_broker(within=STARTUP_SECONDS)

    async def wait_broker(self, connected: bool = True, within: float = 15) -> float:
        """Wait until the hub is (dis)connected; return when it changed, by its own clock.

        ``within`` bounds the server, not this poll: under a burst the test's own loop can
        be slow to read the answer, so the poll may go on a little longer (POLL_GRACE), and
        the bound is checked against the time the server says it changed."""
        started = time.monotonic()
        seen: list[str] = []
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                state = await self.broker_state(http)
                if state is not None and state[0] == connected:
                    changed_at = state[1]
                    break
                seen.append("unreachable" if state is None else f"{state[0]}")
                if time.monotonic() - started > within + POLL_GRACE:
                    raise AssertionError(
                        f"{self.name}: broker never {connected=} in {within} s; polls: "
                        f"{len(seen)}, last {seen[-3:]}\n{self.log()}"
                    )
                await asyncio.sleep(0.05)
        # Had it already changed before we asked, the wait is 0.
        took = max(0.0, changed_at - started)
        assert took <= within, f"{self.name}: broker {connected=} after {took:.1f} s\n{self.log()}"
        return changed_at

    def terminate(self) -> None:
        """Ask for a graceful stop (SIGTERM: uvicorn closes the sockets, the hub stops)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        try:
            return f"--- {self.name} log ---\n" + self.log_path.read_text()[-4000:]
        except OSError:
            return ""


StartCluster = Callable[..., Awaitable[tuple[WebProcess, WebProcess]]]


@pytest.fixture
async def start_cluster(
    redis_server: RedisServer, cluster_db: ClusterDatabase, tmp_path: Path
) -> AsyncIterator[StartCluster]:
    """``a, b = await start_cluster()``: two processes on the database and the Redis (B may
    reach Redis another way: ``broadcast_b=``). Always stopped, whatever the test did."""
    started: list[WebProcess] = []

    async def start(broadcast_b: str | None = None) -> tuple[WebProcess, WebProcess]:
        a = WebProcess("A", cluster_db.url, redis_server.url, tmp_path)
        b = WebProcess("B", cluster_db.url, broadcast_b or redis_server.url, tmp_path)
        started.extend((a, b))
        a.start()
        b.start()
        await asyncio.gather(a.wait_started(), b.wait_started())
        return a, b

    try:
        yield start
    finally:
        # Stopped before the database is dropped (fixtures unwind in reverse order).
        for process in started:
            process.terminate()
        for process in started:
            process.wait_stopped()


class CuttableLink:
    """A TCP relay to Redis that the test can cut and restore: one process's network
    partition, while the others keep talking to Redis."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.server: asyncio.Server | None = None
        self.transports: set[asyncio.BaseTransport] = set()
        self.pipes: set[asyncio.Task[None]] = set()

    async def restore(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for transport in list(self.transports):
            transport.abort()
        self.transports.clear()

    async def close(self) -> None:
        await self.cut()
        for task in list(self.pipes):
            task.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.transports.update((writer.transport, up_writer.transport))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self.pipes.add(task)
            task.add_done_callback(self.pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()


# --- people and their sockets -----------------------------------------------------------------


class Person:
    """Someone signed in once; the session works through either process."""

    def __init__(self, realm: str, email: str) -> None:
        self.realm = realm
        self.email = email
        self.cookie = ""
        self.csrf = ""
        self.api = "/api" if realm == "staff" else "/portal/api"
        self.ws_path = "/staff/ws" if realm == "staff" else "/portal/ws"

    async def sign_in(self, via: WebProcess) -> None:
        async with httpx.AsyncClient(base_url=via.url, timeout=10) as http:
            r = await http.post(
                f"{self.api}/session", json={"email": self.email, "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            name = "cabinet_staff" if self.realm == "staff" else "cabinet_portal"
            self.cookie = f"{name}={http.cookies[name]}"
            self.csrf = r.json()["csrf_token"]

    async def call(
        self, via: WebProcess, method: str, path: str, body: Any = None
    ) -> httpx.Response:
        async with httpx.AsyncClient(base_url=via.url, timeout=15) as http:
            r = await http.request(
                method,
                f"{self.api}{path}",
                json=body,
                headers={"Cookie": self.cookie, "X-CSRF-Token": self.csrf},
            )
        assert r.status_code == 200, f"{method} {path} via {via.name}: {r.status_code} {r.text}"
        return r

    async def send(self, via: WebProcess, cid: int, body: str, uid: str) -> int:
        r = await self.call(
            via, "POST", f"/conversations/{cid}/messages", {"body": body, "client_uid": uid}
        )
        return int(r.json()["id"])


class Listener:
    """A websocket that records everything it receives, and can roam to another process."""

    def __init__(self, person: Person, label: str) -> None:
        self.person = person
        self.label = label
        self.received: list[dict[str, Any]] = []
        self.start_seq: int | None = None
        self.ws: ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.readies = 0

    async def open(self, via: WebProcess, *, resume: bool = False) -> None:
        url = f"{via.ws_url}{self.person.ws_path}"
        if resume:
            url += f"?after={self.last_seq}"
        self.ws = await websockets.connect(
            url, additional_headers={"Cookie": self.person.cookie}, open_timeout=5
        )
        readies = self.readies
        self.task = asyncio.create_task(self._read(self.ws))
        await self.wait(lambda: self.readies > readies, f"ready from {via.name}")

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "ready":
                    self.readies += 1
                    if self.start_seq is None:
                        self.start_seq = message["seq"]
                    continue
                self.received.append(message)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            with contextlib.suppress(BaseException):
                await self.task
        self.ws = self.task = None

    @property
    def events(self) -> list[dict[str, Any]]:
        """What was stored for the recipient, in the order received (not typing, heartbeats)."""
        return [m for m in self.received if "data" in m and "seq" in m]

    @property
    def last_seq(self) -> int:
        seqs = [e["seq"] for e in self.events]
        return seqs[-1] if seqs else (self.start_seq or 0)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["type"] == type_]

    def created_ids(self) -> list[int]:
        return [e["data"]["id"] for e in self.of_type("message.created")]

    async def wait(self, done: Callable[[], bool], what: str, within: float = 10) -> None:
        deadline = time.monotonic() + within
        while not done():
            if time.monotonic() > deadline:
                types = [m["type"] for m in self.received]
                raise AssertionError(f"{self.label}: no {what} within {within}s; got {types}")
            await asyncio.sleep(0.02)

    async def next_of(self, type_: str, count: int = 1) -> dict[str, Any]:
        """The ``count``-th event of this type, once it has arrived."""
        await self.wait(lambda: len(self.of_type(type_)) >= count, f"{type_} #{count}")
        return self.of_type(type_)[count - 1]

    def assert_exactly_once_in_order(self) -> None:
        """Gapless seqs from where the socket started: nothing missed, nothing twice."""
        seqs = [e["seq"] for e in self.events]
        assert self.start_seq is not None
        expected = list(range(self.start_seq + 1, self.start_seq + 1 + len(seqs)))
        assert seqs == expected, f"{self.label}: seqs {seqs}"


@pytest.fixture
async def listeners() -> AsyncIterator[list[Listener]]:
    """Every socket a test opens, closed at the end whatever happened."""
    opened: list[Listener] = []
    try:
        yield opened
    finally:
        for listener in opened:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.close(), 5)


async def _people(db: ClusterDatabase, a: WebProcess, b: WebProcess) -> tuple[Person, Person]:
    client = Person("portal", db.people["client"]["email"])
    clinician = Person("staff", db.people["clinician"]["email"])
    await asyncio.gather(client.sign_in(a), clinician.sign_in(b))
    return client, clinician


async def _conversation(
    clinician: Person, via: WebProcess, db: ClusterDatabase, subject: str
) -> int:
    r = await clinician.call(
        via,
        "POST",
        "/conversations",
        {"kind": "client", "subject": subject, "client_id": db.people["client"]["id"]},
    )
    return int(r.json()["id"])


# --- the tests --------------------------------------------------------------------------------


async def test_every_event_crosses_processes(
    start_cluster: StartCluster, cluster_db: ClusterDatabase, listeners: list[Listener]
) -> None:
    a, b = await start_cluster()
    client, clinician = await _people(cluster_db, a, b)
    people = cluster_db.people
    client_ws = Listener(client, "client socket on A")
    clinician_ws = Listener(clinician, "clinician socket on B")
    listeners += [client_ws, clinician_ws]
    await asyncio.gather(client_ws.open(a), clinician_ws.open(b))

    # The clinician starts the conversation through B; the client hears of it on A.
    cid = await _conversation(clinician, b, cluster_db, "Across")
    created = await client_ws.next_of("conversation.created")
    assert created["data"]["id"] == cid and created["data"]["subject"] == "Across"
    assert (await clinician_ws.next_of("conversation.created"))["data"]["id"] == cid

    # A message through A reaches the socket on B, and the reverse.
    m1 = await client.send(a, cid, "Bonjour, depuis A", "c-1")
    got = await clinician_ws.next_of("message.created")
    assert got["data"]["id"] == m1 and got["data"]["body"] == "Bonjour, depuis A"
    assert got["data"]["sender"]["role"] == "client"
    m2 = await clinician.send(b, cid, "Hello from B", "s-1")
    got = await client_ws.next_of("message.created", 2)
    assert got["data"]["id"] == m2 and got["data"]["body"] == "Hello from B"

    # Read receipts, both ways.
    await client.call(a, "POST", f"/conversations/{cid}/read", {})
    read = await clinician_ws.next_of("message.read")
    assert read["data"]["message_ids"] == [m2]
    assert read["data"]["reader"]["name"] == people["client"]["name"]
    await clinician.call(b, "POST", f"/conversations/{cid}/read", {})
    read = await client_ws.next_of("message.read", 2)
    assert read["data"]["message_ids"] == [m1]

    # A deletion before anyone read it.
    m3 = await clinician.send(b, cid, "Oops", "s-2")
    await clinician.call(b, "DELETE", f"/messages/{m3}")
    deleted = await client_ws.next_of("message.deleted")
    assert deleted["data"] == {"conversation_id": cid, "message_id": m3}

    # A colleague joins through B: the client on A learns who.
    colleague = people["colleague"]
    await clinician.call(
        b,
        "POST",
        f"/conversations/{cid}/participants",
        {"staff_ids": [colleague["id"]], "group_name": "Care team"},
    )
    added = await client_ws.next_of("conversation.participants_added")
    assert [p["staff_id"] for p in added["data"]["added"]] == [colleague["id"]]

    # Typing crosses too; it is pushed, not stored, so it has no seq and only a live
    # subscription to Redis can carry it (no database resync would).
    await client.call(a, "POST", f"/conversations/{cid}/typing")
    typing = await clinician_ws.next_of("typing")
    assert "seq" not in typing
    assert typing["data"]["conversation_id"] == cid
    assert set(typing["data"]) == {"conversation_id", "participant_id"}  # no name crosses

    expected = [
        "conversation.created",
        "message.created",
        "message.created",
        "message.read",
        "message.read",
        "message.created",
        "message.deleted",
        "conversation.participants_added",
    ]
    for listener in (client_ws, clinician_ws):
        await listener.wait(lambda lst=listener: len(lst.events) >= len(expected), "all events")
        assert [e["type"] for e in listener.events] == expected, listener.label
        listener.assert_exactly_once_in_order()

    # The client's tab drops; two messages are sent through B meanwhile; the tab comes back
    # on B with ?after= and gets exactly those two, before its "ready".
    await client_ws.close()
    m4 = await clinician.send(b, cid, "While you were away (1)", "s-3")
    m5 = await clinician.send(b, cid, "While you were away (2)", "s-4")
    await client_ws.open(b, resume=True)
    assert client_ws.created_ids()[-2:] == [m4, m5]
    assert client_ws.created_ids().count(m4) == 1
    client_ws.assert_exactly_once_in_order()

    # Presence. Process A knows that the clinician is online on B...
    async def online_seen_from_a() -> bool:
        thread = (await client.call(a, "GET", f"/conversations/{cid}")).json()
        (mine,) = [p for p in thread["participants"] if p["staff_id"] == people["clinician"]["id"]]
        return bool(mine["online"])

    deadline = time.monotonic() + 6
    while not await online_seen_from_a():
        assert time.monotonic() < deadline, "A never saw the clinician online on B"
        await asyncio.sleep(0.1)
    # ...a clinician tab opening on A is pushed to the client's socket on B...
    tab_on_a = Listener(clinician, "clinician tab on A")
    listeners.append(tab_on_a)
    await tab_on_a.open(a)
    presence = await client_ws.next_of("presence")
    assert presence == {
        "type": "presence",
        "data": {"staff_id": people["clinician"]["id"], "online": True},
    }
    # ...and once both tabs are closed, whichever process decides "gone" after the grace
    # period must not be fooled by the other's stale "still here".
    await asyncio.gather(tab_on_a.close(), clinician_ws.close())
    left = await client_ws.next_of("presence", 2)
    assert left["data"] == {"staff_id": people["clinician"]["id"], "online": False}
    assert not await online_seen_from_a()


async def test_redis_restart_mid_burst_loses_and_repeats_nothing(
    start_cluster: StartCluster,
    cluster_db: ClusterDatabase,
    redis_server: RedisServer,
    listeners: list[Listener],
) -> None:
    a, b = await start_cluster()
    client, clinician = await _people(cluster_db, a, b)
    # Every recipient listens on both processes; one clinician tab will also roam from A to B
    # (with ?after=) while Redis is down.
    sockets = {
        "client on A": (Listener(client, "client on A"), a),
        "client on B": (Listener(client, "client on B"), b),
        "clinician on A": (Listener(clinician, "clinician on A"), a),
        "clinician on B": (Listener(clinician, "clinician on B"), b),
        "roaming": (Listener(clinician, "clinician roaming from A to B"), a),
    }
    listeners += [s for s, _ in sockets.values()]
    await asyncio.gather(*(s.open(via) for s, via in sockets.values()))
    everyone = [s for s, _ in sockets.values()]
    roaming = sockets["roaming"][0]

    cid = await _conversation(clinician, b, cluster_db, "Burst")
    for s in everyone:
        await s.next_of("conversation.created")

    sent: dict[str, list[int]] = {"client": [], "clinician": []}
    ten_sent = asyncio.Event()
    stop = asyncio.Event()

    def total() -> int:
        return len(sent["client"]) + len(sent["clinician"])

    async def burst(who: Person, key: str) -> None:
        # Through both processes in turn, so that both commit while Redis is away, while the
        # hubs reconnect, and after.
        i = 0
        while not stop.is_set():
            via = a if i % 2 == 0 else b
            sent[key].append(await who.send(via, cid, f"{key} {i}", f"{key}-{i}"))
            if total() >= 10:
                ten_sent.set()
            i += 1
            await asyncio.sleep(0.1)

    async def outage() -> tuple[int, int]:
        await ten_sent.wait()
        redis_server.kill()
        before = total()
        # A tab drops now and resumes on the other process during the outage.
        await roaming.close()
        await roaming.open(b, resume=True)
        await asyncio.sleep(1.5)
        during = total() - before
        redis_server.start()
        await asyncio.gather(a.wait_broker(), b.wait_broker())
        stop.set()
        return before, during

    started = time.monotonic()
    *_, (before, during) = await asyncio.gather(
        burst(client, "client"), burst(clinician, "clinician"), outage()
    )
    assert before >= 10 and during >= 4, (before, during)

    # The subscriptions themselves are live again: typing is never resynced from the
    # database, so only Redis can bring it from A to B.
    await client.call(a, "POST", f"/conversations/{cid}/typing")
    await sockets["clinician on B"][0].next_of("typing")

    # No message is sent after the burst: the last ones must arrive on their own.
    everything = sent["client"] + sent["clinician"]
    for s in everyone:
        await s.wait(lambda s=s: len(s.created_ids()) >= len(everything), "every message", 20)
    took = time.monotonic() - started

    reference = everyone[0].created_ids()
    assert sorted(reference) == sorted(everything)
    # Each sender's messages arrive in the order they were sent...
    for key in ("client", "clinician"):
        assert [m for m in reference if m in set(sent[key])] == sent[key], key
    for s in everyone:
        s.assert_exactly_once_in_order()
        # ...and recipients lock their cursors in one order, so every socket agrees.
        assert s.created_ids() == reference, s.label
    assert took < 30, took


async def test_a_process_cut_off_from_redis_tells_the_others_what_they_missed(
    start_cluster: StartCluster,
    cluster_db: ClusterDatabase,
    redis_server: RedisServer,
    listeners: list[Listener],
) -> None:
    # B reaches Redis through a link the test can cut; A never loses Redis, so A never has
    # a reason to look in the database by itself.
    link = CuttableLink(redis_server.port)
    await link.restore()
    try:
        a, b = await start_cluster(broadcast_b=link.url)
        client, clinician = await _people(cluster_db, a, b)
        client_ws = Listener(client, "client on A")
        clinician_ws = Listener(clinician, "clinician on B")
        listeners += [client_ws, clinician_ws]
        await asyncio.gather(client_ws.open(a), clinician_ws.open(b))
        cid = await _conversation(clinician, a, cluster_db, "Partition")
        for s in (client_ws, clinician_ws):
            await s.next_of("conversation.created")

        await link.cut()
        await b.wait_broker(connected=False)
        # A commits while B cannot hear; then B commits while it cannot tell anyone. (In
        # this order: a later event for the client, handed to A's socket, would reveal the
        # gap and fill it from the database.)
        from_a = await client.send(a, cid, "said while B was away", "c-cut")
        from_b = await clinician.send(b, cid, "said while cut off", "s-cut")
        await link.restore()
        await b.wait_broker()

        # B resyncs its own sockets; A's socket learns of B's message only because B sends
        # the notice it owed once it is back.
        await clinician_ws.wait(lambda: from_a in clinician_ws.created_ids(), "A's message")
        await client_ws.wait(lambda: from_b in client_ws.created_ids(), "B's message")
        for s in (client_ws, clinician_ws):
            assert sorted(s.created_ids()) == sorted([from_a, from_b]), s.label
            s.assert_exactly_once_in_order()
    finally:
        await link.close()


async def test_an_agenda_change_through_one_process_reaches_sockets_on_the_other(
    start_cluster: StartCluster, cluster_db: ClusterDatabase, listeners: list[Listener]
) -> None:
    a, b = await start_cluster()
    people = cluster_db.people
    client, clinician = await _people(cluster_db, a, b)
    colleague = Person("staff", people["colleague"]["email"])
    await colleague.sign_in(b)
    desk_ws = Listener(colleague, "colleague's agenda on B")
    client_ws = Listener(client, "client's portal on B")
    listeners.extend([desk_ws, client_ws])
    await asyncio.gather(desk_ws.open(b), client_ws.open(b))
    start = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    r = await clinician.call(
        a,
        "POST",
        "/appointments",
        {
            "practitioner_id": people["clinician"]["id"],
            "client_id": people["client"]["id"],
            "service_id": people["talk"],
            "location_id": people["office"],
            "starts_at": start.isoformat(),
        },
    )
    booked = r.json()["id"]
    for ws in (desk_ws, client_ws):
        event = await ws.next_of("appointment.changed")
        assert event["data"]["id"] == booked
    await clinician.call(
        a, "POST", f"/appointments/{booked}/attendance", {"attendance": "attended"}
    )
    changed = await desk_ws.next_of("appointment.changed", 2)
    assert changed["data"]["attendance"] == "attended"
    desk_ws.assert_exactly_once_in_order()
