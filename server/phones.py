"""Phone numbers that texts go to: checked when they are entered, written for the provider
when a text is queued.

People type numbers the way their country writes them ("06 12 34 56 78"); the SMS provider
takes only the international form ("+33612345678"), and refuses the rest at send time,
when nobody is there to correct them. So a number marked for texts is checked when it is
saved (a clear 422 on the form, a landline refused), read in the practice's country, the
one its time zone lies in; a number abroad is written with its country code. Numbers not
used for texts are kept as typed: a reception desk's extension is nobody's business.
"""

from __future__ import annotations

import phonenumbers
from babel.core import get_global
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from models.accounts import Practice
from server.i18n import gettext as _

# Types a text can reach, or may: many countries (the United States, Canada) do not tell
# mobile numbers from landlines.
_TEXTABLE = frozenset(
    {
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
        PhoneNumberType.PERSONAL_NUMBER,
        PhoneNumberType.UNKNOWN,
    }
)


def region_of(time_zone: str) -> str | None:
    """The country (ISO 3166 code) of a time zone such as "Europe/Paris": where a number
    written without a country code is read. None for a zone of no one country ("UTC")."""
    territory: str | None = get_global("zone_territories").get(time_zone)
    return territory if territory and territory != "001" else None


async def practice_region(practice_id: int) -> str | None:
    """The country a practice's numbers are read in: its time zone's (``region_of``)."""
    return region_of((await Practice.get(id=practice_id)).time_zone)


def _parse(number: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        parsed = phonenumbers.parse(number, region)
    except NumberParseException:
        return None
    return parsed if phonenumbers.is_valid_number(parsed) else None


def sms_problem(number: str, region: str | None) -> str:
    """Why texts cannot go to ``number`` (translated), or "" if they can."""
    parsed = _parse(number.strip(), region)
    if parsed is None:
        return _(
            "This is not a number texts can reach. Check it; a number abroad starts with"
            " its country code (+44…)."
        )
    if phonenumbers.number_type(parsed) not in _TEXTABLE:
        return _("This is a landline: texts cannot reach it. Mark a mobile number instead.")
    return ""


def for_sending(number: str, region: str | None) -> str:
    """``number`` as the provider takes it ("+33612345678"); as stored if it cannot be read
    (one saved before numbers were checked): the provider's refusal then shows in the logs."""
    parsed = _parse(number.strip(), region)
    if parsed is None:
        return number.strip()
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
