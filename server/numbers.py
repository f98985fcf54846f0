"""Numbers as people type them in forms.

A French page shows "20,00" (``i18n.format_amount``, the ``amount`` filter) and its reader
types "20,00" (or "1 200,50"); an English one "20.00". Parsing accepts both, so a form
prefilled in one locale and posted still parses.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator


def typed_number(value: Any) -> Any:
    """An amount as a person types it: "20,00" in French, "1 200.50" with a space."""
    if isinstance(value, str):
        for space in (" ", "\xa0", "\u202f"):
            value = value.replace(space, "")
        return value.replace(",", ".")
    return value


# A Decimal field of a form or API body that also takes a decimal comma and grouping spaces.
TypedDecimal = Annotated[Decimal, BeforeValidator(typed_number)]
