"""The practice settings page (owner only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.accounts import Practice
from server.actions.practice import (
    PracticeSettingsIn,
    TimeZoneChangeUnconfirmed,
    do_update_settings,
    settings_version,
    time_zones,
)
from server.errors import Conflict, ValidationFailed
from server.web import render, require_staff, validate
from staff.pages import OWNER


async def settings_page(request: Request) -> Response:
    caller = require_staff(request, OWNER)
    practice = await Practice.get(id=caller.practice_id)
    ctx: dict[str, object] = {
        "practice": practice,
        "section": "practice",
        "time_zones": time_zones(),
        "version": settings_version(practice),
    }
    if request.method == "POST":
        form = await request.form()
        data = {k: v for k, v in form.items() if k != "csrf_token" and (k != "version" or v)}
        # Unticked boxes are simply absent from a form post.
        data.setdefault("online_booking", "false")
        data.setdefault("office_admins_see_clinical", "false")
        data.setdefault("clients_see_measure_trend", "false")
        data.setdefault("earlier_slot_alerts", "false")
        try:
            await do_update_settings(caller, practice, validate(PracticeSettingsIn, data))
        except ValidationFailed as exc:
            ctx.update(error=exc.message, fields=exc.fields, posted=data)
            return render(request, "staff/practice.html", ctx, status=422)
        except TimeZoneChangeUnconfirmed as exc:
            # Shown as posted, with the box that confirms the new zone.
            ctx.update(error=exc.message, fields=exc.fields, posted=data, confirm_time_zone=True)
            return render(request, "staff/practice.html", ctx, status=409)
        except Conflict as exc:
            # Shown as they are now, with their new version: saving again is a choice.
            await practice.refresh_from_db()
            ctx.update(error=exc.message, version=settings_version(practice))
            return render(request, "staff/practice.html", ctx, status=409)
        return RedirectResponse("/staff/practice?saved=1", status_code=303)
    return render(request, "staff/practice.html", ctx)
