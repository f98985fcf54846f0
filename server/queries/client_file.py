"""What each tab of the client file shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from models.accounts import PortalAccount, StaffUser
from models.agenda import Appointment, Attendance, Service, ServiceDiscount, discounted_price
from models.clients import (
    Client,
    ClientStatus,
    EmailAddress,
    PaymentMethod,
    PaymentMethodKind,
    PaymentTerms,
    PhoneNumber,
    Tag,
)
from server.queries.sessions import attendance_totals

# Empty rows offered by the contact form so a phone or email can be added without script.
SPARE_ROWS = 2


async def booked_while_inactive(client: Client) -> int:
    """Sessions still booked for a client marked inactive (archived); 0 for any other client.

    Their reminders still go: a session on the agenda is the stronger sign that the client
    is coming (someone booked a returning client without changing the status). The file
    says so, for the practice that closed the file and forgot the bookings."""
    if client.status is not ClientStatus.ARCHIVED:
        return 0
    return await Appointment.filter(
        client_id=client.id,
        deleted_at=None,
        attendance=Attendance.SCHEDULED,
        starts_at__gt=datetime.now(UTC),
    ).count()


async def contact_details(client: Client) -> dict[str, Any]:
    phones = await PhoneNumber.filter(client_id=client.id).order_by("-is_primary", "id")
    emails = await EmailAddress.filter(client_id=client.id).order_by("-is_primary", "id")
    return {
        "phones": phones,
        "emails": emails,
        "spare_phones": SPARE_ROWS,
        "spare_emails": SPARE_ROWS,
        "reminder_hours": list(range(2, 73)),
        "statuses": list(ClientStatus),
        "all_tags": await Tag.filter(practice_id=client.practice_id).order_by("name"),  # type: ignore[attr-defined]
        "tag_ids": {t.id for t in await client.tags.all()},
    }


async def clinical_details(client: Client) -> dict[str, Any]:
    therapist = await StaffUser.get_or_none(id=client.therapist_id)  # type: ignore[attr-defined]
    supervisor = (
        await StaffUser.get_or_none(id=therapist.supervisor_id)  # type: ignore[attr-defined]
        if therapist
        else None
    )
    return {
        "supervisor": supervisor,
        "keywords": client.diagnosis_keywords or [],
        "attendance": await attendance_totals(client),
    }


async def account_details(client: Client) -> dict[str, Any]:
    return {
        "account": await PortalAccount.get_or_none(client_id=client.id),
        "payment_terms": list(PaymentTerms),
        "discounts": [
            (d, discounted_price(d.service.price, d))
            for d in await ServiceDiscount.filter(client_id=client.id)
            .prefetch_related("service")
            .order_by("service__name")
        ],
        "services": await Service.filter(
            practice_id=client.practice_id,  # type: ignore[attr-defined]
            is_active=True,
        ).order_by("name"),
        "method_kinds": list(PaymentMethodKind),
        "payment_methods": await PaymentMethod.filter(
            client_id=client.id, deleted_at=None
        ).order_by("id"),
    }
