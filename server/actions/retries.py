"""A form sent twice records one thing.

The answer to a form can be lost (a phone between two cells, a server that was slow), and
people then press the button again. Where the second press would record the same thing
twice, and that thing cannot simply be taken back (a payment, a questionnaire's scores, a
document on a health record), the page carries a key of its own, made when it is shown, and
the row keeps it in a unique column: sent again, the form finds the first row instead of
writing a second. The column is unique within the scope ``once_per_key`` looks in (the
model's ``unique_together``, e.g. client and key), never across the table: another
practice's key must neither refuse this one nor tell that it was used.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tortoise.exceptions import IntegrityError
from tortoise.models import Model

from server.db import unstorable_text
from server.errors import Conflict, ValidationFailed
from server.i18n import gettext as _

M = TypeVar("M", bound=Model)


async def once_per_key(
    model: type[M], request_key: str, write: Callable[[str | None], Awaitable[M]], **scope: Any
) -> M:
    """``write(key)``'s row, or the row an earlier ``write`` with the same ``request_key``
    made (found within ``scope``, e.g. the client's); no key, no check.

    Call outside any transaction: two sends at once are told apart by the unique column, and
    on PostgreSQL a failed insert spoils the transaction it runs in.
    """
    if not request_key:
        return await write(None)
    if unstorable_text(request_key):
        # Looked up and stored in a text column: PostgreSQL refuses a NUL (a 500). A form
        # of ours never sends one; whatever sent it gets a 422 and nothing is recorded.
        raise ValidationFailed(
            _("This form cannot be sent as it is. Reload the page."),
            {"request_key": _("This form cannot be sent as it is. Reload the page.")},
        )
    earlier = await model.get_or_none(request_key=request_key, **scope)
    if earlier is not None:
        return earlier
    try:
        return await write(request_key)
    except (IntegrityError, Conflict) as exc:
        # Both sends at once: the other one's row took the key first (or the other one's
        # write changed what this one checked, which a rule reports as a conflict).
        earlier = await model.get_or_none(request_key=request_key, **scope)
        if earlier is not None:
            return earlier
        if isinstance(exc, Conflict):
            raise
        # The key of a form for something else.
        raise Conflict(_("This form was already sent. Reload the page.")) from None
