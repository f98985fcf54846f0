"""Faults, with nothing lost: Redis killed or away, PostgreSQL restarted, a web process killed,
the same send three times at once.

Built on tests/test_realtime_cluster.py's harness (a private redis-server, two real uvicorn
processes, people signed in through the HTTP API, recording websockets). Every test checks
what the sockets saw against what the database holds: each message once, in its
conversation's order, and only for the conversation's participants.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from server.settings import ROOT
from tests import test_realtime_cluster as cluster
from tests.conftest import free_port, require_service
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
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
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
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
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
        await asyncio.gather(a.wait_broker(within=10), b.wait_broker(within=10))
        return time.monotonic() - back

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
        "from tests.test_realtime_cluster import _seed\n"
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
        await web.wait_broker()
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
