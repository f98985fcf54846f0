"""uvicorn's access log keeps the route of a one-time link or a calendar feed, not its secret."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import httpx
import uvicorn

from server.access_log import redact_path
from tests.conftest import free_port


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_the_access_log_of_a_real_server_holds_no_link_secrets(app: Any) -> None:
    port = free_port()
    # As the Procfile and `cabinet run` serve it: access log on, at info.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info", lifespan="off")
    server = uvicorn.Server(config)
    lines = Lines()
    access = logging.getLogger("uvicorn.access")
    server_task = None
    try:
        server_task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        access.addHandler(lines)
        tokens = [secrets.token_urlsafe(24) for _ in range(5)]
        paths = [
            f"/staff/password/reset/{tokens[0]}",
            f"/portal/password/reset/{tokens[1]}",
            f"/portal/invite/{tokens[2]}?next=/portal/",
            f"/feeds/staff/{tokens[3]}.ics",
            f"/feeds/client/{tokens[4]}.ics",
            "/staff/login",
        ]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for path in paths:
                await http.get(path)
    finally:
        access.removeHandler(lines)
        server.should_exit = True
        if server_task is not None:
            await server_task
    logged = "\n".join(lines.lines)
    assert len(lines.lines) == len(paths), logged
    for token in tokens:
        assert token not in logged
    assert '"GET /staff/password/reset/[redacted] HTTP/1.1" 404' in logged
    assert '"GET /portal/invite/[redacted]?next=/portal/ HTTP/1.1"' in logged
    assert '"GET /feeds/client/[redacted] HTTP/1.1"' in logged
    assert '"GET /staff/login HTTP/1.1" 200' in logged  # the rest of the log is untouched


def test_only_the_secret_segment_is_redacted() -> None:
    assert redact_path("/staff/password/reset/abc-DEF_1") == "/staff/password/reset/[redacted]"
    assert redact_path("/staff/password/forgot") == "/staff/password/forgot"
    assert redact_path("/staff/clients/12/invite") == "/staff/clients/12/invite"
    assert redact_path("/api/feeds/staff") == "/api/feeds/staff"
