"""Web plumbing shared by staff/ and portal/: sessions, CSRF, locale, bodies, rendering."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

from jinja2 import Environment, FileSystemLoader, PrefixLoader, select_autoescape
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.accounts import Realm, StaffRole
from models.agenda import Attendance
from models.clients import ClientStatus, PaymentMethodKind
from models.notifications import OutboxStatus
from models.offers import OfferStatus
from server import i18n
from server.audit_labels import action_label, actor_label, object_label, purpose_label
from server.auth.sessions import COOKIE_NAMES, Caller, load_caller
from server.billing_labels import BILLING_LABELS
from server.db import unstorable_text
from server.errors import (
    CabinetError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ServiceUnavailable,
    TooManyRequests,
    Unauthenticated,
    ValidationFailed,
)
from server.outbox import reason_label
from server.settings import ROOT, get_settings

M = TypeVar("M", bound=BaseModel)
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# The header the pages' scripts put on what they fetch while no one has touched the page
# for a minute (server/static/realtime.js): answered, but not pushing the idle timeout back.
UNATTENDED = "x-cabinet-unattended"
# The largest body any request but an upload needs: a note, a form's answers or a batch of
# changes are far smaller. Past it a request is refused before its body is read.
MAX_BODY_BYTES = 1024 * 1024
# Room for the multipart envelope and the small fields beside an uploaded file.
FORM_SLACK = 64 * 1024


# --- request state ---------------------------------------------------------------------------


def current_caller(conn: HTTPConnection) -> Caller | None:
    return conn.scope.get("state", {}).get("caller")  # type: ignore[no-any-return]


def client_address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else ""


# The years a date in any input may fall in (``_unstorable``).
MIN_YEAR, MAX_YEAR = 1900, 2200

# Ids are 32-bit integers in every table; anything else names nothing (and would make
# PostgreSQL raise an out-of-range error, a 500, rather than a 404).
MAX_ID = 2**31 - 1


def id_or_none(raw: object) -> int | None:
    """An id given as text (a query parameter, a form's value) as an int, or None when it
    cannot name a row. ASCII digits only: ``"²".isdigit()`` is true, and ``int("²")`` fails."""
    text = str(raw)
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_ID:
        return None
    return int(text)


def parse_id(raw: object) -> int:
    """A path id as an int, or NotFound when it cannot name a row."""
    found = id_or_none(raw)
    if found is None:
        raise NotFound()
    return found


def path_id(conn: HTTPConnection, name: str) -> int:
    return parse_id(conn.path_params[name])


def require_caller(conn: HTTPConnection) -> Caller:
    caller = current_caller(conn)
    if caller is None:
        raise Unauthenticated(i18n.gettext("Please sign in."))
    return caller


def require_staff(conn: HTTPConnection, roles: Iterable[StaffRole] | None = None) -> Caller:
    caller = require_caller(conn)
    if caller.staff is None:
        raise Unauthenticated(i18n.gettext("Please sign in."))
    if roles is not None and caller.staff.role not in set(roles):
        raise PermissionDenied(i18n.gettext("Your role does not allow this."))
    return caller


def require_client(conn: HTTPConnection) -> Caller:
    caller = require_caller(conn)
    if caller.client is None:
        raise Unauthenticated(i18n.gettext("Please sign in."))
    return caller


# --- the session middleware (one per realm) -----------------------------------------------


@functools.lru_cache(maxsize=256)
def _origin_of(url: str) -> tuple[str, str]:
    # Every unsafe request parses its Origin and the public URL, the same few strings over
    # and over; urlparse costs more than the rest of the check (bounded: any Origin is sent).
    parts = urlparse(url)
    return parts.scheme.lower(), parts.netloc.lower()


# A socket's scope says ws/wss where the page that opened it said http/https.
_PAGE_SCHEME = {"ws": "http", "wss": "https"}


def same_origin(scope: Scope, origin: str) -> bool:
    """``origin`` (an Origin or Referer header) is this site: the request's scheme and Host,
    or the public URL's. For HTTP requests and the realtime sockets alike.

    The scheme counts: a page served over plain http on the same host (a captive portal, a
    network that rewrites http) is another origin, and must not drive the https site with
    its cookies."""
    scheme, netloc = _origin_of(origin)
    if not netloc:
        return False
    host = next((v for k, v in scope.get("headers") or () if k == b"host"), b"").decode()
    own = scope.get("scheme", "http")
    if (scheme, netloc) == (_PAGE_SCHEME.get(own, own), host.lower()):
        return True
    return (scheme, netloc) == _origin_of(get_settings().public_url)


class SessionMiddleware:
    """Loads the realm's session, sets locale and time zone, and enforces CSRF.

    CSRF: every unsafe request must come from our own origin (Origin or Referer header), and
    when it carries a session cookie it must also present that session's token, in the
    ``X-CSRF-Token`` header (fetch) or the ``csrf_token`` form field.
    """

    def __init__(self, app: ASGIApp, realm: Realm) -> None:
        self.app = app
        self.realm = realm
        if isinstance(app, Starlette):
            # A mounted Starlette app answers its own errors: without this handler its
            # ServerErrorMiddleware turns a NotFound or Unauthenticated into a 500 before
            # the outer app's handler ever sees it.
            app.add_exception_handler(CabinetError, _cabinet_error)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        token = conn.cookies.get(COOKIE_NAMES[self.realm])
        # What a page fetches by itself with no one at the keyboard (an event's refresh)
        # is not the person's activity: an unattended screen must still sign itself out.
        attended = UNATTENDED not in conn.headers
        caller = await load_caller(self.realm, token, touch=scope["type"] == "http" and attended)
        state = scope.setdefault("state", {})
        state["caller"] = caller
        state["realm"] = self.realm
        settings = get_settings()
        accept_language = conn.headers.get("accept-language")
        locale = i18n.negotiate(accept_language, caller.locale if caller else None, settings.locale)
        i18n.set_locale(locale)
        i18n.set_format_locale(i18n.regional(accept_language, locale))
        # The practice's zone once signed in; before that (the sign-in pages), the default
        # a new practice is created with.
        i18n.set_time_zone(caller.time_zone if caller and caller.time_zone else settings.time_zone)
        state["locale"] = locale
        if scope["type"] == "websocket":
            # A socket lives for hours inside this call: its frame must not keep the
            # caller's rows alive (the endpoint takes what it needs from the scope).
            del caller, conn
            await self.app(scope, receive, send)
            return

        if b"%00" in scope.get("query_string", b""):
            # A NUL in a search or filter reaches the database as is from the handlers that
            # read query parameters themselves, and PostgreSQL answers with an error (a 500).
            # No parameter of ours carries one: bad input, refused here for all of them.
            await error_response(
                Request(scope, receive),
                ValidationFailed(
                    i18n.gettext("Some fields are not valid."),
                    {"query": i18n.gettext("This value is out of range.")},
                ),
            )(scope, receive, send)
            return
        if scope["type"] == "http" and scope["method"] in UNSAFE:
            origin = conn.headers.get("origin") or conn.headers.get("referer")
            if origin and not same_origin(scope, origin):
                await _reject(scope, receive, send, i18n.gettext("Cross-site request refused."))
                return
            if caller is not None and not _signs_in(scope):
                sent, receive = await _csrf_token_from(scope, receive, conn)
                if sent != caller.session.csrf_token:
                    await _reject(
                        scope,
                        receive,
                        send,
                        i18n.gettext("Your form expired. Reload the page and try again."),
                    )
                    return
        await self.app(scope, receive, send)


# Sign-in forms are served to signed-out visitors, so they carry no session token: a second
# tab signing in again, or a reset link opened in a signed-in browser, must still work.
# The Origin check above still applies to them, and they act on no existing session.
# The whole path, from the realm's prefix: a route that merely ends like one (a form field
# keyed "invite" has /staff/forms/3/fields/invite/up) keeps its check.
_SIGN_IN_PATH = re.compile(
    r"^/(staff|portal)/(login|password/forgot|password/reset/[^/]+|invite/[^/]+)$"
    r"|^(/portal)?/api/(session|password/forgot)$"
)


def _signs_in(scope: Scope) -> bool:
    return scope["method"] == "POST" and bool(_SIGN_IN_PATH.search(scope["path"]))


async def _csrf_token_from(
    scope: Scope, receive: Receive, conn: HTTPConnection
) -> tuple[str | None, Receive]:
    header = conn.headers.get("x-csrf-token")
    if header:
        return header, receive
    content_type = conn.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY_BYTES:
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        values = parse_qs(body.decode("latin-1"))
        return (values.get("csrf_token") or [None])[0], replay
    # Multipart uploads put the token in the query string.
    return conn.query_params.get("csrf_token"), receive


async def _cabinet_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CabinetError)
    return error_response(request, exc)


async def _reject(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    response = JSONResponse(
        {"error": {"code": "csrf", "message": message, "fields": {}}}, status_code=403
    )
    await response(scope, receive, send)


# --- bodies ----------------------------------------------------------------------------------


def _body_limit(upload: bool) -> int:
    """The most bytes a request's body may hold: a multipart form (an upload) one document
    and its fields; anything else MAX_BODY_BYTES."""
    if upload:
        from server.actions import documents

        return documents.max_bytes() + FORM_SLACK
    return MAX_BODY_BYTES


def _refusal(upload: bool) -> CabinetError:
    """What a body past its limit is answered: the upload's file too large (the 422 uploads
    always gave), else a 413. Made only when refusing: every request reaches capped_receive."""
    if upload:
        from server.actions import documents

        return documents.too_large()
    return PayloadTooLarge(i18n.gettext("The request is too large."))


def capped_receive(scope: Scope, receive: Receive) -> Receive:
    """``receive`` for one HTTP request, refusing (raising) a body larger than
    ``_body_limit``: at once when its Content-Length says so, else as soon as more bytes
    than that have arrived. Either way the rest is never read, so no request, signed in or
    not, makes a process hold more than the limit in memory (parse_body and Starlette's
    forms read a body whole). The error is raised inside whichever layer reads the body
    (the CSRF check, a form, parse_body) and answered like any other CabinetError."""
    headers = Headers(scope=scope)
    upload = headers.get("content-type", "").startswith("multipart/form-data")
    limit = _body_limit(upload)
    declared = headers.get("content-length", "")
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise _refusal(upload)
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _refusal(upload)
        return message

    return capped


async def posted_fields(request: Request) -> dict[str, Any]:
    """What a form posted, its CSRF token left out: a body to validate, or what a refused
    form shows again (Starlette parses the form once; asking again costs nothing)."""
    form = await request.form()
    return {k: v for k, v in form.items() if k != "csrf_token"}


async def parse_body(request: Request, model: type[M]) -> M:
    """Validate a JSON or form body against ``model``; 422 with the failing fields otherwise."""
    content_type = request.headers.get("content-type", "")
    data: Any
    if content_type.startswith("application/json"):
        try:
            data = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ValidationFailed(
                i18n.gettext("The request body is not valid JSON."), {"body": "invalid JSON"}
            ) from None
    else:
        data = await posted_fields(request)
    return validate(model, data)


def field_message(err: Any) -> str:
    """pydantic's error, said in the user's language (its own messages are English only)."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "value_error":
        # Our validators raise ValueError with a message already translated.
        return str(ctx.get("error", err["msg"]))
    if kind == "missing":
        return i18n.gettext("This field is required.")
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return i18n.gettext("This field is required.")
        return i18n.gettext("At least %(num)s characters.") % {"num": ctx.get("min_length")}
    if kind == "string_too_long":
        return i18n.gettext("At most %(num)s characters.") % {"num": ctx.get("max_length")}
    if kind in {"int_parsing", "int_type", "int_from_float"}:
        return i18n.gettext("Enter a whole number.")
    if kind in {"decimal_parsing", "decimal_type", "float_parsing", "float_type"}:
        return i18n.gettext("Enter a number.")
    if kind == "decimal_max_places":
        return i18n.gettext("At most %(num)s decimal places.") % {"num": ctx.get("decimal_places")}
    if kind.startswith("date") or kind.startswith("datetime"):
        return i18n.gettext("Enter a valid date.")
    if kind.startswith("time_") and not kind.startswith("time_delta"):
        return i18n.gettext("Enter a time such as 21:00.")
    if kind in {"enum", "literal_error", "bool_parsing", "bool_type"}:
        return i18n.gettext("Choose one of the options.")
    if kind in {
        "greater_than_equal",
        "less_than_equal",
        "greater_than",
        "less_than",
        "decimal_max_digits",
        "decimal_whole_digits",
    }:
        return i18n.gettext("This value is out of range.")
    # Anything else (a list where a word was expected, too many items, a pattern): never
    # pydantic's own words, which are English only.
    return i18n.gettext("This value does not have the expected form.")


def validate(model: type[M], data: Any) -> M:
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "body"
            fields.setdefault(name, field_message(err))
        raise ValidationFailed(i18n.gettext("Some fields are not valid."), fields) from None
    wild = _unstorable(parsed)
    if wild:
        message = i18n.gettext("This value is out of range.")
        raise ValidationFailed(
            i18n.gettext("Some fields are not valid."), dict.fromkeys(wild, message)
        )
    return parsed


def _unstorable(model: BaseModel, prefix: str = "") -> list[str]:
    """Fields whose value no database column can hold: text with a NUL character or a lone
    surrogate (``unstorable_text``), a date or time before 1900 or after 2200 (a week from
    31 December 9999 overflows Python's dates, a 500; nothing a practice books or bills is
    so far away), or a number beyond an integer column, whatever the field's name
    (an id, a filter, an "up to" message id: SQLite finds it too large for INTEGER,
    PostgreSQL out of range for integer). Stored or compared as is, either would be an error
    in the database, i.e. a 500, for what is only bad input. No input of ours counts past
    2³¹.
    """
    wild: list[str] = []
    for name, value in model:
        path = f"{prefix}{name}"
        values = list(value) if isinstance(value, list | tuple | set) else [value]
        if isinstance(value, dict):
            values = [*value.keys(), *value.values()]
        # One level further: a dict of lists (a form's answers, {"field": ["a", "b"]}).
        values += [x for v in values if isinstance(v, list | tuple | set) for x in v]
        if (
            any(isinstance(v, str) and unstorable_text(v) for v in values)
            or any(
                isinstance(v, int) and not isinstance(v, bool) and not -MAX_ID - 1 <= v <= MAX_ID
                for v in values
            )
            or any(isinstance(v, date) and not MIN_YEAR <= v.year <= MAX_YEAR for v in values)
        ):
            wild.append(path)
        for v in values:
            if isinstance(v, BaseModel):
                wild += _unstorable(v, f"{path}.")
    return wild


# --- rendering -------------------------------------------------------------------------------

_env = Environment(
    loader=PrefixLoader(
        {
            "common": FileSystemLoader(str(ROOT / "server" / "templates")),
            "staff": FileSystemLoader(str(ROOT / "staff" / "templates")),
            "portal": FileSystemLoader(str(ROOT / "portal" / "templates")),
        }
    ),
    autoescape=select_autoescape(["html"]),
    extensions=["jinja2.ext.i18n"],
)
_env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
# Enum values as people read them; the values themselves are for the database.
LABELS: dict[StrEnum, str] = {
    StaffRole.OWNER: i18n.lazy("Owner"),
    StaffRole.THERAPIST: i18n.lazy("Therapist"),
    StaffRole.OFFICE_ADMIN: i18n.lazy("Office admin"),
    ClientStatus.LEAD: i18n.lazy("Lead"),
    ClientStatus.ACTIVE: i18n.lazy("Active"),
    ClientStatus.ARCHIVED: i18n.lazy("Inactive"),
    PaymentMethodKind.CARD: i18n.lazy("Card"),
    PaymentMethodKind.TRANSFER: i18n.lazy("Bank transfer"),
    PaymentMethodKind.DIRECT_DEBIT: i18n.lazy("Direct debit"),
    PaymentMethodKind.CHEQUE: i18n.lazy("Cheque"),
    PaymentMethodKind.CASH: i18n.lazy("Cash"),
    PaymentMethodKind.INSURANCE: i18n.lazy("Insurance"),
    PaymentMethodKind.OTHER: i18n.lazy("Other"),
    Attendance.SCHEDULED: i18n.lazy("Scheduled"),
    Attendance.ATTENDED: i18n.lazy("Attended"),
    Attendance.CANCELLED_BY_CLIENT: i18n.lazy("Cancelled by the client"),
    Attendance.CANCELLED_BY_PRACTITIONER: i18n.lazy("Cancelled by the practitioner"),
    Attendance.NO_SHOW: i18n.lazy("No-show"),
    Attendance.MOVED: i18n.lazy("Moved"),
    OfferStatus.SENT: i18n.lazy("Sent"),
    OfferStatus.DECLINED: i18n.lazy("Declined"),
    OfferStatus.ACCEPTED: i18n.lazy("Accepted"),
    OfferStatus.EXPIRED: i18n.lazy("Expired"),
    OfferStatus.WITHDRAWN: i18n.lazy("Withdrawn"),
    # Lowercase: they follow a "·" in the outbox, as on the Logs tab.
    OutboxStatus.QUEUED: i18n.lazy("waiting to be sent"),
    OutboxStatus.SENT: i18n.lazy("sent"),
    OutboxStatus.DELIVERED: i18n.lazy("delivered"),
    OutboxStatus.FAILED: i18n.lazy("failed"),
    OutboxStatus.DROPPED: i18n.lazy("not sent"),
}


LABELS.update(BILLING_LABELS)


def label(value: StrEnum) -> str:
    """``{{ client.status | label }}``: the translated name of an enum value."""
    return i18n.gettext(LABELS[value])


_env.filters.update(
    label=label,
    # Older names of the same filter, kept so templates read naturally.
    role=label,
    client_status=label,
    payment_kind=label,
    datetime=i18n.format_datetime,
    date=i18n.format_date,
    weekday=i18n.weekday_name,
    zone_city=i18n.zone_city,
    time=i18n.format_time,
    money=i18n.format_money,
    amount=i18n.format_amount,
    # The audit trail's codes in words (server/audit_labels.py).
    audit_action=action_label,
    audit_actor=actor_label,
    audit_object=object_label,
    purpose=purpose_label,
    outbox_reason=reason_label,
)


def _measure_band_labels() -> dict[str, str]:
    """ "phq9.mild" -> "Mild", in the reader's language, for the pages' live notices."""
    from server.instruments import INSTRUMENTS

    return {
        f"{kind.value}.{band.key}": i18n.gettext(band.label)
        for kind, inst in INSTRUMENTS.items()
        for band in inst.bands
    }


_env.globals["measure_band_labels"] = _measure_band_labels


def add_filter(name: str, function: Any) -> None:
    """A domain's own template filter, registered where the domain's pages are."""
    _env.filters[name] = function


def render(
    request: HTTPConnection, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    caller = current_caller(request)
    ctx = {
        "request": request,
        "caller": caller,
        "csrf_token": caller.session.csrf_token if caller else "",
        # Each inline <script> carries it (server/security_headers.py).
        "csp_nonce": request.scope.get("state", {}).get("csp_nonce", ""),
        "locale": i18n.current_locale(),
        "html_lang": i18n.html_lang(),
        "locales": i18n.LOCALES,
        "time_zone": i18n.current_time_zone().key,
        # "Today" is the practice's day, not the server's: due dates turn overdue at its midnight.
        "today": datetime.now(i18n.current_time_zone()).date(),
    }
    ctx.update(context or {})
    html = _env.get_template(template).render(ctx)
    return HTMLResponse(html, status_code=status)


def wants_json(request: HTTPConnection) -> bool:
    path = request.url.path
    return (
        path.startswith("/api/")
        or "/api/" in path
        or "application/json" in request.headers.get("accept", "")
        or request.headers.get("content-type", "").startswith("application/json")
    )


def error_response(request: HTTPConnection, exc: CabinetError) -> Response:
    if wants_json(request):
        headers = {}
        if isinstance(exc, TooManyRequests | ServiceUnavailable):
            headers["Retry-After"] = str(exc.retry_after)
        return JSONResponse(exc.to_json(), status_code=exc.status_code, headers=headers)
    if isinstance(exc, Unauthenticated):
        realm = request.scope.get("state", {}).get("realm", Realm.STAFF)
        login = "/staff/login" if realm is Realm.STAFF else "/portal/login"
        return RedirectResponse(f"{login}?next={request.url.path}", status_code=303)
    realm = request.scope.get("state", {}).get("realm", Realm.STAFF)
    return render(
        request,
        "common/error.html",
        {"error": exc, "home": "/staff/" if realm is Realm.STAFF else "/portal/"},
        status=exc.status_code,
    )


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached right now (restarting, failing
    over, refusing connections), as opposed to a query that is wrong."""
    import asyncpg
    from tortoise.exceptions import DBConnectionError

    outage = (
        ConnectionError,
        DBConnectionError,
        asyncpg.PostgresConnectionError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.CrashShutdownError,
    )
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        # asyncpg says "connection is closed" with a bare InterfaceError (its subclasses are
        # about bad arguments or features, not outages).
        if isinstance(seen, outage) or type(seen) is asyncpg.InterfaceError:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def server_error(request: Request, exc: Exception) -> Response:
    """The last resort of every app: a 503 the page can retry on when the database is
    away (the write did not happen: sends retry with the same client id), else a 500."""
    if database_unavailable(exc):
        unavailable = ServiceUnavailable(
            i18n.gettext("Cabinet is briefly unavailable. Please try again in a moment.")
        )
        return error_response(request, unavailable)
    return PlainTextResponse("Internal Server Error", status_code=500)


# Passed to every Starlette app: each has its own last-resort handler for unhandled errors.
SERVER_ERRORS: dict[Any, Any] = {Exception: server_error}


def static_dir(app: str) -> Path:
    return ROOT / app / "static"
