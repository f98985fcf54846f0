"""The security headers (server/security_headers.py): every answer carries them, and a page's
inline scripts carry the nonce its policy names."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import httpx

from server.app import create_app
from server.settings import Settings
from tests.conftest import Factory, login


async def test_pages_name_their_scripts_nonce_and_every_answer_is_protected(
    http: httpx.AsyncClient, make: Factory
) -> None:
    await login(http, await make.therapist())
    page = await http.get("/staff/")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce, policy
    assert "frame-ancestors 'self'" in policy and "default-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    scripts = re.findall(r"<script( nonce=\"[^\"]*\")?(?: src=\"[^\"]+\")?>", page.text)
    inline = re.findall(r"<script nonce=\"([^\"]+)\">", page.text)
    assert inline and set(inline) == {nonce.group(1)}
    assert all(s or "src=" for s in scripts)
    assert " onclick=" not in page.text and " onchange=" not in page.text
    again = await http.get("/staff/")
    assert re.search(r"'nonce-([^']+)'", again.headers["content-security-policy"]) != nonce
    for answer in (page, await http.get("/api/me"), await http.get("/staff/no-such-page")):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert answer.headers["x-frame-options"] == "SAMEORIGIN"
        assert "strict-transport-security" not in answer.headers
    assert "content-security-policy" not in (await http.get("/api/me")).headers


async def test_hsts_only_where_cabinet_is_served_over_https(settings: Settings) -> None:
    app: Any = create_app(
        replace(settings, public_url="https://cabinet.example.org"), manage_db=False
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cabinet.example.org") as c:
        answer = await c.get("/healthz")
    assert answer.headers["strict-transport-security"] == "max-age=31536000"


async def test_pages_and_api_answers_are_not_kept_in_the_browsers_cache(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """A client's file, once shown, stayed in the browser's cache: after signing out on a
    shared computer, the Back button (or the disk cache) showed it to the next person.
    Pages and API answers now say ``no-store``; the static files stay cacheable."""
    therapist = await make.therapist()
    client = await make.client(therapist)
    await login(http, therapist)
    for url in (f"/staff/clients/{client.id}", f"/api/clients/{client.id}", "/portal/login"):
        answer = await http.get(url)
        assert answer.status_code == 200, url
        assert "no-store" in answer.headers.get("cache-control", ""), url
    static = await http.get("/static/favicon.svg")
    assert static.status_code == 200
    assert "no-store" not in static.headers.get("cache-control", "")
