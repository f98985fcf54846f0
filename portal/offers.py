"""Earlier-slot offers on the portal: the offer a link points to, accept or decline, and the
"alert me of an earlier slot" switch on each upcoming appointment.

Plain forms, like booking: an offer can be answered from a phone's mail app without script.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.accounts import Practice
from models.agenda import Appointment
from models.offers import EarlierSlotOffer, FreedSlot, effective_status
from server.access import access_appointment, access_offer
from server.actions import offers
from server.errors import Conflict, ValidationFailed
from server.queries.offers import client_offers
from server.web import parse_body, path_id, render, require_client


class AlertIn(BaseModel):
    on: bool = False


async def offers_context(practice: Practice, client_id: int) -> dict[str, Any]:
    """What the appointments page shows about earlier slots (an extra to its context)."""
    now = datetime.now(UTC)
    rows = await client_offers(client_id)
    flagged = set(
        await Appointment.filter(client_id=client_id, waitlist_entry__is_active=True).values_list(
            "id", flat=True
        )
    )
    return {
        "alerts_on": practice.earlier_slot_alerts,
        "alert_min_days": practice.earlier_slot_min_days,
        "offers": [(o, effective_status(o, now).value) for o in rows],
        "flagged": flagged,
        "can_flag": lambda a: _can_flag(practice, a, now),
    }


def _can_flag(practice: Practice, appointment: Appointment, now: datetime) -> bool:
    try:
        offers.check_can_join(practice, appointment, now)
    except ValidationFailed:  # not eligible: the switch is not shown
        return False
    return True


async def _page(
    request: Request, offer: EarlierSlotOffer, error: str = "", status: int = 200
) -> Response:
    slot = await FreedSlot.get(id=offer.slot_id).prefetch_related("practitioner", "location")  # type: ignore[attr-defined]
    current = await Appointment.get(id=offer.appointment_id).prefetch_related("service")  # type: ignore[attr-defined]
    state = effective_status(offer).value
    return render(
        request,
        "portal/offer.html",
        {
            "section": "appointments",
            "offer": offer,
            "slot": slot,
            "current": current,
            # "gone": the slot was taken before this client answered.
            "state": "gone" if state == "withdrawn" else state,
            "error": error,
        },
        status=status,
    )


async def offer_page(request: Request) -> Response:
    caller = require_client(request)
    offer = await access_offer(caller, path_id(request, "offer_id"))
    return await _page(request, offer)


async def accept(request: Request) -> Response:
    caller = require_client(request)
    offer = await access_offer(caller, path_id(request, "offer_id"))
    try:
        new = await offers.do_accept_offer(caller, offer)
    except Conflict as exc:
        await offer.refresh_from_db()
        return await _page(request, offer, exc.message, 409)
    return RedirectResponse(f"/portal/appointments?moved={new.id}", status_code=303)


async def decline(request: Request) -> Response:
    caller = require_client(request)
    offer = await access_offer(caller, path_id(request, "offer_id"))
    try:
        await offers.do_decline_offer(caller, offer)
    except Conflict as exc:
        await offer.refresh_from_db()
        return await _page(request, offer, exc.message, 409)
    return RedirectResponse("/portal/appointments?declined=1", status_code=303)


async def set_alert(request: Request) -> Response:
    caller = require_client(request)
    appointment = await access_appointment(caller, path_id(request, "appointment_id"))
    data = await parse_body(request, AlertIn)
    await offers.do_set_earlier_alert(caller, appointment, data.on)
    return RedirectResponse("/portal/appointments?alert=1", status_code=303)
