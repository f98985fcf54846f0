"""The one error hierarchy, mapped to HTTP by ``server.app``::

CabinetError
├── NotFound          404  missing, or not yours to see (the two look the same)
├── PermissionDenied  403  you are known, but this action is not for your role
├── ValidationFailed  422  bad input; ``fields`` maps field -> message
├── Conflict          409  a business rule refuses the change (e.g. deleting a read message)
├── Unauthenticated   401  no valid session
├── PayloadTooLarge   413  the request body is larger than any such request needs
├── TooManyRequests   429  throttled; ``retry_after`` in seconds
└── ServiceUnavailable 503  the database cannot be reached right now (restart, failover);
                           nothing was changed, try again after ``retry_after`` seconds
"""

from __future__ import annotations

from server.i18n import gettext


class CabinetError(Exception):
    status_code = 400
    code = "error"

    def __init__(self, message: str = "", fields: dict[str, str] | None = None) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.fields = fields or {}

    def to_json(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, "fields": self.fields}}


class NotFound(CabinetError):
    status_code = 404
    code = "not_found"

    def __init__(self, message: str = "", fields: dict[str, str] | None = None) -> None:
        # Said to the page's scripts (a session or conversation removed meanwhile), in the
        # reader's language; the error page has words of its own.
        super().__init__(
            message or gettext("It no longer exists, or you do not have access to it."), fields
        )


class PermissionDenied(CabinetError):
    status_code = 403
    code = "forbidden"


class ValidationFailed(CabinetError):
    status_code = 422
    code = "invalid"


class Conflict(CabinetError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(CabinetError):
    status_code = 413
    code = "too_large"


class Unauthenticated(CabinetError):
    status_code = 401
    code = "unauthenticated"


class TooManyRequests(CabinetError):
    status_code = 429
    code = "throttled"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(CabinetError):
    status_code = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after
