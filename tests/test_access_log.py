"""uvicorn's access log keeps the route of a one-time link or a calendar feed, not its secret."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import httpx

from server.access_log import redact_path
from tests.conftest import LiveServer, free_port


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_the_access_log_of_a_real_server_holds_no_link_secrets(app: Any) -> None:
    # As the Procfile and `cabinet run` serve it: access log on, at info.
    server = LiveServer(app, free_port(), log_level="info")
    await server.start()
    lines = Lines()
    access = logging.getLogger("uvicorn.access")
    access.addHandler(lines)
    tokens = [secrets.token_urlsafe(24) for _ in range(6)]
    paths = [
        f"/staff/password/reset/{tokens[0]}",
        f"/portal/password/reset/{tokens[1]}",
        f"/portal/invite/{tokens[2]}?next=/portal/",
        f"/feeds/staff/{tokens[3]}.ics",
        f"/feeds/client/{tokens[4]}.ics",
        # The upload form's action carries the session's CSRF token (server/web.py).
        f"/staff/clients/3/documents?csrf_token={tokens[5]}&x=1",
        "/staff/login",
    ]
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            for path in paths:
                await http.get(path)
    finally:
        access.removeHandler(lines)
        await server.stop()
    logged = "\n".join(lines.lines)
    assert len(lines.lines) == len(paths), logged
    for token in tokens:
        assert token not in logged
    assert '"GET /staff/password/reset/[redacted] HTTP/1.1" 404' in logged
    assert '"GET /portal/invite/[redacted]?next=/portal/ HTTP/1.1"' in logged
    assert '"GET /feeds/client/[redacted] HTTP/1.1"' in logged
    assert "/staff/clients/3/documents?csrf_token=[redacted]&x=1" in logged
    assert '"GET /staff/login HTTP/1.1" 200' in logged  # the rest of the log is untouched


def test_only_the_secret_segment_is_redacted() -> None:
    assert redact_path("/staff/password/reset/abc-DEF_1") == "/staff/password/reset/[redacted]"
    assert redact_path("/staff/password/forgot") == "/staff/password/forgot"
    assert redact_path("/staff/clients/12/invite") == "/staff/clients/12/invite"
    assert redact_path("/api/feeds/staff") == "/api/feeds/staff"


def test_the_csrf_token_in_an_uploads_address_is_redacted() -> None:
    assert (
        redact_path("/staff/clients/3/documents?csrf_token=a-B_c")
        == "/staff/clients/3/documents?csrf_token=[redacted]"
    )
    assert redact_path("/x?a=1&csrf_token=abc&b=2") == "/x?a=1&csrf_token=[redacted]&b=2"
    assert redact_path("/x?my_csrf_token=abc") == "/x?my_csrf_token=abc"
