"""Web plumbing: CSRF, the staff/portal separation, error bodies, OpenAPI, and who reaches what."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import websockets
from openapi_spec_validator import validate

from models.accounts import PortalAccount, Practice, Realm, StaffUser
from models.agenda import Service
from models.clients import Client
from tests.conftest import PASSWORD, Factory, LiveServer, login, session_booker, session_token

pytestmark = pytest.mark.usefixtures("settled_hub")

NEW_STAFF = {"email": "new.colleague@example.org", "first_name": "New", "last_name": "Colleague"}


def new_staff(**overrides: object) -> dict[str, object]:
    return {**NEW_STAFF, "role": "therapist", **overrides}


# --- CSRF ------------------------------------------------------------------------------------


async def test_a_signed_in_post_without_the_csrf_token_is_refused(
    http: httpx.AsyncClient, make: Factory
) -> None:
    owner = await make.owner()
    me = await login(http, owner)
    del http.headers["X-CSRF-Token"]
    missing = await http.post("/api/staff", json=new_staff())
    assert missing.status_code == 403
    assert missing.json()["error"]["code"] == "csrf"
    wrong = await http.post("/api/staff", json=new_staff(), headers={"X-CSRF-Token": "forged"})
    assert wrong.status_code == 403
    form = await http.post("/staff/team", data={**new_staff(), "csrf_token": "forged"})
    assert form.status_code == 403
    assert not await StaffUser.exists(email=NEW_STAFF["email"])
    # A route that only ends like a sign-in form's (a field keyed "invite") is no exception.
    moved = await http.post("/staff/forms/1/fields/invite/up", data={"csrf_token": "forged"})
    assert moved.status_code == 403
    # Sign-out is a write too.
    assert (await http.delete("/api/session")).status_code == 403
    assert (await http.get("/api/me")).json()["id"] == me["id"]


async def test_a_form_with_the_right_csrf_token_works(
    http: httpx.AsyncClient, make: Factory
) -> None:
    owner = await make.owner()
    me = await login(http, owner)
    del http.headers["X-CSRF-Token"]
    response = await http.post("/staff/team", data={**new_staff(), "csrf_token": me["csrf_token"]})
    assert response.status_code == 303
    assert await StaffUser.exists(email=NEW_STAFF["email"])


async def test_a_post_from_another_site_is_refused(http: httpx.AsyncClient, make: Factory) -> None:
    owner = await make.owner()
    await login(http, owner)
    response = await http.post(
        "/api/staff", json=new_staff(), headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    # The same host under another scheme is another site (a page over plain http).
    other_scheme = await http.post(
        "/api/staff", json=new_staff(), headers={"Origin": "https://testserver"}
    )
    assert other_scheme.status_code == 403
    assert not await StaffUser.exists(email=NEW_STAFF["email"])
    # Signed out, a cross-site sign-in is refused too (login CSRF).
    async with httpx.AsyncClient(transport=http._transport, base_url="http://testserver") as anon:
        signin = await anon.post(
            "/staff/login",
            data={"email": owner.email, "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
        )
        assert signin.status_code == 403
        same_site = await anon.post(
            "/api/session",
            json={"email": owner.email, "password": PASSWORD},
            headers={"Origin": "http://testserver"},
        )
        assert same_site.status_code == 200


# --- staff and portal are separate -----------------------------------------------------------


async def test_a_portal_session_does_not_open_the_staff_side(
    http: httpx.AsyncClient, make: Factory
) -> None:
    client = await make.client(await make.therapist())
    await login(http, client)
    assert (await http.get("/api/me")).status_code == 401
    page = await http.get("/staff/")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/staff/login")
    assert (await http.get("/staff/clients")).status_code == 303


async def test_a_staff_session_does_not_open_the_portal(
    http: httpx.AsyncClient, make: Factory
) -> None:
    # A clinician who is also a client somewhere has two identities, never one session.
    await login(http, await make.owner())
    assert (await http.get("/portal/api/me")).status_code == 401
    page = await http.get("/portal/")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/portal/login")


async def _refused(url: str, cookie: str) -> bool:
    try:
        async with websockets.connect(url, additional_headers={"Cookie": cookie}) as ws:
            await ws.recv()
    except websockets.InvalidStatus as exc:
        return exc.response.status_code == 403
    except websockets.ConnectionClosed as exc:
        return exc.rcvd is not None and exc.rcvd.code == 4003
    return False


async def test_each_socket_accepts_only_its_own_realm(
    live_server: LiveServer, make: Factory
) -> None:
    therapist = await make.therapist()
    client = await make.client(therapist)
    async with (
        httpx.AsyncClient(base_url=live_server.url) as staff,
        httpx.AsyncClient(base_url=live_server.url) as portal,
    ):
        await login(staff, therapist)
        await login(portal, client)
        staff_cookie = f"cabinet_staff={session_token(staff)}"
        portal_cookie = f"cabinet_portal={session_token(portal, Realm.PORTAL)}"
    assert await _refused(f"{live_server.ws_url}/portal/ws", staff_cookie)
    assert await _refused(f"{live_server.ws_url}/staff/ws", portal_cookie)
    assert await _refused(f"{live_server.ws_url}/staff/ws", "")
    async with websockets.connect(
        f"{live_server.ws_url}/staff/ws", additional_headers={"Cookie": staff_cookie}
    ) as ws:
        assert '"ready"' in str(await ws.recv())


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"json": {"first_name": "A", "last_name": "B", "role": "therapist"}}, "email"),
        ({"json": new_staff(role="wizard")}, "role"),
        ({"json": new_staff(portal_enabled="perhaps")}, "portal_enabled"),
        ({"json": new_staff(first_name=["a", "list"])}, "first_name"),
        ({"json": new_staff(email="not an email")}, "email"),
        ({"json": [1, 2, 3]}, "body"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, "body"),
        ({"content": b"\xff\xfe", "headers": {"content-type": "application/json"}}, "body"),
    ],
    ids=["missing", "enum", "bool", "list", "pattern", "array", "invalid-json", "bad-utf8"],
)
async def test_a_bad_body_gets_422_with_the_field_and_writes_nothing(
    http: httpx.AsyncClient, make: Factory, content: dict[str, object], field: str
) -> None:
    await login(http, await make.owner())
    before = await StaffUser.all().count()
    response = await http.post("/api/staff", **content)  # type: ignore[arg-type]
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"]
    assert await StaffUser.all().count() == before


async def test_sign_in_with_a_bad_body_gets_422(http: httpx.AsyncClient, make: Factory) -> None:
    response = await http.post("/api/session", json={"email": "someone@example.org"})
    assert response.status_code == 422
    assert set(response.json()["error"]["fields"]) == {"password"}
    response = await http.post("/portal/api/session", json={"email": 5, "password": True})
    assert response.status_code == 422
    assert {"email", "password"} <= set(response.json()["error"]["fields"])


async def test_a_body_past_the_limit_is_refused_before_it_is_read(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """No session is needed to make the server read a body: sign-in and "forgot password"
    refuse one larger than any request needs (413), from its Content-Length or, without
    one, as soon as the limit is passed, never reading the rest."""
    huge = b'{"email": "' + b"a" * (20 * 1024 * 1024) + b'", "password": "x"}'
    for url in ("/api/session", "/portal/api/session", "/api/password/forgot"):
        r = await http.post(url, content=huge, headers={"content-type": "application/json"})
        assert r.status_code == 413, (url, r.status_code)
        assert r.json()["error"]["code"] == "too_large"
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"email": "'
        for _ in range(64):  # 4 MiB, announced by no Content-Length
            sent += 64 * 1024
            yield b"a" * (64 * 1024)
        yield b'", "password": "x"}'

    r = await http.post(
        "/api/session", content=stream(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert sent < 2 * 1024 * 1024  # the rest was never read
    # A form post past the limit too (the CSRF check reads form bodies first).
    r = await http.post("/staff/login", data={"email": "a" * (2 * 1024 * 1024)})
    assert r.status_code == 413
    # A body within the limit is read as before.
    owner = await make.owner()
    r = await http.post(
        "/api/session",
        json={"email": owner.email, "password": PASSWORD, "padding": "a" * 500_000},
    )
    assert r.status_code == 200


@pytest.mark.parametrize("staff_id", ["abc", "-1", "0", "99999999999", "1e3"])
async def test_a_malformed_id_is_a_404_not_a_crash(
    http: httpx.AsyncClient, make: Factory, staff_id: str
) -> None:
    await login(http, await make.owner())
    response = await http.post(f"/api/staff/{staff_id}/active", json={"active": False})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_an_out_of_range_id_in_a_page_is_a_404(
    http: httpx.AsyncClient, make: Factory
) -> None:
    await login(http, await make.owner())
    assert (await http.get("/staff/clients/99999999999")).status_code == 404


async def test_an_unknown_switch_word_changes_nothing(
    http: httpx.AsyncClient, make: Factory
) -> None:
    owner = await make.owner()
    therapist = await make.therapist()
    client = await make.client(therapist)
    me = await login(http, owner)
    token = {"csrf_token": me["csrf_token"]}
    response = await http.post(f"/staff/team/{therapist.id}/deactivat", data=token)
    assert response.status_code == 404
    assert (await StaffUser.get(id=therapist.id)).is_active
    response = await http.post(f"/staff/clients/{client.id}/portal/disabl", data=token)
    assert response.status_code == 404
    assert (await PortalAccount.get(client_id=client.id)).is_active
    response = await http.post(f"/staff/team/{therapist.id}/deactivate", data=token)
    assert response.status_code == 303
    assert not (await StaffUser.get(id=therapist.id)).is_active


# --- OpenAPI ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "cookie", "expected"),
    [
        (
            "/api/openapi.json",
            "cabinet_staff",
            {
                ("post", "/api/session"),
                ("delete", "/api/session"),
                ("get", "/api/me"),
                ("post", "/api/account/password"),
                ("post", "/api/password/forgot"),
                ("post", "/api/staff"),
                ("post", "/api/staff/{staff_id}/active"),
                ("post", "/api/clients/{client_id}/portal/invite"),
                ("post", "/api/clients/{client_id}/portal/active"),
                ("get", "/api/audit"),
            },
        ),
        (
            "/portal/api/openapi.json",
            "cabinet_portal",
            {
                ("post", "/portal/api/session"),
                ("delete", "/portal/api/session"),
                ("get", "/portal/api/me"),
                ("post", "/portal/api/account/password"),
                ("post", "/portal/api/password/forgot"),
            },
        ),
    ],
    ids=["staff", "portal"],
)
async def test_the_api_describes_itself_in_openapi_3_1(
    http: httpx.AsyncClient, url: str, cookie: str, expected: set[tuple[str, str]]
) -> None:
    response = await http.get(url)
    assert response.status_code == 200
    spec = response.json()
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    listed = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert expected <= listed
    scheme = spec["components"]["securitySchemes"]["session"]
    assert scheme == {"type": "apiKey", "in": "cookie", "name": cookie}
    sign_in = spec["paths"][url.replace("openapi.json", "session")]["post"]
    assert sign_in["security"] == []
    me = spec["paths"][url.replace("openapi.json", "me")]["get"]
    assert me["security"] == [{"session": []}]


async def test_the_conflicts_writes_answer_are_in_the_openapi(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """The client file's tabs, notes, uploads, measures and the portal's answers raise
    Conflict (409) but did not list it, so a client built from the document, or a fuzzer
    checking statuses, met a status it was never told of. Every write lists 409 and 413."""
    owner = await make.owner()
    client = await make.client(await make.therapist())
    await login(http, owner)
    r = await http.put(
        f"/api/clients/{client.id}/clinical", json={"referral": "GP", "based_on": "an-old-version"}
    )
    assert r.status_code == 409, r.text
    staff = (await http.get("/api/openapi.json")).json()["paths"]
    portal = (await http.get("/portal/api/openapi.json")).json()["paths"]
    undocumented = [
        f"{method} {path}"
        for paths in (staff, portal)
        for path, ops in paths.items()
        for method, op in ops.items()
        if method in {"post", "put", "patch", "delete"}
        and not {"409", "413"} <= set(op["responses"])
    ]
    assert undocumented == []
    for path, method in [
        ("/api/clients/{client_id}/clinical", "put"),
        ("/api/clients/{client_id}/contact", "put"),
        ("/api/clients/{client_id}/account", "put"),
        ("/api/appointments/{appointment_id}/note", "put"),
        ("/api/appointments/{appointment_id}/note/addenda", "post"),
        ("/api/clients/{client_id}/documents", "post"),
        ("/api/clients/{client_id}/measures", "post"),
    ]:
        assert "409" in staff[path][method]["responses"], (method, path)


# --- who reaches what ------------------------------------------------------------------------


@dataclass
class Cast:
    """One practice and a signed-in browser for each kind of caller."""

    owner: StaffUser
    therapist: StaffUser
    client: Client
    browsers: dict[str, httpx.AsyncClient]


CALLERS = [
    "owner",
    "therapist",
    "supervisor",
    "other_therapist",
    "office_admin",
    "client",
    "other_client",
    "nobody",
]


@pytest.fixture
async def cast(make: Factory, new_http: Callable[..., httpx.AsyncClient]) -> AsyncIterator[Cast]:
    owner = await make.owner()
    therapist = await make.therapist()
    supervisor = await make.therapist()
    await StaffUser.filter(id=therapist.id).update(supervisor_id=supervisor.id)
    other_therapist = await make.therapist()
    office_admin = await make.office_admin()
    client = await make.client(therapist)
    other_client = await make.client(other_therapist)
    people: dict[str, StaffUser | Client | None] = {
        "owner": owner,
        "therapist": therapist,
        "supervisor": supervisor,
        "other_therapist": other_therapist,
        "office_admin": office_admin,
        "client": client,
        "other_client": other_client,
        "nobody": None,
    }
    browsers: dict[str, httpx.AsyncClient] = {}
    for i, (name, who) in enumerate(people.items()):
        browser = new_http(f"10.0.5.{i}")
        if who is not None:
            await login(browser, who)
        browsers[name] = browser
    yield Cast(owner, therapist, client, browsers)
    for browser in browsers.values():
        await browser.aclose()


CLIENT_ENDPOINT = {
    "owner": 200,
    "therapist": 200,
    "supervisor": 200,
    "other_therapist": 404,
    "office_admin": 200,
    "client": 401,
    "other_client": 401,
    "nobody": 401,
}
OWNER_ONLY_BY_ID = {
    "owner": 200,
    "therapist": 403,
    "supervisor": 403,
    "other_therapist": 403,
    "office_admin": 403,
    "client": 401,
    "other_client": 401,
    "nobody": 401,
}


@pytest.mark.parametrize("caller", CALLERS)
async def test_inviting_a_client_to_the_portal(cast: Cast, caller: str) -> None:
    browser = cast.browsers[caller]
    response = await browser.post(f"/api/clients/{cast.client.id}/portal/invite", json={})
    assert response.status_code == CLIENT_ENDPOINT[caller], response.text
    missing = await browser.post("/api/clients/999999/portal/invite", json={})
    assert missing.status_code == (404 if CLIENT_ENDPOINT[caller] != 401 else 401)
    if CLIENT_ENDPOINT[caller] == 404:
        # Indistinguishable from a missing id.
        assert response.json() == missing.json()


@pytest.mark.parametrize("caller", CALLERS)
async def test_switching_a_client_portal_access(cast: Cast, caller: str) -> None:
    browser = cast.browsers[caller]
    response = await browser.post(
        f"/api/clients/{cast.client.id}/portal/active", json={"active": False}
    )
    assert response.status_code == CLIENT_ENDPOINT[caller], response.text
    account = await PortalAccount.get(client_id=cast.client.id)
    assert account.is_active is (CLIENT_ENDPOINT[caller] != 200)


@pytest.mark.parametrize("caller", CALLERS)
async def test_opening_a_client_file_page(cast: Cast, caller: str) -> None:
    browser = cast.browsers[caller]
    response = await browser.get(f"/staff/clients/{cast.client.id}")
    expected = CLIENT_ENDPOINT[caller]
    if expected == 401:
        assert response.status_code == 303
        assert response.headers["location"].startswith("/staff/login")
    else:
        assert response.status_code == expected
    if expected == 200:
        assert cast.client.full_name in response.text


@pytest.mark.parametrize("caller", CALLERS)
async def test_deactivating_a_colleague(cast: Cast, caller: str) -> None:
    browser = cast.browsers[caller]
    response = await browser.post(f"/api/staff/{cast.therapist.id}/active", json={"active": False})
    assert response.status_code == OWNER_ONLY_BY_ID[caller], response.text
    assert (await StaffUser.get(id=cast.therapist.id)).is_active is (response.status_code != 200)


@pytest.mark.parametrize("caller", CALLERS)
async def test_creating_staff(cast: Cast, caller: str) -> None:
    browser = cast.browsers[caller]
    response = await browser.post("/api/staff", json=new_staff())
    assert response.status_code == OWNER_ONLY_BY_ID[caller], response.text
    assert await StaffUser.exists(email=NEW_STAFF["email"]) is (response.status_code == 200)


async def test_staff_of_another_practice_are_out_of_reach(
    http: httpx.AsyncClient, make: Factory
) -> None:
    await login(http, await make.owner())
    elsewhere = await Practice.create(name="Another practice")
    stranger = await StaffUser.create(
        practice=elsewhere,
        email="stranger@example.org",
        password_hash="x",
        first_name="S",
        last_name="T",
        role="therapist",
    )
    response = await http.post(f"/api/staff/{stranger.id}/active", json={"active": False})
    assert response.status_code == 404
    assert (await StaffUser.get(id=stranger.id)).is_active
    # Nor may they become a supervisor here.
    response = await http.post("/api/staff", json=new_staff(supervisor_id=stranger.id))
    assert response.status_code == 404


async def test_head_on_an_api_route_answers_as_its_get(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """Starlette lets HEAD through on every GET route: it is the GET without a body, not a
    500 (it was, to anyone, before sign-in)."""
    assert (await http.head("/api/conversations")).status_code == 401
    assert (await http.head("/portal/api/conversations")).status_code == 401
    await login(http, await make.owner())
    r = await http.head("/api/conversations")
    assert r.status_code == 200 and r.content == b""


@pytest.mark.parametrize(
    "url",
    [
        "/api/clients/{client}/sessions?therapist=%C2%B2",
        "/staff/clients/{client}/sessions?therapist=%C2%B2",
        "/staff/setup/availability?practitioner=%C2%B2",
        "/staff/audit?client=%C2%B2",
        "/staff/audit?client=99999999999999999999",
        "/staff/audit?page=99999999999999999999",
    ],
)
async def test_digits_that_name_no_row_in_a_query_are_ignored_not_a_crash(
    http: httpx.AsyncClient, make: Factory, url: str
) -> None:
    """ "²" passes str.isdigit() and fails int(); a number past any id column fails in the
    database. Neither names a row: the filter is dropped, the page shows."""
    owner = await make.owner()
    client = await make.client(await make.therapist())
    await login(http, owner)
    assert (await http.get(url.format(client=client.id))).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/api/clients?tag=99999999999999999999",
        "/api/clients?therapist=99999999999999999999",
        "/api/agenda?start=2026-01-05&practitioner=99999999999999999999",
        "/api/agenda?start=2026-01-05&location=99999999999999999999",
    ],
)
async def test_a_number_past_any_integer_column_is_a_422_not_a_crash(
    http: httpx.AsyncClient, make: Factory, url: str
) -> None:
    await login(http, await make.owner())
    r = await http.get(url)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid"


@pytest.mark.parametrize(
    "url",
    [
        "/api/conversations?q=a%00b",
        "/api/messaging/clients?q=%00",
        "/api/clients/{client}/sessions?service=%00",
        "/staff/clients/{client}/sessions?service=x%00",
        "/staff/clients/{client}/circle?client_q=%00",
    ],
)
async def test_a_nul_in_a_query_is_a_422_not_a_crash(
    http: httpx.AsyncClient, make: Factory, url: str
) -> None:
    """Searches and filters read by the handlers themselves reached PostgreSQL with the NUL,
    which it refuses (a 500 there, found by an access audit). Refused for every parameter."""
    owner = await make.owner()
    client = await make.client(owner)
    await login(http, owner)
    r = await http.get(url.format(client=client.id))
    assert r.status_code == 422
    if url.startswith("/api/"):
        assert "query" in r.json()["error"]["fields"]


async def test_dates_past_any_calendar_are_a_422_not_a_crash(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """A week from 31 December 9999, or a day before 1 January 1, overflows Python's dates:
    the agenda, its free slots, a booking, a move and time off answered 500 (found by an
    access audit). Dates before 1900 or after 2200 are a 422 on their field, everywhere."""
    therapist = await make.therapist()
    client = await make.client(therapist)
    book = await session_booker(await make.practice(), therapist, client)
    booked = await book(datetime.now(UTC) + timedelta(days=3))
    service = await Service.first()
    assert service is not None
    await login(http, therapist)
    far = "9999-12-31T23:30:00+00:00"
    answers = [
        await http.get("/api/agenda?start=9999-12-31"),
        await http.get("/api/agenda?start=0001-01-01"),
        await http.get(
            f"/api/agenda/slots?practitioner={therapist.id}&service={service.id}"
            "&start=9999-12-31&days=5"
        ),
        await http.post(
            "/api/appointments",
            json={
                "practitioner_id": therapist.id,
                "client_id": client.id,
                "service_id": service.id,
                "starts_at": far,
            },
        ),
        await http.post(f"/api/appointments/{booked.id}/move", json={"starts_at": far}),
        await http.post(
            "/api/setup/time-off",
            json={
                "practitioner_id": therapist.id,
                "starts_at": "0001-01-01T00:00:00",
                "ends_at": "0001-01-01T01:00:00",
            },
        ),
    ]
    assert [r.status_code for r in answers] == [422] * len(answers), [r.text for r in answers]
    assert (await http.get("/api/agenda?start=2199-12-30")).status_code == 200


async def test_marking_read_up_to_a_number_past_any_id_is_a_422(
    http: httpx.AsyncClient, make: Factory
) -> None:
    owner = await make.owner()
    client = await make.client(owner)
    await login(http, owner)
    new = {"kind": "client", "subject": "Hello", "client_id": client.id}
    conversation = (await http.post("/api/conversations", json=new)).json()["id"]
    r = await http.post(f"/api/conversations/{conversation}/read", json={"up_to": 10**20})
    assert r.status_code == 422
    assert "up_to" in r.json()["error"]["fields"]
