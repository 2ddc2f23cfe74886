"""The sentiment digest for communication managers: what was said about a brand in a period.

:func:`build_digest` reads the database and returns plain dataclasses; rendering lives beside it
(:mod:`alerts.digest_html`, :mod:`alerts.digest_slack`, :mod:`alerts.digest_chart`).

Definitions (also in docs/digest.md):

* **Volume** counts distinct mentions of the brand created in the period, without near-identical
  copies (retweets, syndicated news: ``duplicate_of_id``) and without the brand's own posts.
* **Sentiment shares** are over *scored* mentions; mentions without scores are counted apart
  (``unscored``) and never distort the shares. Net sentiment is positive share − negative share.
* A **complaint** is a mention whose complaint probability reaches the brand's ``complaint_min``,
  a review rated at or below ``review_complaint_max_rating`` of its scale, or a negative mention.
* **Praise** is a positive mention that is not a complaint.
* **Team handling** counts the alerts (praise, complaint, spike raise) raised in the period and not
  suppressed. It goes by ``created_at``, when repmon raised the alert (wall clock, for every kind),
  not by the post's time: after a backfill the work reaches the team now. Times run from
  ``sent_at`` (else ``created_at``) to ``claimed_at`` and to the first of ``handled_at`` /
  ``dismissed_at``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Float, and_, cast, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from alerts.labels import source_label
from alerts.terms import phrases, top_terms, words
from config.settings import Settings, Thresholds
from monitor import models
from monitor.db import Database

__all__ = [
    "BrandDigest",
    "CompetitorSummary",
    "DayPoint",
    "HandlingStats",
    "Period",
    "PostRef",
    "SentimentShare",
    "SourceVolume",
    "SpikeSummary",
    "Theme",
    "build_digest",
    "build_digests",
    "change_pct",
    "format_change",
    "format_net",
    "format_percent",
    "format_share",
    "largest_remainder",
    "percentile",
    "source_label",
]

#: How many posts the digest lists per section, and how many examples per theme.
TOP_POSTS = 5
THEME_EXAMPLES = 3
THEMES = 6
#: Upper bounds on what is read into memory for theme extraction (most-reached complaints first).
MAX_COMPLAINT_TEXTS = 5000
MAX_BACKGROUND_TEXTS = 5000
#: Theme counts cover every complaint of the period, read in batches of this many texts.
THEME_COUNT_BATCH = 1000
#: The background for complaint themes: the brand's other mentions of this many days before the period.
BACKGROUND_DAYS = 28


#: The sentiment labels in display order.
SENTIMENT_LABELS = ("positive", "neutral", "negative")


def change_pct(current: float, previous: float) -> float | None:
    """Relative change in percent: 0 when both are zero (no change), None when only ``previous`` is."""
    if previous <= 0:
        return 0.0 if current <= 0 else None
    return (current - previous) / previous * 100.0


def format_share(share: float | None) -> str:
    """``42%``, or ``–`` when there is nothing to share."""
    return "–" if share is None else f"{share * 100:.0f}%"


def format_net(value: float | None) -> str:
    """Net sentiment on a −100 … +100 scale (``+25``, ``-11``, ``0``), or ``–`` when unknown."""
    if value is None:
        return "–"
    points = round(value * 100)
    return f"{points:+d}" if points else "0"


def format_percent(value: int | None) -> str:
    """A whole percentage (``42%``), or ``–`` when there is nothing to share."""
    return "–" if value is None else f"{value}%"


def format_change(pct: float | None) -> str:
    """``+12%`` / ``-3%``, ``±0%`` for no change, or ``new`` when only the current period has mentions.

    Whole percents, except where rounding would claim "no change" or "all gone" when that is not so:
    those show one decimal, kept at least 0.1 away from 0 and -100 (``-99.8%``, ``+0.3%``).
    """
    if pct is None:
        return "new"
    if pct == 0:
        return "±0%"
    text = f"{pct:+.0f}%"
    if text in ("+0%", "-0%") or (text == "-100%" and pct > -100):
        tenth = max(pct, 0.1) if pct > 0 else min(max(pct, -99.9), -0.1)
        text = f"{tenth:+.1f}%"
    return text


def largest_remainder(counts: Sequence[int], total: int = 100) -> list[int]:
    """Whole shares of ``total`` proportional to ``counts`` that add up to exactly ``total``.

    Each share is rounded down, and the points left over go to the largest remainders (ties: the
    larger count, then the earlier position), so displayed percentages never sum to 99 or 101.
    """
    whole = sum(counts)
    if whole <= 0:
        return [0] * len(counts)
    exact = [n * total / whole for n in counts]
    shares = [math.floor(x) for x in exact]
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - shares[i]), -counts[i], i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) with linear interpolation (numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# ---------------------------------------------------------------------------------------- period


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open interval [start, end) in aware UTC, shown and bucketed by day in ``timezone``."""

    start: datetime
    end: datetime
    timezone: str = "Europe/Amsterdam"

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("period bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("a period must end after it starts")

    @classmethod
    def from_dates(cls, first: date, last: date, timezone: str = "Europe/Amsterdam") -> Period:
        """Whole local days ``first`` … ``last`` (inclusive) in ``timezone``."""
        zone = ZoneInfo(timezone)
        start = datetime.combine(first, time.min, zone).astimezone(UTC)
        end = datetime.combine(last + timedelta(days=1), time.min, zone).astimezone(UTC)
        return cls(start, end, timezone)

    @classmethod
    def last_full_week(cls, now: datetime, timezone: str = "Europe/Amsterdam") -> Period:
        """The last complete ISO week (Monday to Sunday, local time) before ``now``."""
        today = now.astimezone(ZoneInfo(timezone)).date()
        monday = today - timedelta(days=today.weekday() + 7)
        return cls.from_dates(monday, monday + timedelta(days=6), timezone)

    @classmethod
    def coerce(cls, value: Period | tuple[datetime, datetime], timezone: str = "Europe/Amsterdam") -> Period:
        """A :class:`Period` from itself or from a ``(start, end)`` pair of aware datetimes."""
        if isinstance(value, Period):
            return value
        start, end = value
        return cls(start.astimezone(UTC), end.astimezone(UTC), timezone)

    @property
    def zone(self) -> ZoneInfo:
        """The display timezone."""
        return ZoneInfo(self.timezone)

    @property
    def local_start(self) -> datetime:
        """Start in the display timezone."""
        return self.start.astimezone(self.zone)

    @property
    def local_end(self) -> datetime:
        """End (exclusive) in the display timezone."""
        return self.end.astimezone(self.zone)

    @property
    def whole_days(self) -> bool:
        """Whether both bounds are local midnights."""
        return self.local_start.time() == time.min and self.local_end.time() == time.min

    @property
    def iso_week(self) -> tuple[int, int] | None:
        """(ISO year, week) when the period is exactly one ISO week, else None."""
        first = self.local_start.date()
        if self.whole_days and first.weekday() == 0 and self.local_end.date() == first + timedelta(days=7):
            year, week, _ = first.isocalendar()
            return year, week
        return None

    @property
    def last_day(self) -> date:
        """The last local day the period touches."""
        return (self.local_end - timedelta(microseconds=1)).date()

    @property
    def label(self) -> str:
        """Human label: ``Week 18, 2024 (29 Apr – 5 May)`` or ``1 May – 9 May 2024``."""
        first, last = self.local_start.date(), self.last_day
        span = f"{first.day} {first:%b} – {last.day} {last:%b}"
        week = self.iso_week
        if week is not None:
            return f"Week {week[1]}, {week[0]} ({span})"
        if self.whole_days:
            if first == last:
                return f"{first.day} {first:%b %Y}"
            return f"{span} {last.year}"
        return f"{self.local_start:%Y-%m-%d %H:%M} – {self.local_end:%Y-%m-%d %H:%M} ({self.timezone})"

    @property
    def slug(self) -> str:
        """A file-name-safe name: ``2024-W18``, ``2024-05-01_2024-05-09`` or ``20240501T0930_…``."""
        week = self.iso_week
        if week is not None:
            return f"{week[0]}-W{week[1]:02d}"
        if self.whole_days:
            return f"{self.local_start.date().isoformat()}_{self.last_day.isoformat()}"
        return f"{self.local_start:%Y%m%dT%H%M}_{self.local_end:%Y%m%dT%H%M}"

    def days(self) -> list[date]:
        """Every local day the period touches, in order."""
        out = []
        day = self.local_start.date()
        while day <= self.last_day:
            out.append(day)
            day += timedelta(days=1)
        return out

    def previous(self) -> Period:
        """The period of the same local length just before this one (DST-safe: a week stays a week)."""
        zone = self.zone
        local_start = self.local_start.replace(tzinfo=None)
        length = self.local_end.replace(tzinfo=None) - local_start
        start = (local_start - length).replace(tzinfo=zone).astimezone(UTC)
        return Period(start, self.start, self.timezone)


# ------------------------------------------------------------------------------------ dataclasses


@dataclass(frozen=True, slots=True)
class SentimentShare:
    """Sentiment counts of a set of mentions, with shares over the scored ones."""

    positive: int = 0
    neutral: int = 0
    negative: int = 0
    unscored: int = 0

    @property
    def scored(self) -> int:
        """Mentions that have scores."""
        return self.positive + self.neutral + self.negative

    @property
    def total(self) -> int:
        """All mentions, scored or not."""
        return self.scored + self.unscored

    def share(self, label: str) -> float | None:
        """Share (0–1) of ``label`` among scored mentions; None when nothing is scored."""
        if not self.scored:
            return None
        count: int = getattr(self, label)
        return count / self.scored

    def percent(self, label: str) -> int | None:
        """Whole percent of ``label`` among scored mentions, the three summing to 100; None when nothing is scored."""
        if not self.scored:
            return None
        counts = [getattr(self, name) for name in SENTIMENT_LABELS]
        return dict(zip(SENTIMENT_LABELS, largest_remainder(counts), strict=True))[label]

    @property
    def net(self) -> float | None:
        """Positive share − negative share (−1 … 1); None when nothing is scored."""
        if not self.scored:
            return None
        return (self.positive - self.negative) / self.scored


@dataclass(frozen=True, slots=True)
class SourceVolume:
    """Mentions from one source in the period and the previous one."""

    source: str
    count: int
    previous: int

    @property
    def label(self) -> str:
        """Display name of the source."""
        return source_label(self.source)

    @property
    def change_pct(self) -> float | None:
        """Change vs the previous period in percent (None when it had none)."""
        return change_pct(self.count, self.previous)


@dataclass(frozen=True, slots=True)
class DayPoint:
    """One local day of the trend."""

    day: date
    sentiment: SentimentShare

    @property
    def total(self) -> int:
        """Mentions that day."""
        return self.sentiment.total

    @property
    def net(self) -> float | None:
        """Net sentiment that day (None when nothing was scored)."""
        return self.sentiment.net


@dataclass(frozen=True, slots=True)
class PostRef:
    """One post as the digest shows it (text is untrusted: renderers escape it)."""

    mention_id: int
    source: str
    created_at: datetime
    text: str
    url: str | None = None
    author_handle: str | None = None
    author_name: str | None = None
    followers: int | None = None
    sentiment: str | None = None
    complaint: float | None = None
    rating: float | None = None
    rating_max: float | None = None

    @property
    def author(self) -> str:
        """``Name (@handle)``, whichever parts are known."""
        if self.author_name and self.author_handle:
            return f"{self.author_name} (@{self.author_handle})"
        if self.author_handle:
            return f"@{self.author_handle}"
        return self.author_name or "unknown author"


@dataclass(frozen=True, slots=True)
class Theme:
    """A term or phrase characteristic of the period's complaints, with example posts."""

    term: str
    count: int
    examples: tuple[PostRef, ...] = ()


@dataclass(frozen=True, slots=True)
class SpikeSummary:
    """A spike (crisis) that overlapped the period."""

    incident_id: int
    metric: str
    status: str
    started_at: datetime
    peak_at: datetime
    resolved_at: datetime | None
    peak_count: float
    expected: float
    level: int
    top_terms: tuple[str, ...] = ()

    @property
    def ratio(self) -> float | None:
        """Peak over expected volume (None when nothing was expected)."""
        return self.peak_count / self.expected if self.expected > 0 else None


@dataclass(frozen=True, slots=True)
class HandlingStats:
    """What the team did with the period's alerts, and how fast."""

    raised: int = 0
    sent: int = 0
    claimed: int = 0
    handled: int = 0
    not_relevant: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    claim_seconds: tuple[float, ...] = ()
    handle_seconds: tuple[float, ...] = ()

    @property
    def open(self) -> int:
        """Alerts neither handled nor marked not relevant."""
        return max(self.raised - self.handled - self.not_relevant, 0)

    @property
    def claim_median(self) -> float | None:
        """Median seconds from alert to claim."""
        return percentile(self.claim_seconds, 50)

    @property
    def claim_p90(self) -> float | None:
        """90th percentile seconds from alert to claim."""
        return percentile(self.claim_seconds, 90)

    @property
    def handle_median(self) -> float | None:
        """Median seconds from alert to handled / not relevant."""
        return percentile(self.handle_seconds, 50)

    @property
    def handle_p90(self) -> float | None:
        """90th percentile seconds from alert to handled / not relevant."""
        return percentile(self.handle_seconds, 90)


@dataclass(frozen=True, slots=True)
class CompetitorSummary:
    """A brand's headline numbers, for the side-by-side comparison."""

    brand: str
    volume: int
    previous_volume: int
    sentiment: SentimentShare

    @property
    def change_pct(self) -> float | None:
        """Volume change vs the previous period in percent."""
        return change_pct(self.volume, self.previous_volume)


@dataclass(frozen=True, slots=True)
class BrandDigest:
    """Everything the digest says about one brand in one period."""

    brand: str
    period: Period
    previous_period: Period
    volume: int
    previous_volume: int
    by_source: tuple[SourceVolume, ...]
    sentiment: SentimentShare
    previous_sentiment: SentimentShare
    trend: tuple[DayPoint, ...]
    complaints: int
    praise: int
    themes: tuple[Theme, ...]
    top_praise: tuple[PostRef, ...]
    top_complaints: tuple[PostRef, ...]
    spikes: tuple[SpikeSummary, ...]
    handling: HandlingStats
    competitors: tuple[CompetitorSummary, ...] = ()
    first_seen: datetime | None = None
    notes: tuple[str, ...] = ()

    @property
    def change_pct(self) -> float | None:
        """Volume change vs the previous period in percent (None when only this period has mentions)."""
        return change_pct(self.volume, self.previous_volume)

    @property
    def net_change(self) -> float | None:
        """Change of net sentiment vs the previous period, in points of share (−2 … 2)."""
        now, before = self.sentiment.net, self.previous_sentiment.net
        if now is None or before is None:
            return None
        return now - before

    @property
    def is_new(self) -> bool:
        """Whether the brand's first mention falls in this period (or it has none at all yet)."""
        return self.first_seen is None or self.period.start <= self.first_seen < self.period.end

    @property
    def empty(self) -> bool:
        """Whether nothing was said about the brand in the period."""
        return self.volume == 0


# ----------------------------------------------------------------------------------- queries


def _brand_rows(brand: str, start: datetime, end: datetime) -> Any:
    """The brand's own (non-copy, not self-authored) mentions created in [start, end)."""
    return (
        select(models.MentionBrand.mention_id)
        .join(models.Mention, models.Mention.id == models.MentionBrand.mention_id)
        .where(
            models.MentionBrand.brand == brand,
            models.MentionBrand.created_at >= start,
            models.MentionBrand.created_at < end,
            models.MentionBrand.from_brand.is_(False),
            models.Mention.duplicate_of_id.is_(None),
        )
    )


def _complaint_clause(t: Thresholds) -> ColumnElement[bool]:
    """SQL for "this mention is a complaint" (see the module docstring)."""
    # COALESCE everywhere: an unscored mention is "not a complaint", never NULL (NOT NULL is NULL).
    rating_share = cast(models.Mention.rating, Float) / func.nullif(models.Mention.rating_max, 0)
    return or_(
        func.coalesce(models.Score.complaint, 0.0) >= t.complaint_min,
        func.coalesce(models.Score.sentiment, "") == "negative",
        func.coalesce(rating_share, 1.0) <= t.review_complaint_max_rating,
    )


def _label(sentiment: str | None) -> str:
    if sentiment is None:
        return "unscored"
    return sentiment if sentiment in ("positive", "negative") else "neutral"


def _shares(labels: Iterable[str]) -> SentimentShare:
    counts = Counter(labels)
    return SentimentShare(counts["positive"], counts["neutral"], counts["negative"], counts["unscored"])


_POST_COLUMNS = (
    models.Mention.id,
    models.Mention.source,
    models.MentionBrand.created_at,
    models.Mention.title,
    models.Mention.text,
    models.Mention.url,
    models.Mention.author_handle,
    models.Mention.author_name,
    models.Mention.author_followers,
    models.Score.sentiment,
    models.Score.complaint,
    models.Mention.rating,
    models.Mention.rating_max,
)


def _full_text(title: str | None, text: str | None) -> str:
    """The post's text, led by its title when the text does not contain it (reviews, news)."""
    text = text or ""
    if title and title not in text:
        text = f"{title} — {text}" if text else title
    return text


def _post(row: Any) -> PostRef:
    return PostRef(
        mention_id=row.id,
        source=row.source,
        created_at=row.created_at,
        text=_full_text(row.title, row.text),
        url=row.url,
        author_handle=row.author_handle,
        author_name=row.author_name,
        followers=row.author_followers,
        sentiment=row.sentiment,
        complaint=row.complaint,
        rating=row.rating,
        rating_max=row.rating_max,
    )


def _posts_query(brand: str, start: datetime, end: datetime) -> Any:
    reach = func.coalesce(models.Mention.author_followers, 0)
    return (
        select(*_POST_COLUMNS)
        .join(models.MentionBrand, models.MentionBrand.mention_id == models.Mention.id)
        .outerjoin(models.Score, models.Score.mention_id == models.Mention.id)
        .where(models.Mention.id.in_(_brand_rows(brand, start, end)), models.MentionBrand.brand == brand)
        .order_by(reach.desc(), models.MentionBrand.created_at.desc(), models.Mention.id)
    )


def _volume(session: Session, brand: str, period: Period) -> tuple[int, dict[str, int], SentimentShare]:
    stmt = (
        select(models.Mention.source, models.Score.sentiment, func.count())
        .select_from(models.Mention)
        .outerjoin(models.Score, models.Score.mention_id == models.Mention.id)
        .where(models.Mention.id.in_(_brand_rows(brand, period.start, period.end)))
        .group_by(models.Mention.source, models.Score.sentiment)
    )
    by_source: Counter[str] = Counter()
    labels: Counter[str] = Counter()
    for source, sentiment, n in session.execute(stmt):
        by_source[source] += n
        labels[_label(sentiment)] += n
    return sum(by_source.values()), dict(by_source), _shares(labels.elements())


def _trend(session: Session, brand: str, period: Period) -> tuple[DayPoint, ...]:
    stmt = (
        select(models.MentionBrand.created_at, models.Score.sentiment)
        .outerjoin(models.Score, models.Score.mention_id == models.MentionBrand.mention_id)
        .where(
            models.MentionBrand.mention_id.in_(_brand_rows(brand, period.start, period.end)),
            models.MentionBrand.brand == brand,
        )
    )
    zone = period.zone
    per_day: dict[date, Counter[str]] = {day: Counter() for day in period.days()}
    for created_at, sentiment in session.execute(stmt):
        day = created_at.astimezone(zone).date()
        per_day.setdefault(day, Counter())[_label(sentiment)] += 1
    return tuple(DayPoint(day, _shares(c.elements())) for day, c in sorted(per_day.items()))


def _themes(
    session: Session, brand: str, period: Period, t: Thresholds, exclude: Sequence[str]
) -> tuple[list[PostRef], tuple[Theme, ...], int]:
    """Most-reached complaints, complaint themes with examples, and the number of complaints."""
    complaint = _complaint_clause(t)
    rows = session.execute(
        _posts_query(brand, period.start, period.end).where(complaint).limit(MAX_COMPLAINT_TEXTS)
    )
    posts = [_post(r) for r in rows]
    count = session.execute(
        select(func.count())
        .select_from(models.Mention)
        .outerjoin(models.Score, models.Score.mention_id == models.Mention.id)
        .where(models.Mention.id.in_(_brand_rows(brand, period.start, period.end)), complaint)
    ).scalar_one()
    if not posts:
        return [], (), count
    background_start = period.start - timedelta(days=BACKGROUND_DAYS)
    background = list(
        session.execute(
            select(models.Mention.text)
            .outerjoin(models.Score, models.Score.mention_id == models.Mention.id)
            .where(models.Mention.id.in_(_brand_rows(brand, background_start, period.end)), ~complaint)
            .order_by(models.Mention.created_at.desc())
            .limit(MAX_BACKGROUND_TEXTS)
        ).scalars()
    )
    texts = [p.text for p in posts]
    terms = top_terms(texts, background, limit=THEMES, exclude=exclude)
    tokens = [_terms_of(text, exclude) for text in texts]
    themes = []
    for term in terms:
        matching = [post for post, have in zip(posts, tokens, strict=True) if term in have]
        themes.append(Theme(term, len(matching), tuple(matching[:THEME_EXAMPLES])))
    if count > len(posts) and themes:
        # The terms were chosen on the most-reached complaints only: count them over all of them.
        totals = _theme_counts(session, brand, period, complaint, terms, exclude)
        themes = [Theme(theme.term, totals[theme.term], theme.examples) for theme in themes]
    # Most frequent first; sorted() is stable, so ties keep top_terms' order (the most distinctive).
    themes = sorted(themes, key=lambda theme: -theme.count)
    return posts[:TOP_POSTS], tuple(themes), count


def _theme_counts(
    session: Session,
    brand: str,
    period: Period,
    complaint: ColumnElement[bool],
    terms: Sequence[str],
    exclude: Sequence[str],
) -> Counter[str]:
    """How many of the period's complaints contain each of ``terms``: one streamed pass over their texts."""
    wanted = set(terms)
    stmt = (
        select(models.Mention.title, models.Mention.text)
        .outerjoin(models.Score, models.Score.mention_id == models.Mention.id)
        .where(models.Mention.id.in_(_brand_rows(brand, period.start, period.end)), complaint)
        .execution_options(yield_per=THEME_COUNT_BATCH)
    )
    counts: Counter[str] = Counter()
    for title, text in session.execute(stmt):
        counts.update(wanted & _terms_of(_full_text(title, text), exclude))
    return counts


def _terms_of(text: str, exclude: Sequence[str]) -> set[str]:
    tokens = words(text, exclude=exclude)
    return set(tokens) | phrases(tokens)


def _top_praise(session: Session, brand: str, period: Period, t: Thresholds) -> tuple[list[PostRef], int]:
    positive = and_(models.Score.sentiment == "positive", ~_complaint_clause(t))
    rows = session.execute(_posts_query(brand, period.start, period.end).where(positive).limit(TOP_POSTS))
    count = session.execute(
        select(func.count())
        .select_from(models.Mention)
        .join(models.Score, models.Score.mention_id == models.Mention.id)
        .where(models.Mention.id.in_(_brand_rows(brand, period.start, period.end)), positive)
    ).scalar_one()
    return [_post(r) for r in rows], count


def _spikes(session: Session, brand: str, period: Period) -> tuple[SpikeSummary, ...]:
    incidents = session.execute(
        select(models.SpikeIncident)
        .where(
            models.SpikeIncident.brand == brand,
            models.SpikeIncident.started_at < period.end,
            or_(models.SpikeIncident.resolved_at.is_(None), models.SpikeIncident.resolved_at >= period.start),
        )
        .order_by(models.SpikeIncident.started_at)
    ).scalars()
    out = []
    for inc in incidents:
        terms: tuple[str, ...] = ()
        details = session.execute(
            select(models.Alert.details)
            .where(models.Alert.incident_id == inc.id)
            .order_by(models.Alert.created_at.desc(), models.Alert.id.desc())
        ).scalars()
        for detail in details:
            found = (detail or {}).get("top_terms") or []
            if found:
                terms = tuple(str(term) for term in found)
                break
        out.append(
            SpikeSummary(
                incident_id=inc.id,
                metric=inc.metric,
                status=inc.status,
                started_at=inc.started_at,
                peak_at=inc.peak_at,
                resolved_at=inc.resolved_at,
                peak_count=inc.peak_count,
                expected=inc.expected,
                level=inc.level,
                top_terms=terms,
            )
        )
    return tuple(out)


def _handling(session: Session, brand: str, period: Period) -> HandlingStats:
    rows = session.execute(
        select(
            models.Alert.kind,
            models.Alert.status,
            models.Alert.created_at,
            models.Alert.sent_at,
            models.Alert.claimed_at,
            models.Alert.handled_at,
            models.Alert.dismissed_at,
        ).where(
            models.Alert.brand == brand,
            models.Alert.kind.in_(("praise", "complaint", "spike")),
            models.Alert.event.in_(("mention", "raise")),
            models.Alert.status != "suppressed",
            models.Alert.created_at >= period.start,
            models.Alert.created_at < period.end,
        )
    ).all()
    by_kind: Counter[str] = Counter()
    sent = claimed = handled = dismissed = 0
    claim: list[float] = []
    handle: list[float] = []
    for kind, _status, created_at, sent_at, claimed_at, handled_at, dismissed_at in rows:
        by_kind[kind] += 1
        base = sent_at or created_at
        sent += sent_at is not None
        if claimed_at is not None:
            claimed += 1
            claim.append(max((claimed_at - base).total_seconds(), 0.0))
        if handled_at is not None:
            handled += 1
        elif dismissed_at is not None:
            dismissed += 1
        done = min((d for d in (handled_at, dismissed_at) if d is not None), default=None)
        if done is not None:
            handle.append(max((done - base).total_seconds(), 0.0))
    return HandlingStats(
        raised=len(rows),
        sent=sent,
        claimed=claimed,
        handled=handled,
        not_relevant=dismissed,
        by_kind=dict(by_kind),
        claim_seconds=tuple(claim),
        handle_seconds=tuple(handle),
    )


def _first_seen(session: Session, brand: str) -> datetime | None:
    return session.execute(
        select(func.min(models.MentionBrand.created_at)).where(models.MentionBrand.brand == brand)
    ).scalar_one_or_none()


def _exclusions(settings: Settings, brand: str) -> list[str]:
    """Words that would dominate every theme: the brand's name, handles and keywords."""
    names = [brand]
    configured = settings.brand(brand)
    if configured is not None:
        names.extend(configured.handles)
        names.extend(configured.keywords)
    return names


def build_digest(db: Database, settings: Settings, brand: str, start: datetime, end: datetime) -> BrandDigest:
    """The digest of ``brand`` for [start, end) (aware datetimes), compared with the period before."""
    period = Period(start.astimezone(UTC), end.astimezone(UTC), settings.digest.timezone)
    previous = period.previous()
    t = settings.thresholds_for(brand)
    configured = settings.brand(brand)
    with db.session() as session:
        volume, by_source, sentiment = _volume(session, brand, period)
        prev_volume, prev_by_source, prev_sentiment = _volume(session, brand, previous)
        trend = _trend(session, brand, period)
        top_complaints, themes, complaints = _themes(session, brand, period, t, _exclusions(settings, brand))
        top_praise, praise = _top_praise(session, brand, period, t)
        spikes = _spikes(session, brand, period)
        handling = _handling(session, brand, period)
        first_seen = _first_seen(session, brand)
        competitors = []
        for other in configured.compare_with if configured else ():
            c_volume, _, c_sentiment = _volume(session, other, period)
            c_prev, _, _ = _volume(session, other, previous)
            competitors.append(CompetitorSummary(other, c_volume, c_prev, c_sentiment))
    sources = sorted(set(by_source) | set(prev_by_source), key=lambda s: (-by_source.get(s, 0), s))
    notes = []
    if first_seen is None:
        notes.append(f"No mentions of {brand} have been stored yet.")
    elif period.start <= first_seen < period.end:
        notes.append(
            f"{brand} is new: first mention on {first_seen.astimezone(period.zone):%Y-%m-%d}, "
            "so there is no previous period to compare with."
        )
    if volume == 0 and first_seen is not None:
        notes.append("No mentions in this period.")
    if sentiment.unscored:
        notes.append(f"{sentiment.unscored} of {volume} mentions have no scores yet; shares exclude them.")
    return BrandDigest(
        brand=brand,
        period=period,
        previous_period=previous,
        volume=volume,
        previous_volume=prev_volume,
        by_source=tuple(SourceVolume(s, by_source.get(s, 0), prev_by_source.get(s, 0)) for s in sources),
        sentiment=sentiment,
        previous_sentiment=prev_sentiment,
        trend=trend,
        complaints=complaints,
        praise=praise,
        themes=themes,
        top_praise=tuple(top_praise),
        top_complaints=tuple(top_complaints),
        spikes=spikes,
        handling=handling,
        competitors=tuple(competitors),
        first_seen=first_seen,
        notes=tuple(notes),
    )


def build_digests(
    db: Database, settings: Settings, period: Period, brands: Sequence[str] | None = None
) -> list[BrandDigest]:
    """Digests of ``brands`` (default: every brand that is not only a competitor) for ``period``."""
    names = list(brands) if brands is not None else [b.name for b in settings.brands if not b.competitor]
    return [build_digest(db, settings, name, period.start, period.end) for name in names]
