"""Test harness: a fresh database per test, factories per role, login helpers, event capture,
and real uvicorn servers on free ports.

The database is the one named by DATABASE_URL: a SQLite file per test by default, or
PostgreSQL when DATABASE_URL=postgres://... (CI runs the suite both ways). The realtime
broker is BROADCAST_URL (memory:// by default, redis://... in the second CI pass).
Tests needing PostgreSQL, Redis or Chromium call ``require_service``: they skip on a laptop
without it and fail when CI=true.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from models.accounts import AuthSession, PortalAccount, Practice, Realm, StaffRole, StaffUser
from models.agenda import Appointment
from models.clients import Client, ClientStatus
from realtime.events import Event
from realtime.hub import hub
from server import db as dbmod
from server.actions import accounts, clients
from server.app import create_app
from server.auth.passwords import hash_password
from server.auth.sessions import COOKIE_NAMES, hash_token
from server.settings import Settings, set_settings

CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "correct horse battery staple"
DATABASE_URL = os.environ.get("DATABASE_URL", "")
BROADCAST_URL = os.environ.get("BROADCAST_URL", "memory://")
IS_POSTGRES = DATABASE_URL.startswith(("postgres://", "postgresql://"))
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
POSTGRES_URL = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


async def until(check: Callable[[], Any]) -> None:
    """Poll ``check`` (a function, or a coroutine function) until it is true, for at most
    five seconds."""
    for _ in range(100):
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("still not true after five seconds")


def require_service(available: bool, what: str) -> None:
    """Skip without the service on a laptop; fail in CI, where every service must be up."""
    if available:
        return
    if CI:
        pytest.fail(f"{what} is required in CI but is not available")
    pytest.skip(f"{what} not available")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def redis_available() -> bool:
    return port_open("127.0.0.1", 6379)


def postgres_available() -> bool:
    return port_open("127.0.0.1", 5432)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- settings and database -----------------------------------------------------------------

_template: dict[str, Path] = {}


def _run_in_thread(coro_factory: Callable[[], Any]) -> None:
    """Run a coroutine on its own loop in its own thread (fresh Tortoise context)."""
    error: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro_factory())
        except BaseException as exc:  # noqa: BLE001
            error.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if error:
        raise error[0]


async def postgres_connection(url: str) -> Any:
    """A plain asyncpg connection (not Tortoise's) to a DATABASE_URL, for what a test does
    behind the app's back; asyncpg wants the postgresql:// scheme."""
    return await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))


async def _reset_postgres(url: str) -> None:
    """Drop everything and apply the migrations: run once per test session."""
    conn = await postgres_connection(url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()
    await dbmod.migrate(url)
    await dbmod.close_db()


async def _migrate_sqlite(url: str) -> None:
    await dbmod.migrate(url)
    await dbmod.close_db()


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Apply the migrations once; each test then starts from a copy or a truncation."""
    if IS_POSTGRES:
        require_service(postgres_available(), "PostgreSQL")
        _run_in_thread(lambda: _reset_postgres(DATABASE_URL))
        return DATABASE_URL
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    _run_in_thread(lambda: _migrate_sqlite(f"sqlite://{path}"))
    _template["sqlite"] = path
    return f"sqlite://{path}"


def make_settings(tmp: Path, database_url: str, **overrides: Any) -> Settings:
    base = Settings(
        env="test",
        data_dir=tmp,
        database_url=database_url,
        broadcast_url=BROADCAST_URL,
        secret_key="test-secret-key",
        public_url="http://testserver",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        embedded_worker=False,
    )
    return replace(base, **overrides)


@pytest.fixture
async def settings(tmp_path: Path, migrated: str) -> Settings:
    if IS_POSTGRES:
        url = DATABASE_URL
    else:
        target = tmp_path / "test.sqlite3"
        shutil.copy(_template["sqlite"], target)
        url = f"sqlite://{target}"
    s = make_settings(tmp_path, url)
    set_settings(s)
    return s


TABLES_KEEP = {"tortoise_migrations"}
_emptying: list[str] = []


async def _emptying_script() -> str:
    """What empties every table and restarts every id sequence, built once per session.

    DELETE, not TRUNCATE: TRUNCATE replaces each table's files, a quarter of a second for
    our fifty-odd tables, which made it most of the PostgreSQL pass's set-up time; a test
    leaves a few rows, which DELETE removes in about a millisecond. ``replica`` turns off
    the foreign-key triggers for this one transaction, so the order of the tables does not
    matter (as with TRUNCATE ... CASCADE); SET LOCAL ends with it. Only a superuser may
    set it: a suite run as another role keeps TRUNCATE.
    """
    if not _emptying:
        conn = dbmod.connection()
        rows = await conn.execute_query_dict(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
        tables = sorted(r["tablename"] for r in rows if r["tablename"] not in TABLES_KEEP)
        su = await conn.execute_query_dict("SELECT current_setting('is_superuser') AS su")
        if su[0]["su"] == "on":
            script = (
                "BEGIN; SET LOCAL session_replication_role = replica; "
                + "".join(f'DELETE FROM "{t}"; ' for t in tables)
                + "SELECT setval(format('%I.%I', schemaname, sequencename), 1, false)"
                " FROM pg_sequences WHERE schemaname = 'public'; COMMIT;"
            )
        elif tables:
            quoted = ", ".join(f'"{t}"' for t in tables)
            script = f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"
        else:
            script = ""  # nothing to empty (TRUNCATE needs at least one table)
        _emptying.append(script)
    return _emptying[0]


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[None]:
    """A fresh database for this test."""
    await dbmod.init_db(settings.database_url)
    if IS_POSTGRES and (script := await _emptying_script()):
        await dbmod.connection().execute_script(script)
    yield
    await dbmod.close_db()


@pytest.fixture
async def realtime(db: None, settings: Settings) -> AsyncIterator[Any]:
    if settings.broadcast_url.startswith("redis"):
        require_service(redis_available(), "Redis")
    await hub.start(settings.broadcast_url)
    yield hub
    await hub.stop()


@pytest.fixture
async def app(realtime: Any, settings: Settings) -> Any:
    return create_app(settings, manage_db=False)


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the app (no cookies yet): use ``login`` to sign in."""
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def new_http(app: Any) -> Callable[..., httpx.AsyncClient]:
    """A factory of independent browsers (each its own cookie jar and address)."""

    def make(address: str = "10.0.0.2") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 5000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    return make


# --- factories -------------------------------------------------------------------------------


class Factory:
    def __init__(self) -> None:
        self.n = 0
        self._practice: Practice | None = None
        self._hash: str | None = None

    def _next(self) -> int:
        self.n += 1
        return self.n

    async def password_hash(self) -> str:
        if self._hash is None:
            self._hash = await hash_password(PASSWORD)
        return self._hash

    async def practice(self) -> Practice:
        if self._practice is None:
            self._practice = await Practice.create(name="Test practice")
        return self._practice

    async def staff(
        self, role: StaffRole, *, supervisor: StaffUser | None = None, **kw: Any
    ) -> StaffUser:
        i = self._next()
        return await StaffUser.create(
            practice=await self.practice(),
            email=kw.pop("email", f"{role.value}{i}@example.org"),
            password_hash=await self.password_hash(),
            first_name=kw.pop("first_name", role.value.title()),
            last_name=kw.pop("last_name", f"Number{i}"),
            role=role,
            supervisor=supervisor,
            **kw,
        )

    async def owner(self, **kw: Any) -> StaffUser:
        return await self.staff(StaffRole.OWNER, **kw)

    async def therapist(self, **kw: Any) -> StaffUser:
        return await self.staff(StaffRole.THERAPIST, **kw)

    async def office_admin(self, **kw: Any) -> StaffUser:
        return await self.staff(StaffRole.OFFICE_ADMIN, **kw)

    async def client(
        self, therapist: StaffUser | None = None, *, portal: bool = True, **kw: Any
    ) -> Client:
        i = self._next()
        client = await clients.do_create_client(
            None,
            await self.practice(),
            first_name=kw.pop("first_name", "Client"),
            last_name=kw.pop("last_name", f"Number{i}"),
            email=kw.pop("email", f"client{i}@example.org"),
            therapist=therapist,
            status=kw.pop("status", ClientStatus.ACTIVE),
        )
        if portal:
            await clients.do_create_portal_account_with_password(
                None, client, client.email or f"client{i}@example.org", await self.password_hash()
            )
        return client

    async def portal_account(self, client: Client) -> PortalAccount:
        return await PortalAccount.get(client_id=client.id)


@pytest.fixture
async def make(db: None) -> Factory:
    return Factory()


@pytest.fixture
async def people(make: Factory) -> dict[str, Any]:
    """A small practice: an owner, two therapists (Alice, Bob), the front desk, Alice's
    client Camille Martin and Bob's client "Other Client", each with a portal account."""
    owner = await make.owner()
    alice = await make.therapist(first_name="Alice")
    bob = await make.therapist(first_name="Bob")
    desk = await make.office_admin()
    camille = await make.client(alice, first_name="Camille", last_name="Martin")
    other = await make.client(bob, first_name="Other", last_name="Client")
    return {
        "owner": owner,
        "alice": alice,
        "bob": bob,
        "desk": desk,
        "camille": camille,
        "other": other,
        "practice": await make.practice(),
    }


async def session_booker(
    practice: Practice, practitioner: StaffUser, client: Client
) -> Callable[[datetime], Awaitable[Appointment]]:
    """A "Séance" service and a "Lyon" office, and a function that books ``client`` with
    ``practitioner`` there at a given time."""
    from server.actions import agenda

    service = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    office = await agenda.do_create_location(None, practice, name="Lyon")

    async def book(at: datetime) -> Appointment:
        return await agenda.do_book_appointment(
            None,
            practitioner=practitioner,
            client=client,
            service=service,
            starts_at=at,
            location=office,
        )

    return book


async def request_key_of(http: httpx.AsyncClient, url: str) -> str:
    """The ``request_key`` a page's form carries (server/actions/retries.py)."""
    found = re.search(r'name="request_key" value="([^"]+)"', (await http.get(url)).text)
    assert found, url
    return found.group(1)


async def login(
    http: httpx.AsyncClient, who: StaffUser | Client, password: str = PASSWORD
) -> dict[str, Any]:
    """Sign ``who`` in through the JSON API; sets the cookie and the CSRF header on ``http``."""
    if isinstance(who, StaffUser):
        url, email = "/api/session", who.email
    else:
        account = await PortalAccount.get(client_id=who.id)
        url, email = "/portal/api/session", account.email
    response = await http.post(url, json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    me = response.json()
    http.headers["X-CSRF-Token"] = me["csrf_token"]
    return me  # type: ignore[no-any-return]


# --- events --------------------------------------------------------------------------------


class Captured:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def of_type(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]

    def recipients(self, type_: str | None = None) -> set[str]:
        return {e.recipient for e in self.events if type_ is None or e.type == type_}


@pytest.fixture
def capture_events(monkeypatch: pytest.MonkeyPatch) -> Callable[[], Captured]:
    """``captured = capture_events()``: every event published after commit from now on."""

    def start() -> Captured:
        captured = Captured()
        original = hub.publish

        async def spy(events: Any) -> None:
            batch = list(events)
            captured.events.extend(batch)
            await original(batch)

        monkeypatch.setattr(hub, "publish", spy)
        return captured

    return start


# --- the disk ----------------------------------------------------------------------------


class Flushes:
    """Stands in for ``os.fdatasync``: records which file each flush was for, can be slow or
    fail, and otherwise flushes for real."""

    def __init__(self, delay: float = 0.0, fail: OSError | None = None) -> None:
        self.delay = delay
        self.fail = fail
        self.files: list[str] = []
        self.started = 0
        self.finished = 0
        self.began = threading.Event()
        self._real = os.fdatasync

    def __call__(self, fd: int) -> None:
        self.started += 1
        self.began.set()
        self.files.append(os.readlink(f"/proc/self/fd/{fd}"))
        time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        self._real(fd)
        self.finished += 1


# --- real servers ----------------------------------------------------------------------------


class LiveServer:
    def __init__(self, app: Any, port: int, log_level: str = "warning") -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level=log_level,
            ws_per_message_deflate=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        for _ in range(200):
            if self.server.started:
                return
            await asyncio.sleep(0.02)
        raise RuntimeError("uvicorn did not start")

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


@pytest.fixture
async def live_server(app: Any, settings: Settings) -> AsyncIterator[LiveServer]:
    """The app served by a real uvicorn on a free port, in this test's event loop."""
    port = free_port()
    set_settings(replace(settings, public_url=f"http://127.0.0.1:{port}"))
    server = LiveServer(app, port)
    await server.start()
    yield server
    await server.stop()
    set_settings(settings)


__all__ = ["PASSWORD", "login", "require_service", "accounts"]


# --- sessions ------------------------------------------------------------------------------


def session_token(http: httpx.AsyncClient, realm: Realm = Realm.STAFF) -> str:
    """The session cookie this browser holds for ``realm``."""
    token = http.cookies.get(COOKIE_NAMES[realm])
    assert token, f"no {realm.value} session cookie"
    return token


async def session_of(http: httpx.AsyncClient, realm: Realm = Realm.STAFF) -> AuthSession:
    """The server-side session behind this browser's cookie (to age or inspect it)."""
    return await AuthSession.get(id=hash_token(session_token(http, realm)))


@pytest.fixture
async def settled_hub(realtime: Any) -> AsyncIterator[None]:
    """Let the realtime hub take in the notices a test sent before the hub is stopped.

    Hub.stop() can hang when it cancels the hub while a notice (a socket close after a
    sign-out, an event) is arriving: on Python 3.11 asyncio.wait_for swallows the
    cancellation and Hub._pump loops on. Reported; the fix belongs in realtime/hub.py.
    Use with ``pytestmark = pytest.mark.usefixtures("settled_hub")``.
    """
    yield
    await asyncio.sleep(0.02)


# --- browsers ------------------------------------------------------------------------------
# Debian's Chromium driven by Playwright; Playwright's own browser downloads are never used
# (no ``playwright install``). Tests using ``browser`` skip without it, and fail in CI.

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
}


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    path = chromium_path()
    require_service(path is not None, "Chromium")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def sign_in(page: Any, url: str, email: str, password: str = PASSWORD) -> None:
    """Fill in and send the sign-in form at ``url`` (/staff/login or /portal/login)."""
    await page.goto(url)
    await page.locator("input[name=email]").fill(email)
    await page.locator("input[name=password]").fill(password)
    await page.locator("form button[type=submit]").click()


async def signed_in(
    context: Any, server: LiveServer, email: str, realm: str = "staff", **options: Any
) -> Any:
    """A new page of ``context`` (a browser, with page ``options``, or one of its contexts),
    signed in as ``email`` on /staff or /portal and showing its home page."""
    from playwright.async_api import expect

    page = await context.new_page(**options)
    await sign_in(page, f"{server.url}/{realm}/login", email)
    await expect(page).to_have_url(f"{server.url}/{realm}/")
    return page
