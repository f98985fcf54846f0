"""The app factory: one Starlette app serving /staff, /api, /portal and /static."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from models.accounts import Realm
from portal.app import build_portal_api, build_portal_app
from realtime.endpoint import websocket_endpoint
from realtime.hub import hub
from server import access_log, db, feeds, security_headers, sms_hooks
from server.collector import freezing_collector
from server.errors import CabinetError
from server.queries.messaging import presence_audience
from server.settings import ROOT, Settings, get_settings, set_settings
from server.web import SERVER_ERRORS, SessionMiddleware, capped_receive, error_response, render
from server.worker import run_worker
from staff.app import build_staff_api, build_staff_app

log = logging.getLogger("cabinet")


async def cabinet_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CabinetError)
    return error_response(request, exc)


async def landing(request: Request) -> Response:
    return render(request, "common/landing.html", {})


async def health(request: Request) -> Response:
    from starlette.responses import JSONResponse

    # broker_for: seconds in the current state, so a monitor (or a test) polling slowly
    # can still tell when the broker went away or came back.
    return JSONResponse(
        {
            "ok": True,
            "broker": hub.connected,
            "broker_for": round(time.monotonic() - hub.changed_at, 3),
        }
    )


async def realtime_socket(scope: Scope, receive: Receive, send: Send) -> None:
    """The realtime endpoint as a bare ASGI app (see CabinetApp)."""
    await websocket_endpoint(WebSocket(scope, receive=receive, send=send))


class CabinetApp(Starlette):
    """Starlette, with the realtime sockets served before its middleware and router.

    A socket lives for hours suspended inside every layer it passed: each keeps a coroutine
    frame (six more per socket through Starlette's error and exception middleware, router,
    route and ``websocket_session`` wrappers). With thousands of idle sockets those frames
    are memory: 28.5 KiB per idle socket with them, 24.9 without (docs/performance.md).
    So ``/staff/ws`` and ``/portal/ws`` go straight to their realm's session middleware and
    the endpoint. Those layers add nothing to a socket: the endpoint closes with its own
    codes and catches its own errors.
    """

    def __init__(
        self, *args: Any, sockets: dict[str, ASGIApp], https: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.sockets = sockets
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            socket = self.sockets.get(get_route_path(scope))
            if socket is not None:
                scope["app"] = self
                await socket(scope, receive, send)
                return
        if scope["type"] == "http":
            # Every answer, errors included (server/security_headers.py).
            send = security_headers.start(scope, send, https=self.https)
            receive = capped_receive(scope, receive)
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, manage_db: bool = True) -> Starlette:
    """Build the app. With ``manage_db`` the lifespan opens the database, the realtime hub
    and (when embedded) the worker; tests that manage their own database pass False."""
    if settings is not None:
        set_settings(settings)
    settings = get_settings()
    hub.presence_audience = presence_audience
    access_log.install()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        worker: asyncio.Task[None] | None = None
        collector = contextlib.AsyncExitStack()
        if manage_db:
            await db.init_db(settings.database_url)
            await hub.start(
                settings.broadcast_url,
                seal_key=settings.secret_key if settings.seal_notices else None,
            )
            if settings.embedded_worker:
                worker = asyncio.create_task(run_worker(stop), name="embedded-worker")
            await collector.enter_async_context(freezing_collector(settings.gc_complete_minutes))
        try:
            yield
        finally:
            await collector.aclose()
            stop.set()
            if worker is not None:
                with contextlib.suppress(Exception):
                    await worker
            if manage_db:
                await hub.stop()
                await db.close_db()

    handlers = {CabinetError: cabinet_error, **SERVER_ERRORS}
    app = CabinetApp(
        # The sockets, each behind its realm's session alone (see CabinetApp).
        sockets={
            "/staff/ws": SessionMiddleware(realtime_socket, Realm.STAFF),
            "/portal/ws": SessionMiddleware(realtime_socket, Realm.PORTAL),
        },
        routes=[
            # The APIs first: they take every message sent, and Starlette tries the routes
            # in order (no other route starts with /api/; /portal/api before /portal).
            Mount("/api", build_staff_api()),
            Mount("/portal/api", build_portal_api()),
            Mount("/portal", build_portal_app()),
            Route("/", landing),
            Route("/healthz", health),
            # Where browsers look for an icon when a page names none (a PDF, a JSON answer).
            Route("/favicon.ico", lambda r: RedirectResponse("/static/favicon.svg", 308)),
            Route("/feeds/staff/{token}", feeds.staff_feed),
            Route("/feeds/client/{token}", feeds.client_feed),
            Route("/hooks/sms/twilio", sms_hooks.twilio_status, methods=["POST"]),
            Route("/staff", lambda r: RedirectResponse("/staff/", status_code=307)),
            Route("/portal", lambda r: RedirectResponse("/portal/", status_code=307)),
            Mount("/staff", build_staff_app()),
            Mount("/static", StaticFiles(directory=ROOT / "server" / "static"), name="static"),
        ],
        exception_handlers=handlers,  # type: ignore[arg-type]
        lifespan=lifespan,
        https=settings.uses_https,
    )
    return app
