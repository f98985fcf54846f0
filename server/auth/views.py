"""Sign-in pages shared by the staff and portal apps, parameterised by realm."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from models.accounts import Realm, TokenPurpose
from server.actions import accounts
from server.auth.sessions import COOKIE_NAMES
from server.auth.throttle import DEVICE_COOKIE, add_known_device, is_known_device
from server.errors import CabinetError, NotFound, TooManyRequests, ValidationFailed
from server.i18n import LOCALES
from server.i18n import gettext as _
from server.settings import get_settings
from server.web import client_address, current_caller, parse_body, render, require_caller


class LoginForm(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    next: str = ""


class EmailForm(BaseModel):
    email: str = Field(min_length=3, max_length=254)


class NewPasswordForm(BaseModel):
    password: str = Field(min_length=1, max_length=1024)
    confirm: str = Field(min_length=1, max_length=1024)


class ChangePasswordForm(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class LocaleForm(BaseModel):
    locale: str = Field(pattern="^(en|fr)$")


def set_session_cookie(response: Response, realm: Realm, token: str) -> None:
    settings = get_settings()
    response.set_cookie(
        COOKIE_NAMES[realm],
        token,
        max_age=settings.session_max_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.uses_https,
        path="/",
    )


def remember_device(response: Response, request: Request, email: str) -> None:
    value = add_known_device(request.cookies.get(DEVICE_COOKIE), email)
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=365 * 86400,
        httponly=True,
        samesite="lax",
        secure=get_settings().uses_https,
        path="/",
    )


def _safe_next(target: str, home: str) -> str:
    # Only same-site paths: never an open redirect to another host.
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return home


class AuthPages:
    def __init__(self, realm: Realm, prefix: str) -> None:
        self.realm = realm
        self.prefix = prefix
        self.home = f"{prefix}/"

    def routes(self) -> list[Route]:
        return [
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/password/forgot", self.forgot, methods=["GET", "POST"]),
            Route("/password/reset/{token}", self.reset, methods=["GET", "POST"]),
            Route("/account", self.account, methods=["GET"]),
            Route("/account/password", self.change_password, methods=["POST"]),
            Route("/account/sessions/revoke", self.logout_everywhere, methods=["POST"]),
            Route("/account/locale", self.set_locale, methods=["POST"]),
        ]

    def _page(
        self, request: Request, template: str, ctx: dict[str, object], status: int = 200
    ) -> Response:
        ctx.update(prefix=self.prefix, realm=self.realm.value)
        return render(request, f"common/{template}", ctx, status)

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            if current_caller(request) is not None:
                return RedirectResponse(self.home, status_code=303)
            return self._page(request, "login.html", {"next": request.query_params.get("next", "")})
        form = await request.form()
        email = str(form.get("email", ""))
        try:
            data = await parse_body(request, LoginForm)
            result = await accounts.do_login(
                self.realm,
                data.email,
                data.password,
                address=client_address(request),
                user_agent=request.headers.get("user-agent", ""),
                known_device=is_known_device(request.cookies.get(DEVICE_COOKIE), data.email),
                previous_token=request.cookies.get(COOKIE_NAMES[self.realm]),
            )
        except CabinetError as exc:
            return self._page(
                request,
                "login.html",
                {"error": exc.message, "email": email, "next": form.get("next", "")},
                status=exc.status_code,
            )
        response = RedirectResponse(_safe_next(data.next, self.home), status_code=303)
        set_session_cookie(response, self.realm, result.token)
        remember_device(response, request, data.email)
        return response

    async def logout(self, request: Request) -> Response:
        caller = current_caller(request)
        if caller is not None:
            await accounts.do_logout(caller)
        response = RedirectResponse(f"{self.prefix}/login", status_code=303)
        response.delete_cookie(COOKIE_NAMES[self.realm], path="/")
        return response

    async def logout_everywhere(self, request: Request) -> Response:
        caller = require_caller(request)
        await accounts.do_logout(caller, everywhere=True)
        response = RedirectResponse(f"{self.prefix}/login", status_code=303)
        response.delete_cookie(COOKIE_NAMES[self.realm], path="/")
        return response

    async def forgot(self, request: Request) -> Response:
        if request.method == "GET":
            return self._page(request, "forgot.html", {})
        try:
            data = await parse_body(request, EmailForm)
            await accounts.do_request_password_reset(
                self.realm, data.email, address=client_address(request)
            )
        except (ValidationFailed, TooManyRequests) as exc:
            return self._page(request, "forgot.html", {"error": exc.message}, exc.status_code)
        # The same answer whether or not the account exists.
        return self._page(request, "forgot.html", {"sent": True})

    async def reset(self, request: Request) -> Response:
        token = request.path_params["token"]
        return await self._set_password(request, token, TokenPurpose.RESET, "reset.html")

    async def invite(self, request: Request) -> Response:
        token = request.path_params["token"]
        return await self._set_password(request, token, TokenPurpose.INVITE, "invite.html")

    async def _set_password(
        self, request: Request, token: str, purpose: TokenPurpose, template: str
    ) -> Response:
        try:
            row = await accounts.find_token(self.realm, purpose, token)
        except NotFound:
            return self._page(request, template, {"expired": True}, status=404)
        account = row.staff_user or row.portal_account
        assert account is not None
        ctx: dict[str, object] = {"email": account.email}
        if request.method == "GET":
            return self._page(request, template, ctx)
        try:
            data = await parse_body(request, NewPasswordForm)
            if data.password != data.confirm:
                raise ValidationFailed(
                    _("The two passwords differ."), {"confirm": _("The two passwords differ.")}
                )
            await accounts.do_set_password_with_token(self.realm, purpose, token, data.password)
        except NotFound:
            return self._page(request, template, {"expired": True}, status=404)
        except ValidationFailed as exc:
            ctx.update(error=exc.message, fields=exc.fields)
            return self._page(request, template, ctx, status=422)
        response = self._page(request, template, {"done": True})
        # Whoever set the password from the emailed link is the account's owner: this
        # browser signs in even while strangers' guesses hold the account throttled (a new
        # colleague or client has no earlier sign-in to be known by).
        remember_device(response, request, str(account.email))
        return response

    async def account(self, request: Request) -> Response:
        require_caller(request)
        return self._page(request, "account.html", {"locales": LOCALES})

    async def change_password(self, request: Request) -> Response:
        caller = require_caller(request)
        try:
            data = await parse_body(request, ChangePasswordForm)
            await accounts.do_change_password(
                caller, data.current_password, data.new_password, address=client_address(request)
            )
        except (ValidationFailed, TooManyRequests) as exc:
            page = self._page(
                request,
                "account.html",
                {"error": exc.message, "fields": exc.fields, "locales": LOCALES},
                status=exc.status_code,
            )
            if isinstance(exc, TooManyRequests):
                page.headers["Retry-After"] = str(exc.retry_after)
            return page
        return self._page(request, "account.html", {"changed": True, "locales": LOCALES})

    async def set_locale(self, request: Request) -> Response:
        caller = require_caller(request)
        data = await parse_body(request, LocaleForm)
        await accounts.do_set_locale(caller, data.locale)
        return RedirectResponse(f"{self.prefix}/account", status_code=303)
