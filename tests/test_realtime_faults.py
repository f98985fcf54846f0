"""Faults, with nothing lost: Redis killed or away, PostgreSQL restarted, a web process killed,
the same send three times at once.

Built on tests/test_realtime_cluster.py's harness (a private redis-server, two real uvicorn
processes, people signed in through the HTTP API, recording websockets). Every test checks
what the sockets saw against what the database holds: each message once, in its
conversation's order, and only for the conversation's participants.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from server import db as dbmod
from server.settings import ROOT, set_settings
from tests import test_realtime_cluster as cluster
from tests.conftest import free_port, make_settings, postgres_connection, require_service
from tests.test_realtime_cluster import (
    ClusterDatabase,
    Listener,
    Person,
    RedisServer,
    StartCluster,
    WebProcess,
    _conversation,
    _people,
)

# The cluster harness's fixtures, used here by name.
redis_server = cluster.redis_server
cluster_db = cluster.cluster_db
start_cluster = cluster.start_cluster
listeners = cluster.listeners

pytestmark = pytest.mark.timeout(180)

# The issue asks for Redis away for 60 s; CI waits less (same behaviour, shorter). Set
# CABINET_FAULT_REDIS_DOWN=60 to run it at full length.
REDIS_DOWN_SECONDS = float(os.environ.get("CABINET_FAULT_REDIS_DOWN", "8"))


# --- what the database holds ----------------------------------------------------------------


async def stored_messages(url: str, conversation_ids: list[int]) -> dict[int, list[int]]:
    """Message ids per conversation, in the order the database gives them (by id)."""
    marks = ",".join(str(int(c)) for c in conversation_ids)
    sql = f"SELECT id, conversation_id FROM message WHERE conversation_id IN ({marks}) ORDER BY id"
    rows: list[tuple[int, int]]
    if url.startswith("sqlite://"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite://"))) as conn:
            rows = [(int(r[0]), int(r[1])) for r in conn.execute(sql)]
    else:
        conn = await postgres_connection(url)
        try:
            rows = [(int(r[0]), int(r[1])) for r in await conn.fetch(sql)]
        finally:
            await conn.close()
    out: dict[int, list[int]] = {c: [] for c in conversation_ids}
    for mid, cid in rows:
        out[cid].append(mid)
    return out


async def stored_uids(url: str) -> list[str]:
    sql = "SELECT client_uid FROM message WHERE client_uid IS NOT NULL"
    if url.startswith("sqlite://"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite://"))) as conn:
            return [str(r[0]) for r in conn.execute(sql)]
    conn = await postgres_connection(url)
    try:
        return [str(r[0]) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def by_conversation(listener: Listener) -> dict[int, list[int]]:
    """What a socket saw: message ids per conversation, in the order they arrived."""
    out: dict[int, list[int]] = {}
    for e in listener.of_type("message.created"):
        out.setdefault(int(e["data"]["conversation_id"]), []).append(int(e["data"]["id"]))
    return out


def assert_saw_exactly(listener: Listener, expected: dict[int, list[int]]) -> None:
    """Every message of its conversations once, in the database's order, and nothing of
    any other conversation."""
    seen = by_conversation(listener)
    assert set(seen) == {c for c, ids in expected.items() if ids}, listener.label
    for cid, ids in expected.items():
        assert seen.get(cid, []) == ids, f"{listener.label}, conversation {cid}"
    listener.assert_exactly_once_in_order()


async def try_send(
    who: Person, via: WebProcess, cid: int, body: str, uid: str
) -> tuple[int, int | None]:
    """(status, message id): 0 when the request itself failed (a process that died)."""
    try:
        async with httpx.AsyncClient(base_url=via.url, timeout=15) as http:
            r = await http.post(
                f"{who.api}/conversations/{cid}/messages",
                json={"body": body, "client_uid": uid},
                headers={"Cookie": who.cookie, "X-CSRF-Token": who.csrf},
            )
    except httpx.HTTPError:
        return 0, None
    return r.status_code, (int(r.json()["id"]) if r.status_code == 200 else None)


async def wait_all(sockets: list[Listener], total: int, within: float) -> None:
    await asyncio.gather(
        *(
            s.wait(lambda s=s: len(s.created_ids()) >= total, f"{total} messages", within)
            for s in sockets
        )
    )


# --- Redis killed during a burst of 1,000 messages over 20 conversations ----------------------


async def test_redis_killed_during_a_1000_message_burst_and_back_5_s_later(
    start_cluster: StartCluster,
    cluster_db: ClusterDatabase,
    redis_server: RedisServer,
    listeners: list[Listener],
) -> None:
    a, b = await start_cluster()
    client, clinician = await _people(cluster_db, a, b)
    colleague = Person("staff", cluster_db.people["colleague"]["email"])
    await colleague.sign_in(a)
    conversations = [
        await _conversation(clinician, a if i % 2 else b, cluster_db, f"Burst {i}")
        for i in range(20)
    ]
    # The colleague is in every other conversation only: they must hear of no other.
    for cid in conversations[::2]:
        await clinician.call(
            a,
            "POST",
            f"/conversations/{cid}/participants",
            {"staff_ids": [cluster_db.people["colleague"]["id"]], "group_name": "Team"},
        )
    sockets = [
        (Listener(client, "client on A"), a),
        (Listener(client, "client on B"), b),
        (Listener(clinician, "clinician on A"), a),
        (Listener(clinician, "clinician on B"), b),
        (Listener(colleague, "colleague on B"), b),
    ]
    listeners += [s for s, _ in sockets]
    await asyncio.gather(*(s.open(via) for s, via in sockets))

    total = 1000
    workers = 20  # one per conversation: each conversation has one sending order
    sent: dict[int, list[int]] = {cid: [] for cid in conversations}
    failures: list[tuple[int, str]] = []
    progress = asyncio.Event()

    async def worker(w: int) -> None:
        mine = conversations[w::workers]
        for i in range(total // workers):
            cid = mine[i % len(mine)]
            who = client if i % 3 else clinician
            via = a if (i + w) % 2 else b
            status, mid = await try_send(who, via, cid, f"w{w} #{i}", f"w{w}-{i}")
            if mid is None:
                failures.append((status, f"w{w}-{i}"))
                continue
            sent[cid].append(mid)
            if sum(len(v) for v in sent.values()) >= 200:
                progress.set()

    async def outage() -> float:
        await progress.wait()
        redis_server.kill()
        await asyncio.sleep(5)
        redis_server.start()
        back = time.monotonic()
        # When each hub says it was subscribed again (the test's own loop is busy).
        again = await asyncio.gather(a.wait_broker(within=10), b.wait_broker(within=10))
        return max(again) - back

    results = await asyncio.gather(*(worker(w) for w in range(workers)), outage())
    recovered_in = results[-1]
    assert failures == [], failures[:5]
    assert recovered_in < 10, recovered_in

    stored = await stored_messages(cluster_db.url, conversations)
    # Nothing lost, nothing twice: the database holds exactly what was acknowledged, and
    # each conversation in the order its sender sent.
    assert sum(len(v) for v in stored.values()) == total
    assert stored == sent
    everyone = [s for s, _ in sockets]
    await wait_all(everyone[:4], total, within=30)
    colleague_share = {c: ids for c, ids in stored.items() if c in conversations[::2]}
    await wait_all(everyone[4:], sum(len(v) for v in colleague_share.values()), within=30)
    for s in everyone[:4]:
        assert_saw_exactly(s, stored)
    assert_saw_exactly(everyone[4], colleague_share)


# --- Redis away for a long while ----------------------------------------------------------


async def test_with_redis_down_sending_keeps_working_and_delivery_resumes(
    start_cluster: StartCluster,
    cluster_db: ClusterDatabase,
    redis_server: RedisServer,
    listeners: list[Listener],
) -> None:
    a, b = await start_cluster()
    client, clinician = await _people(cluster_db, a, b)
    cid = await _conversation(clinician, a, cluster_db, "Outage")
    client_a, clinician_b = Listener(client, "client on A"), Listener(clinician, "clinician on B")
    listeners += [client_a, clinician_b]
    await asyncio.gather(client_a.open(a), clinician_b.open(b))

    redis_server.kill()
    await asyncio.gather(a.wait_broker(connected=False), b.wait_broker(connected=False))
    statuses: list[int] = []
    sent: list[int] = []
    deadline = time.monotonic() + REDIS_DOWN_SECONDS
    i = 0
    while time.monotonic() < deadline:
        via, who = (a, client) if i % 2 else (b, clinician)
        status, mid = await try_send(who, via, cid, f"during the outage {i}", f"out-{i}")
        statuses.append(status)
        if mid is not None:
            sent.append(mid)
        # The page keeps working around the message too (typing is simply not delivered).
        async with httpx.AsyncClient(base_url=via.url, timeout=15) as http:
            typing = await http.post(
                f"{who.api}/conversations/{cid}/typing",
                headers={"Cookie": who.cookie, "X-CSRF-Token": who.csrf},
            )
            thread = await http.get(
                f"{who.api}/conversations/{cid}", headers={"Cookie": who.cookie}
            )
        statuses += [typing.status_code, thread.status_code]
        i += 1
        await asyncio.sleep(0.2)
    assert set(statuses) == {200}, statuses
    assert len(sent) >= 10
    # Each process hands what it commits to its own sockets: the client on A has A's
    # messages already, Redis or not.
    from_a = sent[1::2]
    await client_a.wait(lambda: set(from_a) <= set(client_a.created_ids()), "A's own messages")

    redis_server.start()
    await asyncio.gather(a.wait_broker(within=10), b.wait_broker(within=10))
    await wait_all([client_a, clinician_b], len(sent), within=15)
    stored = await stored_messages(cluster_db.url, [cid])
    assert stored[cid] == sent
    for s in (client_a, clinician_b):
        assert_saw_exactly(s, stored)
    # And live again: the next message crosses at once.
    status, last = await try_send(clinician, b, cid, "back to normal", "after")
    assert status == 200
    await client_a.wait(lambda: last in client_a.created_ids(), "the message after", 5)


# --- a web process killed ---------------------------------------------------------------------


async def test_a_killed_web_process_s_clients_resume_on_the_other(
    start_cluster: StartCluster, cluster_db: ClusterDatabase, listeners: list[Listener]
) -> None:
    a, b = await start_cluster()
    client, clinician = await _people(cluster_db, a, b)
    cid = await _conversation(clinician, b, cluster_db, "Survivor")
    on_a = [Listener(client, "client on A"), Listener(clinician, "clinician on A")]
    witness = Listener(clinician, "clinician on B")
    listeners += [*on_a, witness]
    await asyncio.gather(*(s.open(a) for s in on_a), witness.open(b))

    acknowledged: list[int] = []
    killed = asyncio.Event()
    halfway = asyncio.Event()

    async def burst(who: Person, key: str) -> None:
        for i in range(60):
            uid = f"{key}-{i}"
            via = a if i % 2 and not killed.is_set() else b
            status, mid = await try_send(who, via, cid, f"{key} {i}", uid)
            if mid is None:
                # A went away under the request: the page retries, same client id, on B.
                status, mid = await try_send(who, b, cid, f"{key} {i}", uid)
            assert status == 200 and mid is not None, (status, uid)
            acknowledged.append(mid)
            if len(acknowledged) >= 30:
                halfway.set()
            await asyncio.sleep(0.02)

    async def kill_a() -> None:
        await halfway.wait()
        assert a.proc is not None
        a.proc.kill()  # SIGKILL: no goodbye to its sockets
        a.proc.wait(5)
        killed.set()
        # The tabs notice their socket died and come back, to the surviving process.
        for s in on_a:
            await s.wait(lambda s=s: s.task is not None and s.task.done(), "the drop", 5)
            await s.open(b, resume=True)

    await asyncio.gather(burst(client, "c"), burst(clinician, "s"), kill_a())
    stored = await stored_messages(cluster_db.url, [cid])
    assert sorted(stored[cid]) == sorted(acknowledged) and len(acknowledged) == 120
    await wait_all([*on_a, witness], 120, within=15)
    for s in [*on_a, witness]:
        assert_saw_exactly(s, stored)


# --- the same send three times at once -----------------------------------------------------


async def test_the_same_client_id_three_times_at_once_is_one_message(
    start_cluster: StartCluster, cluster_db: ClusterDatabase, listeners: list[Listener]
) -> None:
    a, b = await start_cluster()
    client, clinician = await _people(cluster_db, a, b)
    cid = await _conversation(clinician, a, cluster_db, "Thrice")
    witness = Listener(clinician, "clinician on B")
    listeners.append(witness)
    await witness.open(b)
    for round_ in range(5):
        uid = f"same-{round_}"
        # Through both processes at once, as a page retrying over a flaky link might.
        answers = await asyncio.gather(
            *(try_send(client, via, cid, "only once", uid) for via in (a, b, a))
        )
        assert [s for s, _ in answers] == [200, 200, 200], answers
        assert len({mid for _, mid in answers}) == 1, answers
    stored = await stored_messages(cluster_db.url, [cid])
    assert len(stored[cid]) == 5
    await wait_all([witness], 5, within=10)
    await asyncio.sleep(0.3)  # a second event for the same message would be here by now
    assert_saw_exactly(witness, stored)


# --- PostgreSQL restarted mid-burst ---------------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own (initdb in a temp dir, a free port), so it can
    be crashed and restarted; the shared server is never touched."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="cabinet-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/cabinet"
        # initdb refuses to run as root: run the server as the postgres user then.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            shutil.chown(self.dir, "postgres")

    def _run(self, *argv: str) -> None:
        done = subprocess.run(
            [*self.prefix, *argv], capture_output=True, text=True, timeout=60, cwd=self.dir
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stdout}\n{done.stderr}\n{self.log()}")

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E",
            "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        # fsync off: the operating system survives a PostgreSQL crash, so whatever was
        # committed is in its cache and crash recovery finds it in the WAL all the same.
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
            str(self.dir / "log"), "-w", "-t", "30", "start",
        )  # fmt: skip

    def crash(self) -> None:
        """Stop without a checkpoint, as when the server dies; the next start recovers."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.dir / "log").read_text()[-3000:]
        except OSError:
            return ""


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    bin_dir = _pg_bin()
    require_service(bin_dir is not None, "PostgreSQL server binaries (initdb, pg_ctl)")
    assert bin_dir is not None
    require_service(os.geteuid() != 0 or shutil.which("runuser") is not None, "runuser")
    server = PrivatePostgres(bin_dir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def private_db(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> AsyncIterator[ClusterDatabase]:
    import asyncpg

    admin = await asyncpg.connect(
        f"postgresql://postgres@127.0.0.1:{private_postgres.port}/postgres"
    )
    try:
        await admin.execute('CREATE DATABASE "cabinet"')
    finally:
        await admin.close()
    # Seeded in a process of its own: this one's Tortoise may be bound to SQLite (the suite's
    # database), and its models would then speak SQLite's dialect to PostgreSQL.
    seed = (
        "import asyncio, json, sys\n"
        "from pathlib import Path\n"
        "from tests.test_realtime_cluster import _migrate_only, _seed\n"
        "asyncio.run(_migrate_only(sys.argv[1], Path(sys.argv[2])))\n"
        "print(json.dumps(asyncio.run(_seed(sys.argv[1], Path(sys.argv[2])))))\n"
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", seed, private_postgres.url, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    people = json.loads(done.stdout.strip().splitlines()[-1])
    yield ClusterDatabase(private_postgres.url, people)


async def test_postgres_restarted_mid_burst_loses_no_acknowledged_message(
    private_postgres: PrivatePostgres,
    private_db: ClusterDatabase,
    redis_server: RedisServer,
    tmp_path: Path,
    listeners: list[Listener],
) -> None:
    web = WebProcess("A", private_db.url, redis_server.url, tmp_path)
    web.start()
    try:
        await web.wait_started()
        client = Person("portal", private_db.people["client"]["email"])
        clinician = Person("staff", private_db.people["clinician"]["email"])
        await asyncio.gather(client.sign_in(web), clinician.sign_in(web))
        cid = await _conversation(clinician, web, private_db, "Database restart")
        tab = Listener(client, "client")
        listeners.append(tab)
        await tab.open(web)

        acknowledged: dict[str, int] = {}
        refused: list[int] = []
        started = asyncio.Event()

        async def burst(who: Person, key: str) -> None:
            for i in range(40):
                uid = f"{key}-{i}"
                deadline = time.monotonic() + 30
                # The page retries a failed send with the same client id until it lands.
                while True:
                    status, mid = await try_send(who, web, cid, f"{key} {i}", uid)
                    if mid is not None:
                        assert acknowledged.setdefault(uid, mid) == mid, uid
                        break
                    refused.append(status)
                    assert time.monotonic() < deadline, f"{uid} never landed: {refused[-5:]}"
                    await asyncio.sleep(0.2)
                if len(acknowledged) >= 20:
                    started.set()

        async def restart() -> None:
            await started.wait()
            private_postgres.crash()
            await asyncio.sleep(2)
            private_postgres.start()

        await asyncio.gather(burst(client, "c"), burst(clinician, "s"), restart())
        assert refused, "the restart came too late to matter"
        # Refused while the database was away, with an answer the page can act on.
        assert set(refused) <= {503}, refused

        uids = await stored_uids(private_db.url)
        burst_uids = sorted(u for u in uids if u[0] in "cs" and "-" in u)
        assert burst_uids == sorted(acknowledged)  # every acknowledged one, each once
        stored = await stored_messages(private_db.url, [cid])
        assert sorted(stored[cid]) == sorted(acknowledged.values())

        # The client's tab, dropped or not meanwhile, ends with everything once.
        async def resume_until_complete() -> None:
            deadline = time.monotonic() + 20
            while len(tab.created_ids()) < len(stored[cid]):
                assert time.monotonic() < deadline, len(tab.created_ids())
                if tab.task is not None and tab.task.done():
                    with contextlib.suppress(Exception):
                        await tab.open(web, resume=True)
                await asyncio.sleep(0.1)

        await resume_until_complete()
        assert_saw_exactly(tab, stored)
    finally:
        web.terminate()
        web.wait_stopped()


# --- a reader that stops reading while 10,000 messages flow ----------------------------------

STALL_TOTAL = 10_000
# Sent in transactions of this many messages: one send is a dozen statements and a commit,
# about 130 a second through HTTP on this machine (docs/performance.md), so 10,000 of them
# one by one would take over a minute. Batched through the action itself (``_send`` inside
# one ``atomic()``, emitted after commit exactly as a send through the API is), they flow
# as fast as the database takes them, and the server sees a notice per batch.
STALL_BATCH = 10
# A letter of a message each (about 1.3 KiB a frame, 13 MiB in all): the kernel's send buffer
# grows to 4 MiB (net.ipv4.tcp_wmem) and with short messages it would swallow the whole flood
# without the server ever noticing that nobody reads.
STALL_TEXT = "Bonjour, je voulais vous dire que la semaine a été difficile. " * 16


def _flood_script(url: str, redis_url: str, tmp: str, cid: int, total: int, batch: int) -> str:
    return (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from tests.test_realtime_faults import _flood\n"
        f"asyncio.run(_flood({url!r}, {redis_url!r}, Path({tmp!r}), {cid}, {total}, {batch}))\n"
    )


async def _flood(url: str, redis_url: str, tmp: Path, cid: int, total: int, batch: int) -> None:
    """In a process of its own: the clinician sends ``total`` messages to the conversation,
    ``batch`` per transaction; the web process hears of them through Redis, as it hears of
    what another web process commits."""
    from models.messaging import Conversation, Participant
    from realtime.hub import hub
    from server.actions import messaging
    from server.db import atomic

    set_settings(make_settings(tmp, url, broadcast_url=redis_url))
    if url.startswith("sqlite://"):
        # The flood stands in for another process committing; its own durability is not
        # under test. In CI its commits took 170 to 680 ms now and then (the fsync, and a
        # checkpoint when one ran) and the web process's reads of the same file lagged
        # with them: SQLite shared by two processes, which the embedded default never
        # does. So: no fsync and no checkpoint in the flood. The web process never writes
        # here. Why its reads lag with the flood's syncs is not proven.
        url += "?synchronous=OFF&wal_autocheckpoint=0"
    await dbmod.init_db(url)
    await hub.start(redis_url)
    try:
        conversation = await Conversation.get(id=cid)
        me = await Participant.get(conversation_id=cid, staff_user_id__isnull=False)
        recipients = await messaging._recipients(conversation)
        # When each message was committed, for the latency of the others' delivery: a batch's
        # first message is stored a whole batch of inserts before the commit that makes it
        # visible, and that wait is the flood's, not the server's.
        committed: dict[int, float] = {}
        commit_seconds: list[float] = []
        for start in range(0, total, batch):
            ids = []
            async with atomic():
                for i in range(start, min(start + batch, total)):
                    body = f"flood {i} " + STALL_TEXT
                    sent = await messaging._send(conversation, me, body, f"flood-{i}", recipients)
                    ids.append(sent.id)
                began = time.time()
            # Once committed, the batch is visible to the web process: from here on any wait
            # is the server's. The commit itself is the flood's storage cost: an fsync, now
            # and then far longer (one took 241 ms in a local run).
            done = time.time()
            commit_seconds.append(done - began)
            committed.update((mid, done) for mid in ids)
        (tmp / "committed.json").write_text(json.dumps(committed))
        (tmp / "commits.json").write_text(json.dumps(commit_seconds))
    finally:
        await hub.stop()
        await dbmod.close_db()


class StalledSocket:
    """A websocket client that shakes hands and then never reads: a raw TCP socket with a
    4 KiB receive buffer, so the server's writes back up at once."""

    def __init__(self, port: int, path: str, cookie: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nCookie: {cookie}\r\n\r\n"
            ).encode()
        )
        head = b""
        while not head.endswith(b"\r\n\r\n"):  # byte by byte: not one frame is read here
            chunk = self.sock.recv(1)
            assert chunk, head
            head += chunk
        assert head.split(b"\r\n")[0].split()[1] == b"101", head

    def drain(self) -> tuple[list[dict[str, Any]], int | None, bool]:
        """Read, at last, everything until the server ends the connection: (the text frames,
        the close code if a close frame came, whether the connection ended)."""
        data = bytearray()
        ended = False
        self.sock.settimeout(15)
        try:
            while chunk := self.sock.recv(1 << 20):
                data += chunk
            ended = True
        except ConnectionError:
            ended = True
        except TimeoutError:
            pass
        frames: list[dict[str, Any]] = []
        code: int | None = None
        at = 0
        while at + 2 <= len(data):
            opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
            at += 2
            if length == 126:
                length, at = int.from_bytes(data[at : at + 2]), at + 2
            elif length == 127:
                length, at = int.from_bytes(data[at : at + 8]), at + 8
            if at + length > len(data):
                break  # cut short when the server gave up on the connection
            payload = bytes(data[at : at + length])
            at += length
            if opcode == 1:
                frames.append(json.loads(payload))
            elif opcode == 8 and length >= 2:
                code = int.from_bytes(payload[:2])
        return frames, code, ended

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class TimedListener(Listener):
    """A Listener that also notes when each message came (wall clock, by message id)."""

    def __init__(self, person: Person, label: str) -> None:
        super().__init__(person, label)
        self.arrivals: dict[int, float] = {}

    async def _read(self, ws: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                now = time.time()
                message = json.loads(raw)
                if message["type"] == "ready":
                    self.readies += 1
                    if self.start_seq is None:
                        self.start_seq = message["seq"]
                    continue
                if message["type"] == "message.created":
                    self.arrivals[int(message["data"]["id"])] = now
                self.received.append(message)


class Pauses:
    """This process's garbage-collection pauses, longest first, in seconds."""

    def __init__(self) -> None:
        self.seen: list[float] = []
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.seen.append(time.perf_counter() - self._began)

    def longest(self) -> list[float]:
        return sorted(self.seen, reverse=True)[:3]


@pytest.fixture
def frozen_heap() -> Iterator[Pauses]:
    """Keep this (pytest's) process's full collections short while it timestamps arrivals.

    By the time the suite reaches a timing test, pytest's process holds about 400,000
    objects left by earlier tests; one full collection over them took 359 ms in the middle
    of the flood, and every frame that arrived meanwhile was stamped that much late (CI read
    it as a server p99 of 224 to 448 ms while the server's own collections stayed under
    60 ms). Frozen, they are not walked; what the test itself allocates still is. Yields
    the pauses seen meanwhile, for the assertion's message.
    """
    pauses = Pauses()
    gc.collect()
    gc.freeze()
    gc.callbacks.append(pauses)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(pauses)
        gc.unfreeze()


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def test_a_reader_that_stops_reading_is_dropped_and_nobody_else_waits(
    cluster_db: ClusterDatabase,
    redis_server: RedisServer,
    tmp_path: Path,
    listeners: list[Listener],
    frozen_heap: Pauses,
) -> None:
    # One web process. Its Redis is private even on SQLite: the flood is committed by
    # another process, and Redis is how a web process hears of that.
    web = WebProcess("A", cluster_db.url, redis_server.url, tmp_path)
    web.start()
    stalled: StalledSocket | None = None
    try:
        await web.wait_started()
        assert web.proc is not None
        client = Person("portal", cluster_db.people["client"]["email"])
        clinician = Person("staff", cluster_db.people["clinician"]["email"])
        await asyncio.gather(client.sign_in(web), clinician.sign_in(web))
        # The others: the clinician's tab (the sender's), and the client's other tab (the
        # same recipient as the stalled one: its sibling must not suffer either).
        readers = [TimedListener(clinician, "clinician"), TimedListener(client, "client tab 2")]
        listeners += readers
        await asyncio.gather(*(r.open(web) for r in readers))
        cid = await _conversation(clinician, web, cluster_db, "Flood")
        for r in readers:
            await r.next_of("conversation.created")
        stalled = await asyncio.to_thread(StalledSocket, web.port, "/portal/ws", client.cookie)
        await asyncio.sleep(0.5)  # its writer is past the backlog and "ready"

        flood_log = tmp_path / "flood.log"
        flood = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _flood_script(
                cluster_db.url, redis_server.url, str(tmp_path), cid, STALL_TOTAL, STALL_BATCH
            ),
            cwd=ROOT,
            # A file, not a pipe: a chatty flood must never block on a full pipe.
            stdout=flood_log.open("wb"),
            stderr=asyncio.subprocess.STDOUT,
        )
        # Memory from the point where the flood is under way (the first thousand delivered:
        # caches, the allocator's arenas and the stalled socket's buffers are all in use).
        samples: list[int] = []
        baseline: int | None = None
        started = time.monotonic()
        while flood.returncode is None or len(readers[0].created_ids()) < STALL_TOTAL:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flood.wait(), 0.25)
            if flood.returncode not in (None, 0):
                break
            rss = _rss_kib(web.proc.pid)
            if baseline is None and len(readers[0].created_ids()) >= 1000:
                baseline = rss
            elif baseline is not None:
                samples.append(rss)
            assert time.monotonic() - started < 90, len(readers[0].created_ids())
        assert flood.returncode == 0, flood_log.read_text()[-3000:]
        await wait_all(list[Listener](readers), STALL_TOTAL, within=20)

        stored = await stored_messages(cluster_db.url, [cid])
        assert len(stored[cid]) == STALL_TOTAL
        for r in readers:
            assert_saw_exactly(r, stored)
        # Nobody else waited on the stalled reader: p99 from each message's commit (noted by
        # the flood once committed) to the socket, under the 200 ms. Timed from the
        # message's own created_at, a batch's first message carried the batch's other inserts
        # (CI measured 330 ms that way); timed from before the commit, the flood's own slow
        # commits counted too (CI measured 248 ms; one commit took 241 ms in a local run,
        # while the p99 from commit to socket was 2 ms).
        committed = json.loads((tmp_path / "committed.json").read_text())
        worst = {
            r.label: p99([r.arrivals[int(mid)] - at for mid, at in committed.items()])
            for r in readers
        }
        commits = sorted(json.loads((tmp_path / "commits.json").read_text()))
        assert all(v < 0.2 for v in worst.values()), (
            worst,
            "flood's slowest commits",
            commits[-3:],
            "this process's longest collections",
            frozen_heap.longest(),
        )

        # The server gave up on the stalled socket long before the end: reading it now finds
        # a part of the flood, in order, then the end of the connection. Its queue filled
        # (512 behind) and it was kicked with 4008; the close frame itself gets through only
        # if there is room in the buffers, which for a reader that never reads there is not
        # (the endpoint gives the close two seconds, then drops the connection).
        frames, code, ended = await asyncio.to_thread(stalled.drain)
        got = [f for f in frames if f.get("type") == "message.created"]
        assert ended, "the stalled socket was never closed"
        assert code in (4008, None), code
        assert len(got) < STALL_TOTAL // 2, len(got)
        seqs = [int(f["seq"]) for f in frames if "seq" in f and "data" in f]
        ready = next(f for f in frames if f["type"] == "ready")
        assert seqs == list(range(ready["seq"] + 1, ready["seq"] + 1 + len(seqs)))
        assert [int(f["data"]["id"]) for f in got] == stored[cid][: len(got)]

        # And the server's memory stays flat (28 KiB of growth measured on SQLite). After the
        # baseline, 9,000 frames of 1.3 KiB (11 MiB) were due to the stalled socket; the
        # kernel holds at most its 4 MiB send buffer, so a server that kept queueing them
        # (frames in the transport, or events in an unbounded queue) would grow by 7 MiB or
        # more. 4 MiB leaves room for the allocator's noise and still catches that.
        assert baseline is not None and samples
        growth = max(samples) - baseline
        assert growth < 4 * 1024, f"RSS grew {growth} KiB (from {baseline} KiB)"

        # The tab resumes with ?after= its last seq and gets everything else, once, in order.
        resumed = Listener(client, "stalled tab, resumed")
        resumed.start_seq = seqs[-1] if seqs else ready["seq"]
        listeners.append(resumed)
        await resumed.open(web, resume=True)
        await resumed.wait(
            lambda: len(got) + len(resumed.created_ids()) >= STALL_TOTAL, "the rest", 30
        )
        assert [int(f["data"]["id"]) for f in got] + resumed.created_ids() == stored[cid]
        resumed.assert_exactly_once_in_order()
    finally:
        if stalled is not None:
            stalled.close()
        web.terminate()
        web.wait_stopped()
