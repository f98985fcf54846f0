"""The built-in questionnaires: PHQ-9 and GAD-7, as published, in English and French.

Both are free to use (Pfizer, no permission needed). Item texts and answer choices are the
published wording (the French as in the official translations for France), so they live
here as data in both languages rather than in the gettext catalogs, where a translator could
"improve" a validated wording. Scoring is the published one: the sum of the item values,
read against fixed severity bands. Item 10 of the PHQ-9 (how difficult the problems made
life) is asked but not scored, as published.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.measures import MeasureKind
from server import i18n
from server.errors import ValidationFailed
from server.i18n import lazy


@dataclass(frozen=True)
class Text:
    en: str
    fr: str

    def __str__(self) -> str:
        return self.fr if i18n.current_locale() == "fr" else self.en


@dataclass(frozen=True)
class Band:
    key: str
    label: str  # lazy(): translated when shown
    low: int
    high: int  # inclusive
    color: str  # behind the chart, from calm to alarming


@dataclass(frozen=True)
class Instrument:
    kind: MeasureKind
    name: str
    title: Text
    stem: Text
    items: tuple[Text, ...]
    choices: tuple[Text, ...]  # value = position (0..3)
    bands: tuple[Band, ...]
    # Unscored closing question (PHQ-9 item 10), with its own choices.
    extra: Text | None = None
    extra_choices: tuple[Text, ...] = ()
    # The item whose any answer above 0 raises a safety alert (1-based), if any.
    safety_item: int | None = None

    @property
    def max_score(self) -> int:
        return len(self.items) * (len(self.choices) - 1)

    def band_for(self, score: int) -> Band:
        for band in self.bands:
            if band.low <= score <= band.high:
                return band
        raise ValueError(f"score {score} outside {self.name}")

    def band(self, key: str) -> Band | None:
        return next((b for b in self.bands if b.key == key), None)


FREQUENCY = (
    Text("Not at all", "Jamais"),
    Text("Several days", "Plusieurs jours"),
    Text("More than half the days", "Plus de la moitié du temps"),
    Text("Nearly every day", "Presque tous les jours"),
)

PHQ9 = Instrument(
    kind=MeasureKind.PHQ9,
    name="PHQ-9",
    title=Text(
        "Patient Health Questionnaire (PHQ-9)", "Questionnaire sur la santé du patient (PHQ-9)"
    ),
    stem=Text(
        "Over the last 2 weeks, how often have you been bothered by any of the following problems?",
        "Au cours des 2 dernières semaines, selon quelle fréquence avez-vous été gêné(e) par "
        "les problèmes suivants ?",
    ),
    items=(
        Text(
            "Little interest or pleasure in doing things",
            "Peu d'intérêt ou de plaisir à faire les choses",
        ),
        Text("Feeling down, depressed, or hopeless", "Être triste, déprimé(e) ou désespéré(e)"),
        Text(
            "Trouble falling or staying asleep, or sleeping too much",
            "Difficultés à s'endormir ou à rester endormi(e), ou dormir trop",
        ),
        Text("Feeling tired or having little energy", "Se sentir fatigué(e) ou manquer d'énergie"),
        Text("Poor appetite or overeating", "Avoir peu d'appétit ou manger trop"),
        Text(
            "Feeling bad about yourself — or that you are a failure or have let yourself or "
            "your family down",
            "Avoir une mauvaise opinion de soi-même, ou avoir le sentiment d'être nul(le), ou "
            "d'avoir déçu sa famille ou s'être déçu(e) soi-même",
        ),
        Text(
            "Trouble concentrating on things, such as reading the newspaper or watching television",
            "Avoir du mal à se concentrer, par exemple, pour lire le journal ou regarder la "
            "télévision",
        ),
        Text(
            "Moving or speaking so slowly that other people could have noticed? Or the "
            "opposite — being so fidgety or restless that you have been moving around a lot "
            "more than usual",
            "Bouger ou parler si lentement que les autres auraient pu le remarquer. Ou au "
            "contraire, être si agité(e) que vous avez eu du mal à tenir en place par rapport "
            "à d'habitude",
        ),
        Text(
            "Thoughts that you would be better off dead or of hurting yourself in some way",
            "Penser qu'il vaudrait mieux mourir ou envisager de vous faire du mal d'une manière "
            "ou d'une autre",
        ),
    ),
    choices=FREQUENCY,
    bands=(
        Band("minimal", lazy("None to minimal"), 0, 4, "#e8f5e9"),
        Band("mild", lazy("Mild"), 5, 9, "#f9fbe7"),
        Band("moderate", lazy("Moderate"), 10, 14, "#fff8e1"),
        Band("moderately_severe", lazy("Moderately severe"), 15, 19, "#fff3e0"),
        Band("severe", lazy("Severe"), 20, 27, "#fdecea"),
    ),
    extra=Text(
        "If you checked off any problems, how difficult have these problems made it for you "
        "to do your work, take care of things at home, or get along with other people?",
        "Si vous avez coché au moins un des problèmes évoqués, à quel point ce(s) problème(s) "
        "a-t-il (ont-ils) rendu votre travail, vos tâches à la maison ou votre capacité à vous "
        "entendre avec les autres difficile(s) ?",
    ),
    extra_choices=(
        Text("Not difficult at all", "Pas du tout difficile"),
        Text("Somewhat difficult", "Assez difficile"),
        Text("Very difficult", "Très difficile"),
        Text("Extremely difficult", "Extrêmement difficile"),
    ),
    safety_item=9,
)

GAD7 = Instrument(
    kind=MeasureKind.GAD7,
    name="GAD-7",
    title=Text(
        "Generalized Anxiety Disorder scale (GAD-7)",
        "Questionnaire sur le trouble d'anxiété généralisée (GAD-7)",
    ),
    stem=Text(
        "Over the last 2 weeks, how often have you been bothered by the following problems?",
        "Au cours des 14 derniers jours, à quelle fréquence avez-vous été dérangé(e) par les "
        "problèmes suivants ?",
    ),
    items=(
        Text(
            "Feeling nervous, anxious, or on edge",
            "Sentiment de nervosité, d'anxiété ou de tension",
        ),
        Text(
            "Not being able to stop or control worrying",
            "Incapable d'arrêter de s'inquiéter ou de contrôler ses inquiétudes",
        ),
        Text(
            "Worrying too much about different things",
            "Inquiétudes excessives à propos de tout et de rien",
        ),
        Text("Trouble relaxing", "Difficulté à se détendre"),
        Text(
            "Being so restless that it is hard to sit still",
            "Agitation telle qu'il est difficile de rester tranquille",
        ),
        Text(
            "Becoming easily annoyed or irritable", "Devenir facilement contrarié(e) ou irritable"
        ),
        Text(
            "Feeling afraid, as if something awful might happen",
            "Avoir peur que quelque chose d'épouvantable puisse arriver",
        ),
    ),
    choices=(
        FREQUENCY[0],
        FREQUENCY[1],
        Text("More than half the days", "Plus de la moitié des jours"),
        FREQUENCY[3],
    ),
    bands=(
        Band("minimal", lazy("Minimal"), 0, 4, "#e8f5e9"),
        Band("mild", lazy("Mild"), 5, 9, "#f9fbe7"),
        Band("moderate", lazy("Moderate"), 10, 14, "#fff8e1"),
        Band("severe", lazy("Severe"), 15, 21, "#fdecea"),
    ),
)

INSTRUMENTS: dict[MeasureKind, Instrument] = {PHQ9.kind: PHQ9, GAD7.kind: GAD7}


def instrument(kind: MeasureKind | str) -> Instrument:
    return INSTRUMENTS[MeasureKind(kind)]


@dataclass(frozen=True)
class Scored:
    answers: dict[str, int]  # "1".."n" and "extra", as stored
    score: int
    band: Band
    safety_alert: bool


def score(inst: Instrument, values: dict[str, object]) -> Scored:
    """Check and score one filling-in. ``values`` maps "item_1".."item_n" (and "extra") to
    the chosen value. Every scored item is required; a missing or impossible answer is a
    ValidationFailed naming the item, and nothing is stored."""
    fields: dict[str, str] = {}
    answers: dict[str, int] = {}
    top = len(inst.choices) - 1
    for n in range(1, len(inst.items) + 1):
        raw = values.get(f"item_{n}")
        value = _choice(raw, top)
        if value is None:
            fields[f"item_{n}"] = i18n.gettext("Choose an answer.")
        else:
            answers[str(n)] = value
    if inst.extra is not None and values.get("extra") not in (None, ""):
        extra = _choice(values.get("extra"), len(inst.extra_choices) - 1)
        if extra is None:
            fields["extra"] = i18n.gettext("Choose one of the options.")
        else:
            answers["extra"] = extra
    if fields:
        raise ValidationFailed(i18n.gettext("Please answer every question."), fields)
    total = sum(answers[str(n)] for n in range(1, len(inst.items) + 1))
    alert = inst.safety_item is not None and answers[str(inst.safety_item)] > 0
    return Scored(answers, total, inst.band_for(total), alert)


def _choice(raw: object, top: int) -> int | None:
    """The value chosen among 0..``top``, or None. Text is looked up among the values'
    own spellings, never int()ed: 5000 digits are past int()'s limit, a ValueError."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 <= raw <= top else None
    if isinstance(raw, str):
        return {str(value): value for value in range(top + 1)}.get(raw)
    return None
