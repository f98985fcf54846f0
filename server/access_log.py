"""Keep the secrets that travel in URL paths out of uvicorn's access log.

A password-reset or invitation link, and a calendar feed's address, carry their secret in the
path: whoever holds the path signs in as the account, or reads its agenda. The access log
records every path, and logs are copied, shipped and kept far longer and more widely than a
link's lifetime, by people who are not meant to sign in as anyone. So the log keeps the route
and drops the secret: ``/portal/invite/[redacted]``.

The same goes for the session's CSRF token that an upload form's address carries in its
query string (a multipart body is not read before the check, see server/web.py): with it,
whoever reads the log could make another site's page act in that person's session.
"""

from __future__ import annotations

import logging
import re

# The route up to its secret, then the secret (to the end of the segment, ".ics" included).
SECRET_IN_PATH = re.compile(
    r"^(/(?:staff|portal)/(?:password/reset|invite)/|/feeds/(?:staff|client)/)[^/?#\s]+"
)
# The CSRF token as a query parameter: after "?" or "&", to the next "&" or "#".
CSRF_IN_QUERY = re.compile(r"([?&]csrf_token=)[^&#\s]*")
REDACTED = "[redacted]"
ACCESS_LOGGER = "uvicorn.access"


def redact_path(path: str) -> str:
    path = SECRET_IN_PATH.sub(lambda m: m.group(1) + REDACTED, path)
    return CSRF_IN_QUERY.sub(lambda m: m.group(1) + REDACTED, path)


class RedactSecrets(logging.Filter):
    """Rewrites the path argument of uvicorn's access records (client, method, path, ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = redact_path(args[2])
            if path != args[2]:
                record.args = (*args[:2], path, *args[3:])
        return True


def install() -> None:
    """Attach the filter to the access logger once; a filter on the logger, not a handler,
    holds whatever handlers a deployment's logging configuration gives it."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
