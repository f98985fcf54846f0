"""What the Measures tab and the portal show: what was sent, each measure's scores over time
as a chart (drawn server-side as inline SVG), and each administration's answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from models.measures import (
    AdministrationStatus,
    MeasureAdministration,
    MeasureKind,
    MeasureSchedule,
)
from server import i18n
from server.instruments import INSTRUMENTS, Instrument, instrument

# The chart's drawing box, in SVG user units (it scales to the page's width).
WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 36, 12, 10, 28


@dataclass(frozen=True)
class BandArea:
    key: str
    label: str
    y: float
    height: float
    color: str
    low: int
    high: int


@dataclass(frozen=True)
class Point:
    id: int
    x: float
    y: float
    score: int
    band: str
    band_label: str
    when: datetime
    when_label: str
    safety_alert: bool


@dataclass(frozen=True)
class Chart:
    measure: MeasureKind
    name: str
    max_score: int
    width: int
    height: int
    left: int
    right_edge: int
    bands: list[BandArea]
    points: list[Point]
    ticks: list[tuple[int, float]]  # (score, y)

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)

    @property
    def latest(self) -> Point | None:
        return self.points[-1] if self.points else None


def _y(score: float, top_score: int) -> float:
    inner = HEIGHT - TOP - BOTTOM
    return TOP + inner * (1 - score / top_score)


def chart_for(inst: Instrument, done: list[MeasureAdministration]) -> Chart:
    """The chart of ``done`` (completed administrations of ``inst``, any order): each band a
    strip from its low to its high score (a score of n covers [n - 0.5, n + 0.5] so the
    strips meet), each result a point placed by when it was answered."""
    top = inst.max_score
    bands = []
    for band in inst.bands:
        upper = _y(min(band.high + 0.5, top), top)
        lower = _y(max(band.low - 0.5, 0), top)
        bands.append(
            BandArea(
                band.key,
                i18n.gettext(band.label),
                round(upper, 1),
                round(lower - upper, 1),
                band.color,
                band.low,
                band.high,
            )
        )
    done = sorted(
        (a for a in done if a.completed_at is not None and a.score is not None),
        key=lambda a: (a.completed_at, a.id),
    )
    x0, x1 = LEFT + 8, WIDTH - RIGHT - 8
    points = []
    if done:
        first = done[0].completed_at.timestamp()  # type: ignore[union-attr]
        span = done[-1].completed_at.timestamp() - first  # type: ignore[union-attr]
        for i, a in enumerate(done):
            if span > 0:
                x = x0 + (x1 - x0) * (a.completed_at.timestamp() - first) / span  # type: ignore[union-attr]
            elif len(done) > 1:
                x = x0 + (x1 - x0) * i / (len(done) - 1)
            else:
                x = (x0 + x1) / 2
            band = inst.band(a.band) or inst.band_for(a.score)  # type: ignore[arg-type]
            points.append(
                Point(
                    a.id,
                    round(x, 1),
                    round(_y(a.score, top), 1),  # type: ignore[arg-type]
                    a.score,  # type: ignore[arg-type]
                    band.key,
                    i18n.gettext(band.label),
                    a.completed_at,  # type: ignore[arg-type]
                    i18n.format_date(a.completed_at),
                    a.safety_alert,
                )
            )
    ticks = [(b.low, round(_y(b.low, top), 1)) for b in inst.bands] + [
        (top, round(_y(top, top), 1))
    ]
    return Chart(
        inst.kind, inst.name, top, WIDTH, HEIGHT, LEFT, WIDTH - RIGHT, bands, points, ticks
    )


async def charts(client_id: int) -> list[Chart]:
    """A chart per measure the client has answered at least once, in catalogue order."""
    done = await MeasureAdministration.filter(
        client_id=client_id, status=AdministrationStatus.COMPLETED
    ).order_by("completed_at", "id")
    out = []
    for kind, inst in INSTRUMENTS.items():
        mine = [a for a in done if a.measure is kind]
        if mine:
            out.append(chart_for(inst, mine))
    return out


@dataclass(frozen=True)
class AnswerRow:
    number: int
    text: str
    value: int
    choice: str
    flagged: bool


def answer_rows(administration: MeasureAdministration) -> list[AnswerRow]:
    inst = instrument(administration.measure)
    answers: dict[str, int] = administration.answers or {}
    rows = []
    for n, item in enumerate(inst.items, start=1):
        value = answers.get(str(n))
        if value is None:
            continue
        rows.append(
            AnswerRow(
                n,
                str(item),
                value,
                str(inst.choices[value]),
                inst.safety_item == n and value > 0,
            )
        )
    if inst.extra is not None and "extra" in answers:
        value = answers["extra"]
        rows.append(
            AnswerRow(
                len(inst.items) + 1, str(inst.extra), value, str(inst.extra_choices[value]), False
            )
        )
    return rows


async def administrations(client_id: int) -> list[MeasureAdministration]:
    """Everything sent to the client, newest first, with who sent it."""
    return (
        await MeasureAdministration.filter(client_id=client_id)
        .prefetch_related("sent_by", "filled_by")
        .order_by("-created_at", "-id")
    )


async def running_schedules(client_id: int) -> list[MeasureSchedule]:
    return await MeasureSchedule.filter(client_id=client_id, stopped_at=None).order_by("id")
