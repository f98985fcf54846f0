"""Schemathesis over the two OpenAPI documents, against a real server, signed in.

Every operation of ``/api/openapi.json`` (as the practice owner) and of
``/portal/api/openapi.json`` (as a client) gets generated requests, valid and not: none may
answer 500, and every answer must match the schema the document gives for its status.
Every status answered must be one the document lists for that operation (a client built
from the document is told of nothing else). A bounded number of examples per operation
keeps this within the suite's time.

Left out, because they would end the very session the fuzzing runs in (they have tests of
their own): signing out, and deactivating the signed-in owner or the signed-in client's
portal access.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.conftest import Factory, LiveServer, login

pytestmark = [pytest.mark.usefixtures("settled_hub"), pytest.mark.timeout(300)]

EXAMPLES = 8


class Signed:
    def __init__(self, http: httpx.AsyncClient, cookie_name: str, csrf: str) -> None:
        self.headers = {
            "Cookie": f"{cookie_name}={http.cookies[cookie_name]}",
            "X-CSRF-Token": csrf,
        }


def runner(operation: Any, label: str, base_url: str, who: Signed, spare: dict[str, int]) -> Any:
    """A Hypothesis test of one operation: generated requests, each answer checked."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        params = case.path_parameters or {}
        for name, keep in spare.items():
            if label.endswith((f"{{{name}}}/active", f"{{{name}}}/portal/active")):
                assume(params.get(name) != keep)
        case.call_and_validate(
            base_url=base_url,
            headers=dict(who.headers),
            checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
            timeout=15,
        )

    return run


def fuzz(spec: dict[str, Any], base_url: str, who: Signed, spare: dict[str, int]) -> list[str]:
    """Run every operation; returns the failures, one line each."""
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if label.endswith("/api/session") and operation.method.lower() == "delete":
            continue

        run = runner(operation, label, base_url, who, spare)
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collected, then reported together
            failures.append(f"{label}: {str(exc).strip()[:1500]}")
    return failures


@pytest.mark.parametrize("realm", ["portal", "staff"])
async def test_the_openapi_documents_hold_under_fuzzing(
    live_server: LiveServer, make: Factory, realm: str
) -> None:
    owner = await make.owner()
    therapist = await make.therapist(first_name="Alice")
    client = await make.client(therapist, first_name="Hélène", last_name="Dubois")
    await make.portal_account(client)
    http = httpx.AsyncClient(base_url=live_server.url, timeout=15)
    try:
        if realm == "staff":
            me = await login(http, owner)
            who = Signed(http, "cabinet_staff", me["csrf_token"])
            url, spare = "/api/openapi.json", {"staff_id": owner.id, "client_id": client.id}
        else:
            me = await login(http, client)
            who = Signed(http, "cabinet_portal", me["csrf_token"])
            url, spare = "/portal/api/openapi.json", {}
        spec = (await http.get(url)).json()
        loop = asyncio.get_running_loop()
        failures = await loop.run_in_executor(None, fuzz, spec, live_server.url, who, spare)
        assert failures == [], "\n\n".join(failures)
        # Still signed in: the fuzzing exercised the API as this person throughout.
        assert (
            await http.get(url.replace("openapi.json", "me"), headers=who.headers)
        ).status_code == 200
    finally:
        await http.aclose()
