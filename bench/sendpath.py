"""What one message send costs the server: SQL statements and CPU per send, in process.

``python bench/sendpath.py`` seeds a practice (bench/seed.py's layout), opens a session for
every person directly in the database, and posts messages to the messaging API by calling
the ASGI app itself (no HTTP parser, no sockets, no load generator in the way), first one at
a time, then ``--concurrency`` at once. It counts every statement the database client runs
(BEGIN and COMMIT included) and the process's CPU time (the aiosqlite thread's too), and
prints them per send. These figures depend little on how busy the machine is, unlike the
wall-clock ones of bench/realtime.py.

    .venv/bin/python bench/sendpath.py                       # SQLite
    .venv/bin/python bench/sendpath.py --people 4000 --notices-to-schedule  # see --help
    .venv/bin/python bench/sendpath.py --database-url postgres://postgres@127.0.0.1:5432/x
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import random
import resource
import secrets
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Run as a script, bench/ comes first on sys.path and its realtime.py would shadow the
# realtime package: import the app's modules from the repository root instead.
sys.path[:] = [str(HERE.parent), str(HERE)] + [
    p for p in sys.path if Path(p or ".").resolve() != HERE
]


# Set while a counted call runs, in its task: the calls it makes are not counted again.
_counting: contextvars.ContextVar[bool] = contextvars.ContextVar("counting", default=False)


class StatementCounter:
    """Counts the statements the Tortoise clients send, whatever the dialect."""

    METHODS = (
        "execute_query",
        "execute_query_dict",
        "execute_insert",
        "execute_many",
        "execute_script",
        "begin",
        "commit",
        "rollback",
        "savepoint",
        "release_savepoint",
    )

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def install(self) -> None:
        from tortoise.backends.sqlite import client as sqlite_client

        from server.sqlite import InlineSqliteClient

        classes: list[type] = [
            InlineSqliteClient,  # its reads on the reader connection
            sqlite_client.SqliteClient,
            sqlite_client.SqliteTransactionWrapper,
        ]
        try:
            from tortoise.backends.asyncpg import client as pg_client
            from tortoise.backends.base_postgres import client as base_pg

            classes += [pg_client.AsyncpgDBClient, pg_client.TransactionWrapper]
            classes += [base_pg.BasePostgresClient]
        except ImportError:
            pass
        for cls in classes:
            for name in self.METHODS:
                original = cls.__dict__.get(name)
                if original is None:
                    continue
                setattr(cls, name, self._wrap(name, original))

    def _wrap(self, name: str, original: Any) -> Any:
        counts = self.counts

        async def counted(client: Any, *args: Any, **kwargs: Any) -> Any:
            if _counting.get():  # a subclass's method calling its base's: one statement
                return await original(client, *args, **kwargs)
            counts[name] += 1
            token = _counting.set(True)
            try:
                return await original(client, *args, **kwargs)
            finally:
                _counting.reset(token)

        return counted

    def total(self) -> int:
        return sum(self.counts.values())


async def open_sessions(people: list[Any]) -> dict[str, tuple[str, str]]:
    """A live session for everyone: recipient key -> (cookie token, CSRF token)."""
    from models.accounts import AuthSession, Realm
    from server.auth.sessions import hash_token

    now = datetime.now(UTC)
    out: dict[str, tuple[str, str]] = {}
    rows = []
    for person in people:
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(16)
        kind, _, ident = person.key.partition(":")
        rows.append(
            AuthSession(
                id=hash_token(token),
                realm=Realm.STAFF if kind == "s" else Realm.PORTAL,
                staff_user_id=int(ident) if kind == "s" else None,
                portal_account_id=int(ident) if kind == "c" else None,
                csrf_token=csrf,
                last_seen_at=now,
                expires_at=now + timedelta(days=1),
                idle_seconds=86400,
            )
        )
        out[person.key] = (token, csrf)
    await AuthSession.bulk_create(rows, batch_size=500)
    return out


async def post(app: Any, path: str, cookie: str, csrf: str, body: dict[str, Any]) -> int:
    """One POST through the ASGI app; returns the status."""
    raw = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"origin", b"http://127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            (b"cookie", cookie.encode()),
            (b"x-csrf-token", csrf.encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import seed as seeding

    from realtime.hub import hub
    from server import db as dbmod
    from server.app import create_app
    from server.settings import Settings, set_settings

    work = Path(tempfile.mkdtemp(prefix="cabinet-sendpath-"))
    url = args.database_url or f"sqlite://{work / 'bench.sqlite3'}"
    if url.startswith("postgres"):
        from procs import fresh_schema

        await fresh_schema(url)
    await dbmod.migrate(url)
    await dbmod.close_db()
    plan = seeding.Plan(clients=args.people)
    population = await seeding.seed(url, plan, "$argon2id$unused")
    settings = Settings(
        env="test",
        data_dir=work,
        database_url=url,
        broadcast_url="memory://",
        secret_key="bench-secret-key",
        public_url="http://127.0.0.1:8000",
        embedded_worker=False,
    )
    set_settings(settings)
    await dbmod.init_db(url)
    await hub.start("memory://")
    app = create_app(settings, manage_db=False)
    sessions = await open_sessions(population.people)
    realm_of = {p.key: p.realm for p in population.people}
    rng = random.Random(args.seed)
    counter = StatementCounter()
    counter.install()
    results: dict[str, Any] = {"database": url.split(":", 1)[0], "people": args.people}
    n = 0

    async def one_send(chat: Any = None, who: str | None = None) -> int:
        nonlocal n
        n += 1
        chat = chat or rng.choice(population.chats)
        who = who or rng.choice(chat.members)
        token, csrf = sessions[who]
        if realm_of[who] == "staff":
            cookie, prefix = f"cabinet_staff={token}", "/api"
        else:
            cookie, prefix = f"cabinet_portal={token}", "/portal/api"
        return await post(
            app,
            f"{prefix}/conversations/{chat.id}/messages",
            cookie,
            csrf,
            {"body": f"bench message {n}", "client_uid": f"sp-{n}-{secrets.token_hex(4)}"},
        )

    async def phase(name: str, count: int, concurrency: int) -> None:
        if name == "sequential" and not args.notices_to_schedule:
            # Warm-up, not counted: everyone sends once, so that the unread notices a
            # first message schedules exist, as they do in a practice that has been open
            # for a while (a notice waits until the person reads).
            for chat in population.chats:
                for who in chat.members:
                    await one_send(chat, who)
        counter.counts.clear()
        statuses: Counter[int] = Counter()
        queue = iter(range(count))

        async def worker() -> None:
            for _ in queue:
                statuses[await one_send()] += 1

        profiler = None
        if args.profile is not None:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        ru0, main0 = resource.getrusage(resource.RUSAGE_SELF), time.thread_time()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        ru, main = resource.getrusage(resource.RUSAGE_SELF), time.thread_time() - main0
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{args.profile}.{name}")
        results[name] = {
            "sends": count,
            "concurrency": concurrency,
            "statuses": dict(statuses),
            "statements_per_send": round(counter.total() / count, 2),
            "statements": dict(counter.counts),
            "cpu_ms_per_send": round(cpu * 1000 / count, 3),
            # The event loop's thread alone (Python: routing, the ORM, JSON), and the
            # kernel's share of the whole (fsync, thread wake-ups).
            "loop_thread_cpu_ms_per_send": round(main * 1000 / count, 3),
            "system_cpu_ms_per_send": round((ru.ru_stime - ru0.ru_stime) * 1000 / count, 3),
            "wall_ms_per_send": round(wall * 1000 / count, 3),
            "sends_per_s": round(count / wall, 1),
        }
        print(
            f"{name}: {count} sends, concurrency {concurrency}: "
            f"{results[name]['statements_per_send']} statements, "
            f"{results[name]['cpu_ms_per_send']} CPU ms per send "
            f"(event loop thread {results[name]['loop_thread_cpu_ms_per_send']}, "
            f"kernel {results[name]['system_cpu_ms_per_send']}), "
            f"{results[name]['sends_per_s']} sends/s; statuses {dict(statuses)}",
            flush=True,
        )

    try:
        await phase("sequential", args.sends, 1)
        await phase("concurrent", args.sends, args.concurrency)
    finally:
        await hub.stop()
        await dbmod.close_db()
    results["load_average"] = os.getloadavg()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url", default="", help="default: a SQLite file of its own")
    p.add_argument("--people", type=int, default=200)
    p.add_argument("--sends", type=int, default=1000, help="sends per phase")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--notices-to-schedule",
        action="store_true",
        help="no warm-up: a send finds no unread notice waiting and schedules one, as when\n"
        "people read their messages (use with --people well above --sends)",
    )
    p.add_argument(
        "--profile", default=None, help="cProfile each phase into PROFILE.<phase> (slows it)"
    )
    args = p.parse_args()
    results = asyncio.run(run(args))
    print(f"load average {results['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
