from __future__ import annotations

import httpx

from tests.conftest import Factory, login


async def test_staff_signs_in_and_sees_home(http: httpx.AsyncClient, make: Factory) -> None:
    owner = await make.owner()
    me = await login(http, owner)
    assert me["kind"] == "staff" and me["role"] == "owner"
    page = await http.get("/staff/")
    assert page.status_code == 200
    assert "Hello" in page.text


async def test_client_signs_in_to_portal(http: httpx.AsyncClient, make: Factory) -> None:
    client = await make.client(await make.therapist())
    me = await login(http, client)
    assert me["kind"] == "client"
    page = await http.get("/portal/")
    assert page.status_code == 200
