"""Earlier-slot alerts as screens show them: the agenda's badges, a client's offers, to whom a
slot was offered, and the owner's fill rate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from models.agenda import HOLDS_SLOT, Appointment
from models.offers import (
    EarlierSlotOffer,
    FreedSlot,
    OfferStatus,
    SlotStatus,
    WaitlistEntry,
    effective_status,
)


async def annotate(views: list[dict[str, Any]]) -> None:
    """Add ``alert_earlier`` (on the waiting list) and ``slot_offer`` (what became of the
    slot a cancelled appointment freed: waiting, offered, unmatched, taken) to agenda views,
    in two queries over the views' time range (not over their ids: a week's agenda has a
    thousand, and building an IN list that long costs more than the query)."""
    if not views:
        return
    first = min(v["starts_at"] for v in views)
    last = max(v["starts_at"] for v in views)
    low, high = _parse(first), _parse(last)
    flagged = set(
        await WaitlistEntry.filter(
            is_active=True, appointment__starts_at__gte=low, appointment__starts_at__lte=high
        ).values_list("appointment_id", flat=True)
    )
    holding = {a.value for a in HOLDS_SLOT}
    slots: dict[int, str] = {}
    if any(v["attendance"] not in holding for v in views):
        rows = (
            await FreedSlot.filter(starts_at__gte=low, starts_at__lte=high)
            .order_by("id")
            .values_list("appointment_id", "status")
        )
        for appointment_id, status in rows:
            slots[int(appointment_id)] = getattr(status, "value", status)
    for v in views:
        v["alert_earlier"] = v["id"] in flagged
        v["slot_offer"] = slots.get(v["id"]) if v["attendance"] not in holding else None


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def is_open(offer: EarlierSlotOffer, now: datetime) -> bool:
    return effective_status(offer, now) is OfferStatus.SENT


async def client_offers(client_id: int, limit: int = 20) -> list[EarlierSlotOffer]:
    """A client's offers, the newest first, with their slot, practitioner and appointment."""
    return (
        await EarlierSlotOffer.filter(client_id=client_id)
        .prefetch_related("slot", "slot__practitioner", "appointment", "appointment__service")
        .order_by("-sent_at", "-id")
        .limit(limit)
    )


@dataclass(frozen=True)
class OfferLine:
    client_id: int | None  # None, and the name "", when the caller may not see that client
    client_name: str
    status: str
    sent_at: datetime
    answered_at: datetime | None
    expires_at: datetime


@dataclass(frozen=True)
class SlotHistory:
    appointment_id: int
    client_name: str
    attendance: str
    lines: list[OfferLine]


async def offered_to(appointment: Appointment, visible_client_ids: set[int]) -> list[SlotHistory]:
    """For each appointment ever made in this slot (same practitioner, start and end), the
    offers its cancellation caused. Clients outside the caller's caseload stay unnamed."""
    now = datetime.now(UTC)
    same = (
        await Appointment.filter(
            practitioner_id=appointment.practitioner_id,  # type: ignore[attr-defined]
            starts_at=appointment.starts_at,
            ends_at=appointment.ends_at,
        )
        .prefetch_related("client")
        .order_by("id")
    )
    offers = (
        await EarlierSlotOffer.filter(slot__appointment_id__in=[a.id for a in same])
        .prefetch_related("slot", "client")
        .order_by("sent_at", "id")
    )
    out: list[SlotHistory] = []
    for a in same:
        lines = [
            OfferLine(
                client_id=o.client.id if o.client.id in visible_client_ids else None,
                client_name=o.client.full_name if o.client.id in visible_client_ids else "",
                status=effective_status(o, now).value,
                sent_at=o.sent_at,
                answered_at=o.answered_at,
                expires_at=o.expires_at,
            )
            for o in offers
            if o.slot.appointment_id == a.id  # type: ignore[attr-defined]
        ]
        name = a.client.full_name if a.client.id in visible_client_ids else ""
        out.append(SlotHistory(a.id, name, a.attendance.value, lines))
    return out


@dataclass(frozen=True)
class FillWeek:
    monday: date
    freed: int
    offered: int
    refilled: int


@dataclass(frozen=True)
class FillRate:
    start: date
    end: date
    freed: int
    offered: int
    refilled: int
    weeks: list[FillWeek]

    @property
    def rate(self) -> int:
        """Refilled through offers, as a percentage of the slots freed."""
        return round(100 * self.refilled / self.freed) if self.freed else 0


async def fill_rate(practice_id: int, tz: ZoneInfo, days: int, today: date) -> FillRate:
    """Slots freed in the last ``days`` days (by the day they were freed), how many were
    offered, and how many an accepted offer filled, week by week."""
    start = today - timedelta(days=days - 1)
    since = datetime.combine(start, datetime.min.time(), tzinfo=tz).astimezone(UTC)
    rows = await FreedSlot.filter(practice_id=practice_id, created_at__gte=since).values_list(
        "created_at", "offered_at", "refilled_by_offer", "status"
    )
    weeks: dict[date, list[int]] = {}
    monday = start - timedelta(days=start.weekday())
    while monday <= today:
        weeks[monday] = [0, 0, 0]
        monday += timedelta(days=7)
    freed = offered = refilled = 0
    for created_at, offered_at, by_offer, status in rows:
        day = created_at.astimezone(tz).date()
        week = weeks.setdefault(day - timedelta(days=day.weekday()), [0, 0, 0])
        was_offered = offered_at is not None or status == SlotStatus.OFFERED
        week[0] += 1
        week[1] += int(was_offered)
        week[2] += int(bool(by_offer))
        freed += 1
        offered += int(was_offered)
        refilled += int(bool(by_offer))
    return FillRate(
        start,
        today,
        freed,
        offered,
        refilled,
        [FillWeek(m, *v) for m, v in sorted(weeks.items())],
    )
