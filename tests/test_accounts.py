"""Sign-in, sessions, passwords, throttling, reset links, portal invitations, deactivation."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets
from argon2 import PasswordHasher
from websockets.asyncio.client import ClientConnection

from models.accounts import (
    AccountToken,
    AuthSession,
    LoginAttempt,
    PortalAccount,
    Realm,
    StaffRole,
    StaffUser,
)
from models.audit import AuditEntry
from models.clients import Client
from models.jobs import Job
from models.notifications import OutboxMessage
from server import jobs
from server.actions import accounts as account_actions
from server.auth.passwords import hasher
from server.auth.sessions import COOKIE_NAMES
from server.settings import Settings, set_settings
from tests.conftest import PASSWORD, Factory, LiveServer, login, session_of, session_token

pytestmark = pytest.mark.usefixtures("settled_hub")

NEW_PASSWORD = "a quiet lighthouse at dawn"
WRONG = "not the password at all"


async def sign_in(
    http: httpx.AsyncClient, email: str, password: str, realm: str = "staff"
) -> httpx.Response:
    url = "/api/session" if realm == "staff" else "/portal/api/session"
    return await http.post(url, json={"email": email, "password": password})


async def portal_email(client: object) -> str:
    return (await PortalAccount.get(client_id=client.id)).email  # type: ignore[attr-defined]


# --- sign-in -----------------------------------------------------------------------------------


async def test_staff_signs_in_through_the_api(http: httpx.AsyncClient, make: Factory) -> None:
    therapist = await make.therapist()
    response = await sign_in(http, therapist.email, PASSWORD)
    assert response.status_code == 200
    assert response.json()["email"] == therapist.email
    assert (await http.get("/api/me")).json()["id"] == therapist.id


async def test_email_is_matched_whatever_its_case(http: httpx.AsyncClient, make: Factory) -> None:
    therapist = await make.therapist()
    response = await sign_in(http, f"  {therapist.email.upper()} ", PASSWORD)
    assert response.status_code == 200


async def test_client_signs_in_through_the_portal_api(
    http: httpx.AsyncClient, make: Factory
) -> None:
    client = await make.client(await make.therapist())
    response = await sign_in(http, await portal_email(client), PASSWORD, "portal")
    assert response.status_code == 200
    me = (await http.get("/portal/api/me")).json()
    assert me["kind"] == "client" and me["client_id"] == client.id


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    http: httpx.AsyncClient, make: Factory
) -> None:
    therapist = await make.therapist()
    client = await make.client(therapist)
    for realm, email in (("staff", therapist.email), ("portal", await portal_email(client))):
        wrong = await sign_in(http, email, WRONG, realm)
        unknown = await sign_in(http, "nobody@example.org", WRONG, realm)
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()
        assert wrong.json()["error"]["message"] == "The email or password is incorrect."
        assert COOKIE_NAMES[Realm(realm)] not in http.cookies
    assert await AuthSession.all().count() == 0


async def test_staff_signs_in_with_the_form(http: httpx.AsyncClient, make: Factory) -> None:
    therapist = await make.therapist()
    response = await http.post(
        "/staff/login", data={"email": therapist.email, "password": PASSWORD, "next": ""}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/staff/"
    assert (await http.get("/staff/")).status_code == 200


async def test_the_form_returns_to_the_page_asked_for_but_never_off_site(
    new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    therapist = await make.therapist()
    for target, expected in (("/staff/clients", "/staff/clients"), ("//evil.example/", "/staff/")):
        async with new_http() as browser:
            response = await browser.post(
                "/staff/login",
                data={"email": therapist.email, "password": PASSWORD, "next": target},
            )
            assert response.headers["location"] == expected


async def test_the_form_refuses_a_wrong_password_like_an_unknown_email(
    http: httpx.AsyncClient, make: Factory
) -> None:
    therapist = await make.therapist()
    client = await make.client(therapist)
    for prefix, email in (("/staff", therapist.email), ("/portal", await portal_email(client))):
        wrong = await http.post(f"{prefix}/login", data={"email": email, "password": WRONG})
        unknown = await http.post(
            f"{prefix}/login", data={"email": "nobody@example.org", "password": WRONG}
        )
        assert wrong.status_code == unknown.status_code == 401
        assert "The email or password is incorrect." in wrong.text
        assert wrong.text.replace(email, "X") == unknown.text.replace("nobody@example.org", "X")
    assert (await http.get("/staff/", follow_redirects=False)).status_code == 303


async def test_client_signs_in_with_the_portal_form(http: httpx.AsyncClient, make: Factory) -> None:
    client = await make.client(await make.therapist())
    response = await http.post(
        "/portal/login", data={"email": await portal_email(client), "password": PASSWORD}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/portal/"
    assert (await http.get("/portal/")).status_code == 200


async def test_deactivated_staff_cannot_sign_in(http: httpx.AsyncClient, make: Factory) -> None:
    therapist = await make.therapist(is_active=False)
    response = await sign_in(http, therapist.email, PASSWORD)
    assert response.status_code == 401
    assert response.json() == (await sign_in(http, "nobody@example.org", PASSWORD)).json()


async def test_client_with_portal_disabled_cannot_sign_in(
    http: httpx.AsyncClient, make: Factory
) -> None:
    client = await make.client(await make.therapist())
    await PortalAccount.filter(client_id=client.id).update(is_active=False)
    response = await sign_in(http, await portal_email(client), PASSWORD, "portal")
    assert response.status_code == 401


async def test_switching_an_account_off_cancels_the_links_in_its_inbox(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """A reset link already sent stayed valid through the switch-off, and set a password the
    day the access was switched back on."""
    from server.actions.accounts import do_set_portal_active, do_set_staff_active
    from server.auth.sessions import Caller

    owner = await make.owner()
    client = await make.client(await make.therapist())
    email = await portal_email(client)
    await ask_reset(http, "/portal/password/forgot", data={"email": email})
    link = link_in(await OutboxMessage.get(to=email, purpose="password_reset"))
    assert (await http.get(link)).status_code == 200
    await do_set_portal_active(Caller.acting_as(owner), client, False)
    await do_set_portal_active(Caller.acting_as(owner), client, True)
    page = await http.get(link)
    assert page.status_code == 404 and "expired or was already used" in page.text
    taken = await http.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert taken.status_code == 404
    # Back on is a fresh start: the old password is gone, a new invitation is in the inbox.
    assert (await sign_in(http, email, PASSWORD, "portal")).status_code == 401
    invitation = link_in(
        await OutboxMessage.filter(to=email, purpose="portal_invitation").order_by("-id").first()
    )
    chosen = await http.post(invitation, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert chosen.status_code == 200
    assert (await sign_in(http, email, NEW_PASSWORD, "portal")).status_code == 200
    # The same for a colleague deactivated, then reactivated.
    therapist = await make.therapist()
    await ask_reset(http, "/staff/password/forgot", data={"email": therapist.email})
    link = link_in(await OutboxMessage.get(to=therapist.email, purpose="password_reset"))
    await do_set_staff_active(Caller.acting_as(owner), therapist, False)
    await do_set_staff_active(Caller.acting_as(owner), therapist, True)
    assert (await http.get(link)).status_code == 404


# --- sessions --------------------------------------------------------------------------------


async def test_signing_in_issues_a_new_session_id(http: httpx.AsyncClient, make: Factory) -> None:
    therapist = await make.therapist()
    # A cookie planted before sign-in (session fixation) is never the one that gets signed in.
    http.cookies.set("cabinet_staff", "planted-by-someone-else", domain="testserver.local")
    await login(http, therapist)
    assert session_token(http) != "planted-by-someone-else"
    first = session_token(http)
    await login(http, therapist)
    assert session_token(http) != first


async def test_signing_in_again_in_the_same_browser_ends_the_previous_session(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    therapist = await make.therapist()
    await login(http, therapist)
    old_token = session_token(http)
    old = await session_of(http)
    # The second sign-in uses the form, which carries no CSRF token: it must still work.
    del http.headers["X-CSRF-Token"]
    response = await http.post(
        "/staff/login", data={"email": therapist.email, "password": PASSWORD}
    )
    assert response.status_code == 303
    assert session_token(http) != old_token
    await old.refresh_from_db()
    assert old.revoked_at is not None
    async with new_http() as thief:
        thief.cookies.set("cabinet_staff", old_token, domain="testserver.local")
        assert (await thief.get("/api/me")).status_code == 401
    assert (await http.get("/api/me")).status_code == 200


async def test_an_idle_session_ends(http: httpx.AsyncClient, make: Factory) -> None:
    therapist = await make.therapist()
    await login(http, therapist)
    session = await session_of(http)
    stale = datetime.now(UTC) - timedelta(seconds=session.idle_seconds + 5)
    await AuthSession.filter(id=session.id).update(last_seen_at=stale)
    assert (await http.get("/api/me")).status_code == 401
    page = await http.get("/staff/")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/staff/login")


async def test_a_session_in_use_stays_alive(http: httpx.AsyncClient, make: Factory) -> None:
    therapist = await make.therapist()
    await login(http, therapist)
    session = await session_of(http)
    # Seen five minutes ago: the request refreshes last_seen_at.
    recent = datetime.now(UTC) - timedelta(minutes=5)
    await AuthSession.filter(id=session.id).update(last_seen_at=recent)
    assert (await http.get("/api/me")).status_code == 200
    await session.refresh_from_db()
    assert session.last_seen_at > recent + timedelta(minutes=4)


async def test_what_an_unattended_page_fetches_by_itself_does_not_keep_the_session(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    """An open tab refetches by itself when an event arrives (the unread badge on every
    page, the conversation list, the agenda, a live region), and each fetch pushed the idle
    timeout back: on a busy day a clinician's screen left open never signed itself out,
    and went on showing new messages to whoever passed. The page's scripts mark what they
    fetch with no one at the keyboard (X-Cabinet-Unattended, server/static/realtime.js),
    and that answers without counting as the person's activity."""
    therapist = await make.therapist()
    await login(http, therapist)
    session = await session_of(http)
    unattended = {"X-Cabinet-Unattended": "1"}
    nearly = datetime.now(UTC) - timedelta(seconds=session.idle_seconds - 30)
    await AuthSession.filter(id=session.id).update(last_seen_at=nearly)
    for url in ("/api/unread", "/api/me", "/api/conversations", "/staff/messages"):
        assert (await http.get(url, headers=unattended)).status_code == 200, url
    await session.refresh_from_db()
    assert session.last_seen_at == nearly
    stale = datetime.now(UTC) - timedelta(seconds=session.idle_seconds + 5)
    await AuthSession.filter(id=session.id).update(last_seen_at=stale)
    assert (await http.get("/api/unread", headers=unattended)).status_code == 401
    # The portal's pages fetch the same way.
    client = await make.client(therapist)
    async with new_http() as tab:
        await login(tab, client)
        portal = await session_of(tab, Realm.PORTAL)
        await AuthSession.filter(id=portal.id).update(last_seen_at=nearly)
        assert (await tab.get("/portal/api/unread", headers=unattended)).status_code == 200
        await portal.refresh_from_db()
        assert portal.last_seen_at == nearly
        # Without the mark, a request is the person's and keeps the session.
        assert (await tab.get("/portal/api/unread")).status_code == 200
        await portal.refresh_from_db()
        assert portal.last_seen_at > nearly


async def test_a_session_ends_at_its_absolute_lifetime(
    http: httpx.AsyncClient, make: Factory
) -> None:
    client = await make.client(await make.therapist())
    await login(http, client)
    session = await session_of(http, Realm.PORTAL)
    await AuthSession.filter(id=session.id).update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert (await http.get("/portal/api/me")).status_code == 401
    page = await http.get("/portal/")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/portal/login")


async def test_sign_out(http: httpx.AsyncClient, make: Factory) -> None:
    therapist = await make.therapist()
    await login(http, therapist)
    token = session_token(http)
    response = await http.delete("/api/session")
    assert response.status_code == 200
    assert "cabinet_staff" not in http.cookies
    http.cookies.set("cabinet_staff", token, domain="testserver.local")
    assert (await http.get("/api/me")).status_code == 401


async def test_sign_out_with_the_form(http: httpx.AsyncClient, make: Factory) -> None:
    client = await make.client(await make.therapist())
    me = await login(http, client)
    token = session_token(http, Realm.PORTAL)
    del http.headers["X-CSRF-Token"]
    response = await http.post("/portal/logout", data={"csrf_token": me["csrf_token"]})
    assert response.status_code == 303
    assert response.headers["location"] == "/portal/login"
    http.cookies.set("cabinet_portal", token, domain="testserver.local")
    assert (await http.get("/portal/api/me")).status_code == 401


async def test_sign_out_everywhere_ends_the_other_browsers(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    therapist = await make.therapist()
    me = await login(http, therapist)
    async with new_http() as other:
        await login(other, therapist)
        del http.headers["X-CSRF-Token"]
        response = await http.post(
            "/staff/account/sessions/revoke", data={"csrf_token": me["csrf_token"]}
        )
        assert response.status_code == 303
        assert (await other.get("/api/me")).status_code == 401
    assert (await http.get("/api/me")).status_code == 401
    assert await AuthSession.filter(revoked_at=None).count() == 0


# --- passwords -------------------------------------------------------------------------------


async def test_changing_the_password_ends_the_other_sessions_only(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    therapist = await make.therapist()
    await login(http, therapist)
    async with new_http() as other:
        await login(other, therapist)
        response = await http.post(
            "/api/account/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        )
        assert response.status_code == 200
        assert (await other.get("/api/me")).status_code == 401
    assert (await http.get("/api/me")).status_code == 200
    async with new_http("10.0.0.3") as fresh:
        assert (await sign_in(fresh, therapist.email, PASSWORD)).status_code == 401
        assert (await sign_in(fresh, therapist.email, NEW_PASSWORD)).status_code == 200


async def test_changing_the_password_needs_the_current_one(
    http: httpx.AsyncClient, make: Factory
) -> None:
    therapist = await make.therapist()
    await login(http, therapist)
    response = await http.post(
        "/api/account/password", json={"current_password": WRONG, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 422
    assert "current_password" in response.json()["error"]["fields"]


async def test_guessing_the_current_password_is_throttled_as_sign_in_is(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    """Whoever finds a session open on an unlocked screen guessed the password through the
    change-password form as fast as argon2 checked it: a 422 each time, never a 429."""
    therapist = await make.therapist()
    await login(http, therapist)
    codes = []
    for i in range(7):
        r = await http.post(
            "/api/account/password",
            json={"current_password": f"guess-{i}", "new_password": NEW_PASSWORD},
        )
        codes.append(r.status_code)
    assert codes == [422] * 5 + [429] * 2, codes
    assert int(r.headers["retry-after"]) > 0
    # Even the right password is refused now, and it is not changed.
    r = await http.post(
        "/api/account/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert r.status_code == 429
    form = await http.post(
        "/staff/account/password",
        data={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert form.status_code == 429 and form.headers["retry-after"]
    # They count as failed sign-ins from that address: signing in from there is held too.
    assert (await sign_in(http, therapist.email, PASSWORD)).status_code == 429
    # The owner, signed in from another address, still changes it.
    async with new_http("10.0.0.8") as own:
        await login(own, therapist)
        r = await own.post(
            "/api/account/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        )
        assert r.status_code == 200
    assert await LoginAttempt.filter(succeeded=False).count() == 5


@pytest.mark.parametrize(
    "password",
    ["short1!", "password1234", "Password2024!", "aaaaaaaaaaaa", "dana.smith is me"],
    ids=["too-short", "common", "common-decorated", "one-letter", "email-local-part"],
)
async def test_weak_passwords_are_refused(
    http: httpx.AsyncClient, make: Factory, password: str
) -> None:
    therapist = await make.therapist(email="dana.smith@example.org")
    await login(http, therapist)
    before = (await StaffUser.get(id=therapist.id)).password_hash
    response = await http.post(
        "/api/account/password", json={"current_password": PASSWORD, "new_password": password}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid" and "password" in error["fields"]
    assert (await StaffUser.get(id=therapist.id)).password_hash == before


async def test_an_old_hash_is_upgraded_at_sign_in(http: httpx.AsyncClient, make: Factory) -> None:
    therapist = await make.therapist()
    old_hash = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1).hash(PASSWORD)
    await StaffUser.filter(id=therapist.id).update(password_hash=old_hash)
    assert (await sign_in(http, therapist.email, PASSWORD)).status_code == 200
    new_hash = (await StaffUser.get(id=therapist.id)).password_hash
    assert new_hash != old_hash
    assert not hasher().check_needs_rehash(new_hash)
    async with httpx.AsyncClient(transport=http._transport, base_url="http://testserver") as again:
        assert (await sign_in(again, therapist.email, PASSWORD)).status_code == 200


# --- throttling ------------------------------------------------------------------------------


async def test_five_failures_block_that_address_for_that_account(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    therapist = await make.therapist()
    for _ in range(5):
        assert (await sign_in(http, therapist.email, WRONG)).status_code == 401
    blocked = await sign_in(http, therapist.email, PASSWORD)
    assert blocked.status_code == 429
    assert "Too many failed sign-in attempts" in blocked.json()["error"]["message"]
    assert int(blocked.headers["retry-after"]) > 0
    form = await http.post("/staff/login", data={"email": therapist.email, "password": PASSWORD})
    assert form.status_code == 429 and "Too many failed sign-in attempts" in form.text
    # The real user, from their own address, is not locked out.
    async with new_http("10.0.0.7") as elsewhere:
        assert (await sign_in(elsewhere, therapist.email, PASSWORD)).status_code == 200


async def test_guesses_sent_all_at_once_are_throttled_like_one_after_another(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """Twelve wrong passwords sent together: the throttle counted failures only once each
    password check had finished, so all twelve were checked. Five are, then 429s."""
    therapist = await make.therapist()
    answers = await asyncio.gather(*(sign_in(http, therapist.email, WRONG) for _ in range(12)))
    codes = sorted(r.status_code for r in answers)
    assert codes.count(401) <= 5 and codes.count(429) >= 7, codes
    assert await LoginAttempt.filter(email=therapist.email).count() == codes.count(401)


async def test_one_address_guessing_across_accounts_is_blocked(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    therapist = await make.therapist()
    for i in range(30):
        response = await sign_in(http, f"guess{i}@example.org", WRONG)
        assert response.status_code == 401
    assert (await sign_in(http, therapist.email, PASSWORD)).status_code == 429
    async with new_http("10.0.0.8") as elsewhere:
        assert (await sign_in(elsewhere, therapist.email, PASSWORD)).status_code == 200


async def test_an_ipv6_network_guessing_across_accounts_is_blocked_as_one_address(
    new_http: Callable[..., httpx.AsyncClient], make: Factory, settings: Settings
) -> None:
    """Every IPv6 connection gets a whole /64 network from its provider: trying one password
    on each practice's accounts from a new address of it each time was never counted
    against one address. The throttle counts a /64 as one address."""
    set_settings(replace(settings, throttle_address_limit=4, throttle_pair_limit=3))
    therapist = await make.therapist()
    for i in range(4):
        async with new_http(f"2001:db8:1:2::{i + 1:x}") as guesser:
            assert (await sign_in(guesser, f"guess{i}@example.org", WRONG)).status_code == 401
    async with new_http("2001:db8:1:2:ffff::9") as guesser:
        assert (await sign_in(guesser, therapist.email, PASSWORD)).status_code == 429
    # One account from rotating addresses: the pair's limit holds too.
    client = await make.client(therapist)
    email = await portal_email(client)
    for i in range(3):
        async with new_http(f"2001:db8:7:7::{i + 1:x}") as guesser:
            assert (await sign_in(guesser, email, WRONG, "portal")).status_code == 401
    async with new_http("2001:db8:7:7::99") as guesser:
        assert (await sign_in(guesser, email, PASSWORD, "portal")).status_code == 429
    # Another network is another address.
    async with new_http("2001:db8:1:3::1") as elsewhere:
        assert (await sign_in(elsewhere, therapist.email, PASSWORD)).status_code == 200


async def test_many_addresses_guessing_one_account_do_not_lock_out_a_known_browser(
    new_http: Callable[..., httpx.AsyncClient], make: Factory, settings: Settings
) -> None:
    set_settings(replace(settings, throttle_account_limit=4))
    therapist = await make.therapist()
    async with new_http("10.0.1.1") as own_browser:
        await login(own_browser, therapist)
        assert own_browser.cookies.get("cabinet_device")
        for i in range(4):
            async with new_http(f"10.0.2.{i}") as attacker:
                assert (await sign_in(attacker, therapist.email, WRONG)).status_code == 401
        async with new_http("10.0.3.1") as stranger:
            assert (await sign_in(stranger, therapist.email, PASSWORD)).status_code == 429
        # The browser that signed in before carries the known-device cookie.
        assert (await sign_in(own_browser, therapist.email, PASSWORD)).status_code == 200


async def test_a_browser_that_set_the_password_from_the_link_is_not_locked_out(
    http: httpx.AsyncClient,
    new_http: Callable[..., httpx.AsyncClient],
    make: Factory,
    settings: Settings,
) -> None:
    """Strangers' guesses hold Inès's new account throttled before she ever signed in: the
    browser in which she set her password from the invitation still gets in."""
    set_settings(replace(settings, throttle_account_limit=4))
    therapist = await make.therapist()
    client = await make.client(therapist, portal=False, email="ines@example.org")
    await login(http, therapist)
    assert (await http.post(f"/api/clients/{client.id}/portal/invite", json={})).status_code == 200
    for i in range(4):
        async with new_http(f"10.0.4.{i}") as attacker:
            assert (await sign_in(attacker, "ines@example.org", WRONG, "portal")).status_code == 401
    link = link_in(await OutboxMessage.get(purpose="portal_invitation"))
    async with new_http("10.0.5.1") as own:
        done = await own.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert done.status_code == 200 and own.cookies.get("cabinet_device")
        assert (await sign_in(own, "ines@example.org", NEW_PASSWORD, "portal")).status_code == 200
    async with new_http("10.0.5.2") as stranger:
        r = await sign_in(stranger, "ines@example.org", NEW_PASSWORD, "portal")
        assert r.status_code == 429


# --- password reset --------------------------------------------------------------------------


def link_in(message: OutboxMessage) -> str:
    match = re.search(r"http://testserver(/\S+)", message.body_text)
    assert match, message.body_text
    return match.group(1)


async def ask_reset(http: httpx.AsyncClient, path: str, **kwargs: Any) -> httpx.Response:
    """Ask for a reset link, then run what the worker would run within the second."""
    answer = await http.post(path, **kwargs)
    await jobs.run_due()
    return answer


async def test_a_reset_request_does_the_same_work_for_known_and_unknown_emails(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """Looking the account up during the request answered an unknown address faster than a
    real one (a portal address is a practice's client). The request only queues a job."""
    therapist = await make.therapist()
    client = await make.client(therapist)
    for path, email in [
        ("/staff/password/forgot", therapist.email),
        ("/staff/password/forgot", "nobody@example.org"),
        ("/portal/password/forgot", await portal_email(client)),
        ("/portal/password/forgot", "someone@example.org"),
    ]:
        tokens, sent = await AccountToken.all().count(), await OutboxMessage.all().count()
        jobs_before = await Job.all().count()
        answer = await http.post(path, data={"email": email})
        assert answer.status_code == 200
        # Nothing looked up and nothing written but the job, whoever the address is.
        assert await AccountToken.all().count() == tokens
        assert await OutboxMessage.all().count() == sent
        assert await Job.filter(kind="auth.reset_requested").count() == jobs_before + 1
    await jobs.run_due()
    assert await OutboxMessage.filter(purpose="password_reset").count() == 2
    assert {m.to for m in await OutboxMessage.filter(purpose="password_reset")} == {
        therapist.email,
        await portal_email(client),
    }


async def test_the_reset_email_is_in_the_language_of_the_page_it_was_asked_from(
    http: httpx.AsyncClient, make: Factory
) -> None:
    therapist = await make.therapist()
    await ask_reset(
        http,
        "/staff/password/forgot",
        data={"email": therapist.email},
        headers={"Accept-Language": "fr-FR,fr;q=0.9"},
    )
    sent = await OutboxMessage.get(to=therapist.email, purpose="password_reset")
    assert "mot de passe" in sent.subject.lower()


async def test_reset_request_answers_the_same_for_unknown_emails(
    http: httpx.AsyncClient, make: Factory
) -> None:
    therapist = await make.therapist()
    known = await ask_reset(http, "/staff/password/forgot", data={"email": therapist.email})
    unknown = await ask_reset(http, "/staff/password/forgot", data={"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text
    known_api = await ask_reset(http, "/api/password/forgot", json={"email": therapist.email})
    unknown_api = await ask_reset(
        http, "/api/password/forgot", json={"email": "nobody@example.org"}
    )
    assert known_api.status_code == unknown_api.status_code == 200
    assert known_api.json() == unknown_api.json()
    assert await OutboxMessage.filter(to=therapist.email).count() == 2
    assert await OutboxMessage.filter(to="nobody@example.org").count() == 0


async def test_reset_requests_beyond_three_send_nothing_more_and_say_the_same(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """Anyone can type a colleague's address into the form: the fourth and later requests
    within a link's lifetime send no email, and do not cancel the last link sent."""
    therapist = await make.therapist()
    answers = [
        await ask_reset(http, "/staff/password/forgot", data={"email": therapist.email})
        for _ in range(6)
    ]
    assert {r.status_code for r in answers} == {200}
    assert len({r.text for r in answers}) == 1
    sent = await OutboxMessage.filter(to=therapist.email, purpose="password_reset").order_by("id")
    assert len(sent) == 3
    form = await http.get(link_in(sent[-1]))
    assert form.status_code == 200  # the last link sent still works


async def test_reset_requests_from_one_address_are_limited_whatever_the_email(
    http: httpx.AsyncClient,
    new_http: Callable[..., httpx.AsyncClient],
    make: Factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each request writes a job: a script posting the form in a loop filled the jobs table
    and kept the worker busy. Beyond the limit one address is told to wait, the same way for
    a real and an unknown email; another address, and the other realm, are not held up."""
    monkeypatch.setattr(account_actions, "RESET_REQUESTS_PER_ADDRESS", 3)
    therapist = await make.therapist()
    emails = [therapist.email, "nobody@example.org", "other@example.org"]
    for email in emails:
        assert (await http.post("/staff/password/forgot", data={"email": email})).status_code == 200
    written = await Job.filter(kind="auth.reset_requested").count()
    for email in (therapist.email, "nobody@example.org"):
        page = await http.post("/staff/password/forgot", data={"email": email})
        assert page.status_code == 429
        assert "Too many requests" in page.text
        api = await http.post("/api/password/forgot", json={"email": email})
        assert api.status_code == 429 and api.headers["retry-after"] == "900"
    assert await Job.filter(kind="auth.reset_requested").count() == written
    async with new_http("203.0.113.9") as other:
        elsewhere = await other.post("/staff/password/forgot", data={"email": therapist.email})
    portal = await http.post("/portal/password/forgot", data={"email": "someone@example.org"})
    assert elsewhere.status_code == portal.status_code == 200
    await jobs.run_due()
    assert await OutboxMessage.filter(to=therapist.email, purpose="password_reset").count() == 2


async def test_reset_link_sets_a_new_password_once(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    therapist = await make.therapist()
    async with new_http() as signed_in:
        await login(signed_in, therapist)
        await ask_reset(http, "/staff/password/forgot", data={"email": therapist.email})
        link = link_in(await OutboxMessage.get(to=therapist.email, purpose="password_reset"))
        assert link.startswith("/staff/password/reset/")
        form = await http.get(link)
        assert form.status_code == 200 and therapist.email in form.text
        done = await http.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert done.status_code == 200 and "Your password is saved" in done.text
        # Whoever was signed in with the old password is out.
        assert (await signed_in.get("/api/me")).status_code == 401
    assert (await sign_in(http, therapist.email, PASSWORD)).status_code == 401
    assert (await sign_in(http, therapist.email, NEW_PASSWORD)).status_code == 200
    again = await http.post(link, data={"password": "another fine phrase", "confirm": "x"})
    assert again.status_code == 404
    assert "expired or was already used" in again.text
    assert (await http.get(link)).status_code == 404


async def test_reset_link_refuses_a_weak_or_mismatched_password(
    http: httpx.AsyncClient, make: Factory
) -> None:
    therapist = await make.therapist()
    await ask_reset(http, "/api/password/forgot", json={"email": therapist.email})
    link = link_in(await OutboxMessage.get(to=therapist.email))
    weak = await http.post(link, data={"password": "password1234", "confirm": "password1234"})
    assert weak.status_code == 422
    differ = await http.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "!"})
    assert differ.status_code == 422
    # The link is still good after a refused attempt.
    ok = await http.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert ok.status_code == 200


async def test_an_expired_reset_link_is_refused(http: httpx.AsyncClient, make: Factory) -> None:
    client = await make.client(await make.therapist())
    email = await portal_email(client)
    await ask_reset(http, "/portal/password/forgot", data={"email": email})
    link = link_in(await OutboxMessage.get(to=email))
    assert link.startswith("/portal/password/reset/")
    await AccountToken.all().update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    page = await http.get(link)
    assert page.status_code == 404 and "expired or was already used" in page.text
    post = await http.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert post.status_code == 404
    assert (await sign_in(http, email, PASSWORD, "portal")).status_code == 200


async def test_a_new_reset_link_supersedes_the_previous_one(
    http: httpx.AsyncClient, make: Factory
) -> None:
    therapist = await make.therapist()
    await ask_reset(http, "/api/password/forgot", json={"email": therapist.email})
    await ask_reset(http, "/api/password/forgot", json={"email": therapist.email})
    first, second = [
        link_in(m) for m in await OutboxMessage.filter(to=therapist.email).order_by("id")
    ]
    assert (await http.get(first)).status_code == 404
    assert (await http.get(second)).status_code == 200


async def test_changing_the_password_cancels_the_reset_link_in_the_inbox(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    """A reset link stayed good for its hour after the password was changed: whoever read
    the inbox (the reason to change it) set a password of their own and signed in. A new
    password now cancels every link on its way, reset or invitation."""
    therapist = await make.therapist()
    await ask_reset(http, "/staff/password/forgot", data={"email": therapist.email})
    link = link_in(await OutboxMessage.get(to=therapist.email, purpose="password_reset"))
    async with new_http("10.0.0.7") as owner:
        await login(owner, therapist)
        changed = await owner.post(
            "/api/account/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        )
        assert changed.status_code == 200
    assert (await http.get(link)).status_code == 404
    taken = await http.post(
        link, data={"password": "another quiet phrase", "confirm": "another quiet phrase"}
    )
    assert taken.status_code == 404
    assert (await sign_in(http, therapist.email, NEW_PASSWORD)).status_code == 200


async def test_a_password_set_from_one_link_cancels_the_others(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    """A client with an invitation and a reset link in their inbox set a password from the
    reset link; the invitation kept its days and set another password over it."""
    therapist = await make.therapist()
    client = await make.client(therapist, portal=False, email="ines@example.org")
    async with new_http() as desk:
        await login(desk, therapist)
        assert (await desk.post(f"/api/clients/{client.id}/portal/invite", json={})).is_success
    invitation = link_in(await OutboxMessage.get(purpose="portal_invitation"))
    await ask_reset(http, "/portal/password/forgot", data={"email": "ines@example.org"})
    reset = link_in(await OutboxMessage.get(purpose="password_reset"))
    done = await http.post(reset, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 200
    assert (await http.get(invitation)).status_code == 404
    again = await http.post(
        invitation, data={"password": "another quiet phrase", "confirm": "another quiet phrase"}
    )
    assert again.status_code == 404
    assert (await sign_in(http, "ines@example.org", NEW_PASSWORD, "portal")).status_code == 200


async def test_a_sent_link_is_not_kept_usable_in_the_database(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    """Sessions and links are stored as hashes, so that a copy of the database (a backup, a
    reporting tool) signs no one in; but the outbox kept each email as sent, its reset or
    invitation link whole, for good: a week's invitation was a client's portal for whoever
    read the table. Once the email is sent, the stored text keeps the link cut short."""
    from server import mail

    therapist = await make.therapist()
    client = await make.client(therapist, portal=False, email="ines@example.org")
    async with new_http() as desk:
        await login(desk, therapist)
        assert (await desk.post(f"/api/clients/{client.id}/portal/invite", json={})).is_success
    await ask_reset(http, "/staff/password/forgot", data={"email": therapist.email})
    links = [link_in(m) for m in await OutboxMessage.all().order_by("id")]
    assert len(links) == 2
    assert await mail.deliver_due() == 2
    for message in await OutboxMessage.all():
        assert message.status.value == "sent"
        for link in links:
            assert link.rsplit("/", 1)[1] not in message.body_text
        assert "/…" in message.body_text
    # The emailed links still work.
    invited = await http.post(links[0], data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert invited.status_code == 200
    reset = await http.post(links[1], data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert reset.status_code == 200


# --- portal invitations ----------------------------------------------------------------------


async def test_client_accepts_a_portal_invitation(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    therapist = await make.therapist()
    client = await make.client(therapist, portal=False, email="ines@example.org")
    await login(http, therapist)
    response = await http.post(f"/api/clients/{client.id}/portal/invite", json={})
    assert response.status_code == 200
    message = await OutboxMessage.get(to="ines@example.org", purpose="portal_invitation")
    link = link_in(message)
    assert link.startswith("/portal/invite/")
    assert response.json()["link"].endswith(link)
    async with new_http("10.0.0.9") as browser:
        assert (await sign_in(browser, "ines@example.org", PASSWORD, "portal")).status_code == 401
        page = await browser.get(link)
        assert page.status_code == 200 and "ines@example.org" in page.text
        done = await browser.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert done.status_code == 200 and "Your account is ready" in done.text
        signed_in = await sign_in(browser, "ines@example.org", NEW_PASSWORD, "portal")
        assert signed_in.status_code == 200
        assert signed_in.json()["client_id"] == client.id
        assert (await browser.get(link)).status_code == 404
    account = await PortalAccount.get(client_id=client.id)
    assert account.activated_at is not None


async def test_the_link_of_an_account_in_use_goes_to_the_client_only(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    """ "Send a new invitation" answered with the link, whatever the account: the front desk
    (or a colleague) set a new password with it and read, as the client, a clinical document
    shared with them and a conversation they were not in. Once a client has used the portal,
    the link goes to their inbox only; an account never used still shows it."""
    therapist = await make.therapist()
    desk = await make.office_admin()
    client = await make.client(therapist)
    await login(http, desk)
    r = await http.post(f"/api/clients/{client.id}/portal/invite", json={})
    assert r.status_code == 200 and r.json() == {"link": None}
    sent = await OutboxMessage.filter(purpose="portal_invitation").order_by("-id").first()
    assert sent is not None and sent.to == await portal_email(client)
    token = link_in(sent).rsplit("/", 1)[1]
    page = await http.post(f"/staff/clients/{client.id}/portal/invite", data={})
    assert page.status_code == 200 and "their inbox only" in page.text
    assert token not in page.text and "data-invite-link" not in page.text
    # Whoever reads the inbox (the client) still sets a password with it.
    async with new_http("10.0.0.9") as browser:
        done = await browser.post(
            link_in(
                await OutboxMessage.filter(purpose="portal_invitation").order_by("-id").first()
            ),
            data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        )
        assert done.status_code == 200
    # Never used: the link is there to hand over, for someone who may read what it opens.
    fresh = await make.client(therapist, portal=False, email="nina@example.org")
    async with new_http("10.0.0.8") as clinician:
        await login(clinician, therapist)
        r = await clinician.post(f"/api/clients/{fresh.id}/portal/invite", json={})
        assert r.json()["link"].startswith("http")


async def test_the_front_desk_is_not_handed_a_link_to_what_clinicians_shared(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """A portal never used already opens what the client's clinicians wrote to them and the
    documents shared with them; its invitation link was shown to the front desk, who could
    follow it and read them where the practice keeps clinical details from the desk. The
    link goes by email only, then, unless the practice opens clinical details to the desk."""
    therapist = await make.therapist()
    desk = await make.office_admin()
    client = await make.client(therapist, portal=False, email="nina@example.org")
    await login(http, desk)
    r = await http.post(f"/api/clients/{client.id}/portal/invite", json={})
    assert r.status_code == 200 and r.json() == {"link": None}
    assert await OutboxMessage.filter(purpose="portal_invitation", to="nina@example.org").exists()
    page = await http.post(f"/staff/clients/{client.id}/portal/invite", data={})
    assert page.status_code == 200 and "data-invite-link" not in page.text
    assert "The link goes to the client's inbox only" in page.text
    practice = await make.practice()
    practice.office_admins_see_clinical = True
    await practice.save()
    r = await http.post(f"/api/clients/{client.id}/portal/invite", json={})
    assert r.json()["link"].startswith("http")


async def test_switching_the_portal_back_on_never_brings_back_the_old_password(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    """The practice switched Inès's portal off because her ex-partner knew her password;
    "Enable portal access" switched it back on with that same password. Back on is now a
    fresh start: the old password fails, and an invitation goes to the account's address."""
    therapist = await make.therapist()
    client = await make.client(therapist)
    email = await portal_email(client)
    await login(http, therapist)
    off = await http.post(f"/staff/clients/{client.id}/portal/disable", data={})
    assert off.status_code == 303
    page = await http.get(f"/staff/clients/{client.id}/account")
    assert f"/staff/clients/{client.id}/portal/enable" in page.text
    assert "Send a new invitation" not in page.text
    on = await http.post(f"/staff/clients/{client.id}/portal/enable", data={})
    assert on.status_code == 200
    assert f"An invitation to choose a new password went to {email}" in on.text
    async with new_http("10.0.0.8") as ex_partner:
        assert (await sign_in(ex_partner, email, PASSWORD, "portal")).status_code == 401
    sent = await OutboxMessage.filter(purpose="portal_invitation").order_by("-id").first()
    assert sent is not None and sent.to == email
    assert await AuditEntry.exists(action="portal.enabled", client_id=client.id)
    # Switching on an account already on changes nothing and sends nothing more.
    count = await OutboxMessage.filter(purpose="portal_invitation").count()
    r = await http.post(f"/api/clients/{client.id}/portal/active", json={"active": True})
    assert r.status_code == 200 and r.json() == {"active": True}
    assert await OutboxMessage.filter(purpose="portal_invitation").count() == count


# --- deactivation closes sessions and sockets ------------------------------------------------


async def _open_socket(server: LiveServer, path: str, cookie: str) -> ClientConnection:
    ws = await websockets.connect(
        f"{server.ws_url}{path}", additional_headers={"Cookie": cookie}, open_timeout=2
    )
    ready = await asyncio.wait_for(ws.recv(), 2)
    assert '"ready"' in str(ready)
    return ws


async def _closed_code(ws: ClientConnection) -> int | None:
    async def drain() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for _ in ws:
                pass

    await asyncio.wait_for(drain(), 2)
    return ws.close_code


async def test_deactivating_staff_ends_their_sessions_and_socket(
    live_server: LiveServer, make: Factory
) -> None:
    owner = await make.owner()
    therapist = await make.therapist()
    async with (
        httpx.AsyncClient(base_url=live_server.url) as boss,
        httpx.AsyncClient(base_url=live_server.url) as desk,
        httpx.AsyncClient(base_url=live_server.url) as laptop,
    ):
        await login(boss, owner)
        await login(desk, therapist)
        await login(laptop, therapist)
        ws = await _open_socket(live_server, "/staff/ws", f"cabinet_staff={session_token(desk)}")
        try:
            response = await boss.post(f"/api/staff/{therapist.id}/active", json={"active": False})
            assert response.status_code == 200 and response.json()["is_active"] is False
            assert await _closed_code(ws) == 4001
        finally:
            await ws.close()
        assert (await desk.get("/api/me")).status_code == 401
        assert (await laptop.get("/api/me")).status_code == 401
        assert (await sign_in(laptop, therapist.email, PASSWORD)).status_code == 401
        assert (await boss.get("/api/me")).status_code == 200


async def test_owner_cannot_deactivate_themselves(http: httpx.AsyncClient, make: Factory) -> None:
    owner = await make.owner()
    await login(http, owner)
    response = await http.post(f"/api/staff/{owner.id}/active", json={"active": False})
    assert response.status_code == 409
    assert (await http.get("/api/me")).status_code == 200


async def test_an_owner_changes_a_colleagues_supervisor_and_access_follows(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    """Supervisors were fixed when the account was made: a practice whose supervisor left
    could not give Sam another, and Sam's notes could never be countersigned."""
    owner = await make.owner()
    alice = await make.therapist(first_name="Alice")
    bob = await make.therapist(first_name="Bob")
    sam = await make.therapist(first_name="Sam", supervisor=alice)
    client = await make.client(sam)
    await login(http, owner)
    page = await http.get("/staff/team")
    assert f'action="/staff/team/{sam.id}"' in page.text
    changed = await http.post(
        f"/staff/team/{sam.id}",
        data={"role": "therapist", "supervisor_id": str(bob.id), "portal_enabled": "true"},
    )
    assert changed.status_code == 303
    assert (await StaffUser.get(id=sam.id)).supervisor_id == bob.id  # type: ignore[attr-defined]
    async with new_http("10.0.1.1") as as_alice, new_http("10.0.1.2") as as_bob:
        await login(as_alice, alice)
        await login(as_bob, bob)
        assert (await as_alice.get(f"/api/clients/{client.id}")).status_code == 404
        assert (await as_bob.get(f"/api/clients/{client.id}")).status_code == 200
    entry = await AuditEntry.get(action="staff.updated", object_id=str(sam.id))
    assert entry.detail["fields"] == ["supervisor_id"]
    assert entry.detail["after"] == {"supervisor_id": bob.id}
    logs = await http.get("/staff/audit")
    assert "changed a team member" in logs.text
    # Nobody supervises themselves, nor their own supervisor, nor from the front desk.
    desk = await make.office_admin()
    for supervisor in (sam, desk):
        r = await http.put(
            f"/api/staff/{sam.id}",
            json={"role": "therapist", "supervisor_id": supervisor.id, "portal_enabled": True},
        )
        assert r.status_code == 422 and "supervisor_id" in r.json()["error"]["fields"]
    await StaffUser.filter(id=bob.id).update(supervisor_id=sam.id)
    r = await http.put(
        f"/api/staff/{sam.id}",
        json={"role": "therapist", "supervisor_id": bob.id, "portal_enabled": False},
    )
    assert r.status_code == 422
    # Back to no supervisor through the API.
    r = await http.put(
        f"/api/staff/{sam.id}",
        json={"role": "therapist", "supervisor_id": None, "portal_enabled": False},
    )
    assert r.status_code == 200 and r.json()["supervisor_id"] is None
    assert r.json()["portal_enabled"] is False


async def test_the_team_form_adds_a_colleague_with_no_supervisor(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """The form's "—" posts supervisor_id="", which was refused as not a number: nobody could
    be added from the team page without a supervisor."""
    await login(http, await make.owner())
    r = await http.post(
        "/staff/team",
        data={
            "first_name": "Nina",
            "last_name": "Roux",
            "email": "nina.roux@example.org",
            "role": "therapist",
            "supervisor_id": "",
        },
    )
    assert r.status_code == 303, r.text
    added = await StaffUser.get(email="nina.roux@example.org")
    assert added.supervisor_id is None  # type: ignore[attr-defined]


async def test_a_refused_new_colleague_keeps_what_was_typed(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """A 422 on "Add a staff member" (an email already used) showed the error beside an
    empty form: names, role, supervisor and the portal box had to be given again."""
    owner = await make.owner()
    sam = await make.therapist(first_name="Sam", email="sam@example.org")
    await login(http, owner)
    form = {
        "first_name": "Nina",
        "last_name": "Roux",
        "email": "sam@example.org",
        "role": "owner",
        "supervisor_id": str(sam.id),
        "portal_enabled": "true",
    }
    r = await http.post("/staff/team", data=form)
    assert r.status_code == 422, r.text
    page = r.text.split('/staff/team" class="grid-form"', 1)[1]
    assert re.search(
        r'name="email"[^>]*value="sam@example.org"[^>]*><span class="field-error">', page
    )
    for name in ("first_name", "last_name"):
        assert re.search(rf'name="{name}"[^>]*value="{form[name]}"', page), name
    assert '<option value="owner" selected>' in page
    assert f'<option value="{sam.id}" selected>' in page
    assert re.search(r'name="portal_enabled" value="true" checked', page)
    assert not await StaffUser.exists(last_name="Roux")


async def test_a_refused_team_change_keeps_what_was_typed(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """A 422 on a team member's "Change" (a supervisor who is their own supervisee) showed
    the error in the row's form, but with the role, supervisor and portal box as saved: the
    role just chosen and the portal box just unticked were back as saved, to be given again."""
    owner = await make.owner()
    sam = await make.therapist(first_name="Sam")
    junior = await make.therapist(first_name="Léa", supervisor=sam)
    await login(http, owner)
    r = await http.post(
        f"/staff/team/{sam.id}",
        data={"role": "owner", "supervisor_id": str(junior.id)},  # the portal box unticked
    )
    assert r.status_code == 422, r.text
    row = r.text.split(f'action="/staff/team/{sam.id}"', 1)[1].split("</form>", 1)[0]
    assert re.search(r'<option value="owner"\s*selected>', row)
    assert re.search(
        rf'<option value="{junior.id}"\s*selected>[^<]*</option>\s*</select><span class="field-error">',
        row,
    )
    assert re.search(r'name="portal_enabled" value="true"\s*>', row)
    saved = await StaffUser.get(id=sam.id)
    assert saved.role is StaffRole.THERAPIST and saved.supervisor_id is None  # type: ignore[attr-defined]
    assert saved.portal_enabled


async def test_a_clinician_becomes_front_desk_only_once_their_clients_are_handed_over(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    owner = await make.owner()
    sam = await make.therapist(first_name="Sam")
    other = await make.therapist(first_name="Nina")
    client = await make.client(sam)
    await login(http, owner)
    refused = await http.post(
        f"/staff/team/{sam.id}", data={"role": "office_admin", "supervisor_id": ""}
    )
    assert refused.status_code == 409
    assert "still the therapist of 1 clients" in refused.text
    assert (await StaffUser.get(id=sam.id)).role is StaffRole.THERAPIST
    handed = await http.put(f"/api/clients/{client.id}/therapist", json={"therapist_id": other.id})
    assert handed.status_code == 200
    # Supervising a colleague keeps them a clinician too.
    junior = await make.therapist(first_name="Léa", supervisor=sam)
    r = await http.put(
        f"/api/staff/{sam.id}",
        json={"role": "office_admin", "supervisor_id": None, "portal_enabled": False},
    )
    assert r.status_code == 409 and "supervises colleagues" in r.json()["error"]["message"]
    await StaffUser.filter(id=junior.id).update(supervisor_id=None)
    r = await http.put(
        f"/api/staff/{sam.id}",
        json={"role": "office_admin", "supervisor_id": None, "portal_enabled": False},
    )
    assert r.status_code == 200 and r.json()["role"] == "office_admin"
    # An owner's own role is another owner's to change; a therapist changes nobody's.
    mine = await http.put(
        f"/api/staff/{owner.id}",
        json={"role": "therapist", "supervisor_id": None, "portal_enabled": True},
    )
    assert mine.status_code == 409
    assert (await StaffUser.get(id=owner.id)).role is StaffRole.OWNER
    async with new_http("10.0.1.3") as as_nina:
        await login(as_nina, other)
        r = await as_nina.put(
            f"/api/staff/{other.id}",
            json={"role": "owner", "supervisor_id": None, "portal_enabled": True},
        )
        assert r.status_code == 403
        assert (await StaffUser.get(id=other.id)).role is StaffRole.THERAPIST


async def test_disabling_portal_access_ends_the_client_session_and_socket(
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
        cookie = f"cabinet_portal={session_token(portal, Realm.PORTAL)}"
        ws = await _open_socket(live_server, "/portal/ws", cookie)
        try:
            response = await staff.post(
                f"/api/clients/{client.id}/portal/active", json={"active": False}
            )
            assert response.status_code == 200 and response.json() == {"active": False}
            assert await _closed_code(ws) == 4001
        finally:
            await ws.close()
        assert (await portal.get("/portal/api/me")).status_code == 401
        assert (
            await sign_in(portal, await portal_email(client), PASSWORD, "portal")
        ).status_code == 401


async def test_the_outbox_shows_no_one_time_link_that_would_sign_someone_in(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    """The front desk reads the practice's outbox. The welcome email of a new therapist holds
    a link to set her password: followed by the desk, it would sign the desk in as her, with
    her clinical access. The outbox shows such links cut short, to everyone."""
    owner = await make.owner()
    desk = await make.office_admin()
    await login(http, owner)
    new = {"email": "new.therapist@example.org", "first_name": "Nora", "last_name": "New"}
    assert (await http.post("/api/staff", json={**new, "role": "therapist"})).status_code == 200
    client = await make.client(owner, portal=False, email="ines@example.org")
    assert (await http.post(f"/api/clients/{client.id}/portal/invite", json={})).status_code == 200
    links = [link_in(m) for m in await OutboxMessage.all()]
    assert len(links) == 2
    for reader in (owner, desk):
        async with new_http("10.0.0.7") as browser:
            await login(browser, reader)
            page = await browser.get("/staff/outbox")
            assert page.status_code == 200
            for link in links:
                token = link.rsplit("/", 1)[1]
                assert token not in page.text
                assert f"{link.rsplit('/', 1)[0]}/…" in page.text


async def test_inviting_again_after_access_was_switched_off_starts_afresh(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    """The practice switched Inès's portal off (someone else knew her password), then invites
    her again: the old password does not come back with the invitation, and neither does a
    session opened with it. A resend to a live account leaves her password alone."""
    therapist = await make.therapist()
    client = await make.client(therapist)
    email = await portal_email(client)
    async with new_http("10.0.0.8") as intruder:
        assert (await sign_in(intruder, email, PASSWORD, "portal")).status_code == 200
        await login(http, therapist)
        # A resend to the same live account: nothing else changes.
        assert (
            await http.post(f"/api/clients/{client.id}/portal/invite", json={})
        ).status_code == 200
        assert (await intruder.get("/portal/api/me")).status_code == 200
        off = await http.post(f"/api/clients/{client.id}/portal/active", json={"active": False})
        assert off.status_code == 200
        again = await http.post(f"/api/clients/{client.id}/portal/invite", json={})
        assert again.status_code == 200
        assert (await intruder.get("/portal/api/me")).status_code == 401
        assert (await sign_in(intruder, email, PASSWORD, "portal")).status_code == 401
    # Inès sets a new password through the new link, and only that one works.
    link = link_in(await OutboxMessage.filter(purpose="portal_invitation").order_by("-id").first())
    async with new_http("10.0.0.9") as browser:
        done = await browser.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert done.status_code == 200 and "Your account is ready" in done.text
        assert (await sign_in(browser, email, NEW_PASSWORD, "portal")).status_code == 200


@pytest.mark.parametrize("role", ["office_admin", "therapist"])
async def test_only_an_owner_moves_a_portal_account_in_use_to_another_address(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory, role: str
) -> None:
    """The invitation sets the account's password. Sent to an address the front desk typed
    (its own), it let the desk sign in as the client and read her messages with her
    clinician; the client was locked out. Now only an owner may move an account in use, the
    client hears of it at her old address, and the audit trail says from where to where."""
    therapist = await make.therapist()
    client = await make.client(therapist)
    email = await portal_email(client)
    someone = therapist if role == "therapist" else await make.office_admin()
    await login(http, someone)
    url = f"/api/clients/{client.id}/portal/invite"
    r = await http.post(url, json={"email": "not.the.client@example.org"})
    assert r.status_code == 422 and "email" in r.json()["error"]["fields"]
    account = await PortalAccount.get(client_id=client.id)
    assert account.email == email and account.password_hash
    assert not await OutboxMessage.filter(purpose="portal_invitation").exists()
    async with new_http("10.0.3.1") as client_http:
        assert (await sign_in(client_http, email, PASSWORD, "portal")).status_code == 200
    # A resend to the address she uses goes through, as before.
    assert (await http.post(url, json={"email": email})).status_code == 200
    # The owner may move it: the old address is told, the audit trail says where.
    async with new_http("10.0.3.2") as owner:
        await login(owner, await make.owner())
        r = await owner.post(url, json={"email": "ines.new@example.org"})
        assert r.status_code == 200 and r.json() == {"link": None}
    told = await OutboxMessage.get(purpose="portal_moved")
    assert told.to == email and "contact your practice" in told.body_text
    invited = await OutboxMessage.filter(purpose="portal_invitation").order_by("-id").first()
    assert invited is not None and invited.to == "ines.new@example.org"
    entry = await AuditEntry.filter(action="portal.invited").order_by("-id").first()
    assert entry is not None and entry.detail == {"from": email, "to": "ines.new@example.org"}


async def test_a_new_invitation_goes_to_the_accounts_address_not_the_files(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """ "Send a new invitation" sent the link to the file's email address, and moved the
    account there: changing the file's address, then pressing the button, moved a client's
    account to any address. It now resends to the account's own; only an owner's page has a
    form to move it."""
    therapist = await make.therapist()
    client = await make.client(therapist)
    email = await portal_email(client)
    await Client.filter(id=client.id).update(email="typed.by.someone@example.org")
    desk = await make.office_admin()
    await login(http, desk)
    page = await http.get(f"/staff/clients/{client.id}/account")
    assert "data-move-account" not in page.text
    r = await http.post(
        f"/staff/clients/{client.id}/portal/invite",
        data={"csrf_token": http.headers["X-CSRF-Token"]},
    )
    assert r.status_code == 200
    sent = await OutboxMessage.filter(purpose="portal_invitation").order_by("-id").first()
    assert sent is not None and sent.to == email
    assert (await PortalAccount.get(client_id=client.id)).email == email
    await login(http, await make.owner())
    page = await http.get(f"/staff/clients/{client.id}/account")
    assert "data-move-account" in page.text and "typed.by.someone@example.org" in page.text


async def test_what_someone_leaving_answered_for_goes_to_someone_still_here(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any], make: Factory
) -> None:
    """Alice leaves the practice. Her open safety task ("contact the client today") stayed
    assigned to an account nobody signs in to, in no one's list; and her client's next
    message in their conversation, which the portal still takes, reached no one. Both now
    go to someone still here: the task to the owner who switched her off (Camille's
    therapist is Alice herself), the conversation to the owners, who may use the portal."""
    from models.measures import MeasureAdministration, MeasureKind
    from models.messaging import Participant
    from models.tasks import Task
    from server.actions import measures
    from server.auth.sessions import Caller
    from server.instruments import PHQ9
    from tests.test_measures import form
    from tests.test_messaging import new_client_conversation, send

    camille, alice, owner = people["camille"], people["alice"], people["owner"]
    sent, _ = await measures.do_send_measure(Caller.acting_as(alice), camille, MeasureKind.PHQ9)
    assert sent is not None
    account = await make.portal_account(camille)
    await measures.do_complete_measure(
        Caller.acting_as((account, camille)),
        await MeasureAdministration.get(id=sent.id),
        form(PHQ9, 17, item9=2),
    )
    task = await Task.get(client_id=camille.id, assignee_id=alice.id)
    _staff, cid = await new_client_conversation(new_http, alice, camille)
    async with new_http("10.9.4.1") as boss, new_http("10.9.4.2") as portal:
        await login(boss, owner)
        r = await boss.post(f"/api/staff/{alice.id}/active", json={"active": False})
        assert r.status_code == 200
        mine = [t["id"] for t in (await boss.get("/api/tasks")).json() if t["done_at"] is None]
        assert task.id in mine
        assert await AuditEntry.filter(action="task.handed_over", object_id=str(task.id)).exists()
        await login(portal, camille)
        assert (
            await send(portal, "/portal/api", cid, "Je ne vais pas bien.", "c1")
        ).status_code == 200
        listed = (await boss.get("/api/conversations")).json()["conversations"]
        assert [c["id"] for c in listed if c["unread"]] == [cid]
    staff = await Participant.filter(conversation_id=cid, role="staff", left_at=None)
    assert {p.staff_user_id for p in staff} == {alice.id, owner.id}  # type: ignore[attr-defined]


async def test_a_finished_reset_job_keeps_neither_the_email_nor_the_network_address(
    make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job kept what was typed and the requester's address in clear on its row, which
    stays 30 days once done and for good once failed (a portal address typed is a client's,
    or a typo that is someone else's)."""
    import hashlib

    from models.jobs import JobStatus

    therapist = await make.therapist()
    typed = [therapist.email, "someone.private@example.org"]
    for email in typed:
        await account_actions.do_request_password_reset(Realm.STAFF, email, address="203.0.113.7")
    await jobs.run_due(now=datetime.now(UTC) + timedelta(seconds=1))
    done = await Job.filter(kind=account_actions.RESET_REQUESTED)
    assert [j.status for j in done] == [JobStatus.DONE, JobStatus.DONE]
    # The link went out, and the audit entry still says from where.
    assert await OutboxMessage.filter(to=therapist.email, purpose="password_reset").exists()
    entry = await AuditEntry.get(action="auth.reset_requested")
    assert entry.ip == "203.0.113.7"
    # A plain hash of an IPv4 address in the key is undone by trying them all.
    plain = hashlib.sha256(b"staff:203.0.113.7").hexdigest()[:16]

    def kept(job: Job) -> str:
        return f"{job.payload} {job.key}"

    for job in done:
        for secret in (*typed, "203.0.113.7", plain):
            assert secret not in kept(job)

    # A job that fails for good keeps neither either.
    async def broken(realm: Realm, email: str) -> None:
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(account_actions, "_find_account", broken)
    await account_actions.do_request_password_reset(
        Realm.PORTAL, "another.private@example.org", address="198.51.100.9"
    )
    at = datetime.now(UTC)
    for _ in range(3):
        at += timedelta(hours=2)
        await jobs.run_due(now=at)
    failed = await Job.get(kind=account_actions.RESET_REQUESTED, status=JobStatus.FAILED)
    assert "another.private@example.org" not in kept(failed)
    assert "198.51.100.9" not in kept(failed)


@pytest.mark.parametrize(
    "public_url", ["https://cabinet.example.org", "HTTPS://Cabinet.example.org"]
)
async def test_session_cookies_are_http_only_same_site_and_secure_over_https(
    settings: Settings, realtime: Any, make: Factory, public_url: str
) -> None:
    """The session cookie of either realm, from the form or the API: never readable by a
    script, never sent on another site's requests, and only over https where Cabinet is
    served so (a PUBLIC_URL written HTTPS:// too: the cookies went out without Secure)."""
    from server.app import create_app

    app: Any = create_app(replace(settings, public_url=public_url), manage_db=False)
    therapist = await make.therapist()
    client = await make.client(therapist)
    email = await portal_email(client)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 5000))
    attempts = [
        ("/api/session", {"json": {"email": therapist.email, "password": PASSWORD}}),
        ("/staff/login", {"data": {"email": therapist.email, "password": PASSWORD}}),
        ("/portal/api/session", {"json": {"email": email, "password": PASSWORD}}),
        ("/portal/login", {"data": {"email": email, "password": PASSWORD}}),
    ]
    for url, body in attempts:
        async with httpx.AsyncClient(
            transport=transport, base_url="https://cabinet.example.org"
        ) as browser:
            answer = await browser.post(url, **body)  # type: ignore[arg-type]
            assert answer.status_code in {200, 303}, (url, answer.text)
            cookies = answer.headers.get_list("set-cookie")
            session = next(
                c for c in cookies if c.startswith(("cabinet_staff=", "cabinet_portal="))
            )
            flags = {part.strip().lower() for part in session.split(";")[1:]}
            assert {"httponly", "secure", "samesite=lax", "path=/"} <= flags, (url, session)
            assert all("secure" in c.lower() for c in cookies), cookies
