"""The SMS provider's delivery reports: ``POST /hooks/sms/twilio``.

Twilio posts the message's status as a form, signed with the account's auth token
(``X-Twilio-Signature``); an unsigned or wrongly signed report is refused with 403 and
changes nothing.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from server.actions.reminders import do_record_sms_status
from server.settings import get_settings
from server.sms import valid_twilio_signature


async def twilio_status(request: Request) -> Response:
    form = await request.form()
    params = {k: str(v) for k, v in form.items()}
    if not valid_twilio_signature(
        get_settings(), request.headers.get("x-twilio-signature", ""), params
    ):
        return PlainTextResponse("bad signature", status_code=403)
    await do_record_sms_status(
        params.get("MessageSid", ""), params.get("MessageStatus", ""), params.get("ErrorCode", "")
    )
    # Twilio only needs a 2xx; an unknown message id is not its problem to retry.
    return PlainTextResponse("ok")
