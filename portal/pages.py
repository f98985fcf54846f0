"""Portal pages."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from models.accounts import Practice
from server.web import render, require_client


async def home(request: Request) -> Response:
    caller = require_client(request)
    practice = await Practice.get(id=caller.practice_id)
    return render(request, "portal/home.html", {"practice": practice, "section": "home"})


async def messages(request: Request) -> Response:
    require_client(request)
    return render(
        request,
        "portal/messages.html",
        {"section": "messages", "open_id": request.query_params.get("c", "")},
    )
