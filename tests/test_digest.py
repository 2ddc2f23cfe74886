"""Digest content computed on a hand-built database: every number below is worked out by hand.

The builders here (:class:`Seeder`, :func:`seeded`, :data:`WEEK`) are shared with the other digest tests.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerts.digest import (
    BrandDigest,
    Period,
    SentimentShare,
    build_digest,
    build_digests,
    change_pct,
    format_change,
    largest_remainder,
    percentile,
)
from alerts.terms import top_terms
from config.loader import parse_config
from config.settings import Settings
from monitor import models
from monitor.db import Database
from monitor.migrate import upgrade

AMS = ZoneInfo("Europe/Amsterdam")
#: ISO week 18 of 2024: Monday 29 April – Sunday 5 May, summer time (UTC+2).
WEEK = Period.from_dates(date(2024, 4, 29), date(2024, 5, 5), "Europe/Amsterdam")

CONFIG = """
brands:
  - name: Acme
    handles: ["@acme_help"]
    keywords: ["acme"]
    compare_with: [Rival]
  - name: Rival
    keywords: ["rival"]
    competitor: true
  - name: Newbie
    keywords: ["newbie"]
  - name: Unscored
    keywords: ["unscored"]
  - name: Ghost
    keywords: ["ghost"]
digest:
  timezone: Europe/Amsterdam
"""


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A local Amsterdam wall time as aware UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=AMS).astimezone(UTC)


def mon(offset: int) -> date:
    """The day ``offset`` days after Monday 29 April 2024 (negative: the week before)."""
    return date(2024, 4, 29) + timedelta(days=offset)


@dataclass
class Seeder:
    """Inserts mentions, scores, alerts and incidents with known values."""

    db: Database
    first_id: int = 1

    def __post_init__(self) -> None:
        self._ids = itertools.count(self.first_id)

    def mention(
        self,
        brand: str,
        when: datetime,
        text: str,
        *,
        sentiment: str | None = "neutral",
        complaint: float = 0.0,
        source: str = "x",
        followers: int | None = 10,
        url: str | None = "auto",
        rating: float | None = None,
        rating_max: float | None = None,
        duplicate_of: int | None = None,
        from_brand: bool = False,
        author: str | None = None,
        title: str | None = None,
    ) -> int:
        n = next(self._ids)
        with self.db.session() as session:
            m = models.Mention(
                source=source,
                external_id=f"e{n}",
                url=f"https://example.org/{source}/{n}" if url == "auto" else url,
                author_handle=author or f"user{n}",
                author_name=f"User {n}",
                author_followers=followers,
                title=title,
                text=text,
                created_at=when,
                ingested_at=when,
                rating=rating,
                rating_max=rating_max,
                duplicate_of_id=duplicate_of,
                content_hash=hashlib.sha1(f"{n}{text}".encode()).hexdigest(),
                classify_state="scored" if sentiment else "pending",
            )
            session.add(m)
            session.flush()
            session.add(
                models.MentionBrand(
                    mention_id=m.id,
                    brand=brand,
                    created_at=when,
                    from_brand=from_brand,
                    competitor=brand == "Rival",
                )
            )
            if sentiment is not None:
                p = {"positive": (0.05, 0.1, 0.85), "neutral": (0.1, 0.8, 0.1), "negative": (0.85, 0.1, 0.05)}
                neg, neu, pos = p[sentiment]
                session.add(
                    models.Score(
                        mention_id=m.id,
                        sentiment=sentiment,
                        p_negative=neg,
                        p_neutral=neu,
                        p_positive=pos,
                        complaint=complaint,
                        model="test",
                        scored_at=when,
                    )
                )
            return m.id

    def alert(
        self,
        brand: str,
        kind: str,
        created: datetime,
        *,
        sent: float | None = 0,
        claimed: float | None = None,
        handled: float | None = None,
        dismissed: float | None = None,
        event: str = "mention",
        status: str = "sent",
        incident_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """An alert; ``sent``/``claimed``/... are minutes after creation (claimed etc. after sent_at)."""
        n = next(self._ids)
        sent_at = created + timedelta(minutes=sent) if sent is not None else None
        base = sent_at or created

        def after(minutes: float | None) -> datetime | None:
            return base + timedelta(minutes=minutes) if minutes is not None else None

        with self.db.session() as session:
            session.add(
                models.Alert(
                    key=f"k{n}",
                    kind=kind,
                    brand=brand,
                    channel="#webcare",
                    group_key="g",
                    labels={},
                    title="t",
                    reason="r",
                    event=event,
                    details=details or {},
                    status=status,
                    created_at=created,
                    next_attempt_at=created,
                    attempts=0,
                    sent_at=sent_at,
                    claimed_at=after(claimed),
                    handled_at=after(handled),
                    dismissed_at=after(dismissed),
                    incident_id=incident_id,
                )
            )

    def incident(
        self,
        brand: str,
        started: datetime,
        peak: datetime,
        resolved: datetime | None,
        *,
        peak_count: float = 12,
        expected: float = 1.5,
        level: int = 2,
    ) -> int:
        with self.db.session() as session:
            inc = models.SpikeIncident(
                brand=brand,
                metric="negative",
                status="resolved" if resolved else "open",
                started_at=started,
                updated_at=resolved or peak,
                resolved_at=resolved,
                peak_at=peak,
                peak_count=peak_count,
                last_count=peak_count,
                expected=expected,
                level=level,
                updates=1,
            )
            session.add(inc)
            session.flush()
            return inc.id


@dataclass
class Seeded:
    """The seeded database and what was planted in it."""

    db: Database
    settings: Settings
    ids: dict[str, int]


def seed_week(s: Seeder) -> dict[str, int]:
    """Week 18 of 2024 for Acme (and its competitor, a new brand and an unscored one)."""
    ids: dict[str, int] = {}
    m = s.mention
    # -- Acme, the period: 10 counted mentions -------------------------------------------------
    ids["monday_0030"] = m(
        "Acme",
        local(mon(0), 0, 30),
        "Lovely acme app update, super fast delivery",
        sentiment="positive",
        followers=1200,
    )
    m(
        "Acme",
        local(mon(0), 10),
        "Great service from acme today thanks team",
        sentiment="positive",
        followers=50,
    )
    m("Acme", local(mon(0), 11), "Does anyone know acme opening hours", source="reddit")
    ids["c4"] = m(
        "Acme",
        local(mon(0), 12),
        "Still waiting for my refund from acme, refund delayed again",
        sentiment="negative",
        complaint=0.9,
        followers=300,
    )
    ids["c5"] = m(
        "Acme",
        local(mon(1), 9),
        "acme where is my refund? refund delayed for weeks now",
        sentiment="negative",
        complaint=0.85,
        followers=20000,
    )
    ids["c6"] = m(
        "Acme",
        local(mon(1), 14),
        "Refund delayed, nobody answers the phone",
        sentiment="negative",
        complaint=0.7,
        source="trustpilot",
        followers=None,
        rating=1,
        rating_max=5,
    )
    ids["c7"] = m(
        "Acme",
        local(mon(2), 8),
        "Mijn terugbetaling is nog steeds niet binnen, refund delayed",
        sentiment="negative",
        complaint=0.8,
        source="reddit",
        followers=5,
    )
    ids["praise"] = m(
        "Acme",
        local(mon(2), 19),
        "acme support fixed my issue in minutes",
        sentiment="positive",
        followers=90000,
    )
    m("Acme", local(mon(3), 10), "acme something not scored yet", sentiment=None)
    m("Acme", local(mon(6), 23, 30), "acme weekend sale starts tomorrow", followers=100)
    # -- Acme, not counted ---------------------------------------------------------------------
    m(
        "Acme",
        local(mon(1), 9, 5),
        "acme where is my refund? refund delayed for weeks now",
        sentiment="negative",
        complaint=0.85,
        duplicate_of=ids["c5"],
        followers=50000,
    )  # a retweet: linked, not counted
    m(
        "Acme",
        local(mon(1), 10),
        "We are sorry to hear that, DM us",
        author="acme_help",
        from_brand=True,
        followers=99999,
    )
    m("Acme", local(mon(7), 0, 30), "acme next week already", sentiment="negative", complaint=0.9)
    # -- Acme, the week before: 5 mentions, 3 positive, 2 neutral --------------------------------
    for i, text in enumerate(["acme app works great", "acme great delivery", "acme nice staff"]):
        m("Acme", local(mon(-7 + i), 12), text, sentiment="positive")
    m("Acme", local(mon(-3), 12), "acme opening hours question")
    m("Acme", local(mon(-2), 12), "acme shop visit", source="reddit")
    # -- competitor: 3 this week (2 negative, 1 positive), 1 before --------------------------------
    m("Rival", local(mon(1), 12), "rival is slow", sentiment="negative", complaint=0.7)
    m("Rival", local(mon(2), 12), "rival lost my parcel", sentiment="negative", complaint=0.7)
    m("Rival", local(mon(3), 12), "rival is fine", sentiment="positive")
    m("Rival", local(mon(-3), 12), "rival earlier")
    # -- a brand seen for the first time on Friday ------------------------------------------------
    m("Newbie", local(mon(4), 15), "newbie shop just opened and it is lovely", sentiment="positive")
    # -- a brand whose mentions have no scores yet -----------------------------------------------
    m("Unscored", local(mon(1), 15), "unscored brand post one", sentiment=None)
    m("Unscored", local(mon(2), 15), "unscored brand post two", sentiment=None)

    # -- spikes ------------------------------------------------------------------------------------
    spike = s.incident("Acme", local(mon(1), 8), local(mon(1), 9, 5), local(mon(1), 12))
    s.alert(
        "Acme",
        "spike",
        local(mon(1), 8),
        event="raise",
        incident_id=spike,
        claimed=2,
        details={"top_terms": ["refund", "delayed"]},
    )
    s.alert(
        "Acme",
        "spike",
        local(mon(1), 9, 5),
        event="escalate",
        incident_id=spike,
        claimed=1,
        details={"top_terms": ["refund delayed", "phone"]},
    )
    ids["spike"] = spike
    ids["open_spike"] = s.incident(
        "Acme", local(mon(-9), 8), local(mon(-9), 9), None, peak_count=30, expected=3
    )
    s.incident("Acme", local(mon(-5), 8), local(mon(-5), 9), local(mon(-4), 9))  # over before the period

    # -- team handling -----------------------------------------------------------------------------
    t = local(mon(1), 10)
    s.alert("Acme", "complaint", t, sent=1, claimed=5, handled=20)
    s.alert("Acme", "complaint", t, claimed=10, handled=60)
    s.alert("Acme", "praise", t, claimed=15, dismissed=16)
    s.alert("Acme", "praise", t, claimed=20)
    s.alert("Acme", "complaint", t, sent=None, status="pending", claimed=30, handled=120)
    s.alert("Acme", "complaint", t)
    s.alert("Acme", "complaint", t, status="suppressed", claimed=1)  # never shown: not counted
    s.alert("Acme", "ops", t, claimed=1)
    s.alert("Acme", "complaint", local(mon(-2), 10), claimed=1)  # the week before
    s.alert("Rival", "complaint", t, claimed=1)
    return ids


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """One database with :func:`seed_week` planted (module scope: the tests only read)."""
    path = tmp_path_factory.mktemp("digest") / "repmon.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    ids = seed_week(Seeder(db))
    yield Seeded(db, parse_config(CONFIG).settings, ids)
    db.dispose()


def acme(seeded: Seeded) -> BrandDigest:
    return build_digest(seeded.db, seeded.settings, "Acme", WEEK.start, WEEK.end)


# ------------------------------------------------------------------------------------------- tests


def test_period_is_the_local_iso_week() -> None:
    assert WEEK.start == datetime(2024, 4, 28, 22, 0, tzinfo=UTC)
    assert WEEK.end == datetime(2024, 5, 5, 22, 0, tzinfo=UTC)
    assert WEEK.slug == "2024-W18"
    assert WEEK.label == "Week 18, 2024 (29 Apr – 5 May)"
    assert len(WEEK.days()) == 7


def test_last_full_week_and_previous_across_dst() -> None:
    # Monday 1 April 2024, 09:00 local: the last full week is 25–31 March, which has the DST switch.
    week = Period.last_full_week(local(date(2024, 4, 1), 9), "Europe/Amsterdam")
    assert (week.local_start.date(), week.last_day) == (date(2024, 3, 25), date(2024, 3, 31))
    assert week.end - week.start == timedelta(hours=167)  # one hour lost on 31 March
    before = week.previous()
    assert before.local_start.date() == date(2024, 3, 18) and before.local_start.hour == 0
    assert before.end == week.start


def test_volume_change_and_sources(seeded: Seeded) -> None:
    d = acme(seeded)
    assert d.volume == 10  # the copy, the brand's own reply and next Monday's post are not counted
    assert d.previous_volume == 5
    assert d.change_pct == pytest.approx(100.0)
    by_source = {v.source: (v.count, v.previous, v.change_pct) for v in d.by_source}
    assert by_source == {
        "x": (7, 4, pytest.approx(75.0)),
        "reddit": (2, 1, pytest.approx(100.0)),
        "trustpilot": (1, 0, None),
    }
    assert [v.source for v in d.by_source] == ["x", "reddit", "trustpilot"]


def test_sentiment_shares_and_net(seeded: Seeded) -> None:
    d = acme(seeded)
    s = d.sentiment
    assert (s.positive, s.neutral, s.negative, s.unscored) == (3, 2, 4, 1)
    assert s.share("negative") == pytest.approx(4 / 9)
    assert s.net == pytest.approx((3 - 4) / 9)
    assert d.previous_sentiment.net == pytest.approx(3 / 5)
    assert d.net_change == pytest.approx((3 - 4) / 9 - 3 / 5)
    assert d.complaints == 4 and d.praise == 3
    assert any("1 of 10 mentions have no scores" in n for n in d.notes)


def test_trend_per_local_day(seeded: Seeded) -> None:
    d = acme(seeded)
    assert [p.day for p in d.trend] == WEEK.days()
    assert [p.total for p in d.trend] == [4, 2, 2, 1, 0, 0, 1]  # Monday 00:30 local is Sunday 22:30 UTC
    assert [p.net for p in d.trend] == [pytest.approx(0.25), -1.0, 0.0, None, None, None, 0.0]


def test_top_complaint_theme_is_the_planted_phrase(seeded: Seeded) -> None:
    d = acme(seeded)
    assert d.themes, "no themes found"
    first = d.themes[0]
    assert first.term == "refund delayed"
    assert first.count == 4
    assert [p.mention_id for p in first.examples] == [seeded.ids[k] for k in ("c5", "c4", "c7")]
    everything = {t.term for t in d.themes}
    assert not everything & {"acme", "mijn", "nog", "steeds", "niet", "the", "where"}


def test_most_reached_praise_and_complaints(seeded: Seeded) -> None:
    d = acme(seeded)
    assert [p.mention_id for p in d.top_complaints] == [seeded.ids[k] for k in ("c5", "c4", "c7", "c6")]
    assert d.top_praise[0].mention_id == seeded.ids["praise"]
    assert d.top_praise[0].followers == 90000
    assert d.top_praise[0].url == f"https://example.org/x/{seeded.ids['praise']}"
    assert len(d.top_praise) == 3


def test_spikes_of_the_period(seeded: Seeded) -> None:
    d = acme(seeded)
    assert [x.incident_id for x in d.spikes] == [seeded.ids["open_spike"], seeded.ids["spike"]]
    spike = d.spikes[1]
    assert spike.started_at == local(mon(1), 8) and spike.resolved_at == local(mon(1), 12)
    assert spike.peak_at == local(mon(1), 9, 5) and spike.peak_count == 12 and spike.level == 2
    assert spike.top_terms == ("refund delayed", "phone")  # from the latest alert's details
    assert d.spikes[0].resolved_at is None and d.spikes[0].status == "open"


def test_team_handling_counts_and_times(seeded: Seeded) -> None:
    h = acme(seeded).handling
    assert (
        h.raised == 7
    )  # 5 complaints/praise + 1 spike raise + 1 pending; not escalations, ops or suppressed
    assert h.by_kind == {"complaint": 4, "praise": 2, "spike": 1}
    assert (h.sent, h.claimed, h.handled, h.not_relevant, h.open) == (6, 6, 3, 1, 3)
    assert h.claim_median == pytest.approx(12.5 * 60)  # claims after 2, 5, 10, 15, 20, 30 minutes
    assert h.claim_p90 == pytest.approx(25 * 60)
    assert h.handle_median == pytest.approx(40 * 60)  # handled after 16, 20, 60, 120 minutes
    assert h.handle_p90 == pytest.approx(102 * 60)


def test_competitor_side_by_side(seeded: Seeded) -> None:
    [rival] = acme(seeded).competitors
    assert (rival.brand, rival.volume, rival.previous_volume) == ("Rival", 3, 1)
    assert rival.change_pct == pytest.approx(200.0)
    assert rival.sentiment.net == pytest.approx(-1 / 3)


def test_empty_period_is_a_sensible_digest(seeded: Seeded) -> None:
    empty = Period.from_dates(date(2023, 1, 2), date(2023, 1, 8))
    d = build_digest(seeded.db, seeded.settings, "Acme", empty.start, empty.end)
    assert d.volume == 0 and d.empty and d.change_pct == 0.0  # 0 vs 0: no change, not "new"
    assert format_change(d.change_pct) == "±0%"
    assert d.sentiment.net is None and d.sentiment.share("positive") is None
    assert d.themes == () and d.top_praise == () and d.spikes == () and d.handling.raised == 0
    assert [p.total for p in d.trend] == [0] * 7
    assert d.handling.claim_median is None
    assert "No mentions in this period." in d.notes


def test_brand_new_brand(seeded: Seeded) -> None:
    d = build_digest(seeded.db, seeded.settings, "Newbie", WEEK.start, WEEK.end)
    assert d.is_new and d.volume == 1 and d.previous_volume == 0 and d.change_pct is None
    assert d.first_seen == local(mon(4), 15)
    assert any("is new" in n for n in d.notes)
    ghost = build_digest(seeded.db, seeded.settings, "Ghost", WEEK.start, WEEK.end)
    assert ghost.is_new and ghost.volume == 0 and ghost.first_seen is None
    assert any("No mentions of Ghost" in n for n in ghost.notes)


def test_period_before_the_first_mention_is_not_new(seeded: Seeded) -> None:
    before = WEEK.previous()
    d = build_digest(seeded.db, seeded.settings, "Newbie", before.start, before.end)
    assert d.first_seen == local(mon(4), 15) and not d.is_new
    assert not any("is new" in n for n in d.notes)
    assert d.notes == ("No mentions in this period.",)
    assert d.change_pct == 0.0 and format_change(d.change_pct) == "±0%"


def test_missing_scores_do_not_distort_shares(seeded: Seeded) -> None:
    d = build_digest(seeded.db, seeded.settings, "Unscored", WEEK.start, WEEK.end)
    assert d.volume == 2 and d.sentiment.unscored == 2 and d.sentiment.scored == 0
    assert d.sentiment.net is None and d.complaints == 0 and d.praise == 0
    assert [p.net for p in d.trend] == [None] * 7


def test_build_digests_skips_competitors(seeded: Seeded) -> None:
    names = [d.brand for d in build_digests(seeded.db, seeded.settings, WEEK)]
    assert names == ["Acme", "Newbie", "Unscored", "Ghost"]


def test_change_and_percentile_helpers() -> None:
    assert change_pct(15, 10) == pytest.approx(50.0)
    assert change_pct(3, 0) is None
    assert change_pct(0, 0) == 0.0
    assert percentile([], 50) is None
    assert percentile([7.0], 90) == 7.0
    assert percentile([1, 2, 3, 4], 50) == 2.5


def test_format_change_never_rounds_to_all_gone_or_unchanged() -> None:
    assert format_change(change_pct(1, 402)) == "-99.8%"  # not "-100%": one mention is left
    assert format_change(change_pct(1, 100_000)) == "-99.9%"
    assert format_change(change_pct(0, 402)) == "-100%"
    assert format_change(change_pct(1001, 1000)) == "+0.1%"
    assert format_change(change_pct(1000, 1003)) == "-0.3%"
    assert format_change(change_pct(100_001, 100_000)) == "+0.1%"
    assert format_change(change_pct(7, 7)) == "±0%" and format_change(change_pct(0, 0)) == "±0%"
    assert format_change(change_pct(15, 10)) == "+50%" and format_change(change_pct(1, 3)) == "-67%"
    assert format_change(change_pct(3, 0)) == "new"


def test_sentiment_percents_sum_to_100() -> None:
    labels = ("positive", "neutral", "negative")
    s = SentimentShare(positive=37, neutral=31, negative=19, unscored=5)
    assert [round((s.share(x) or 0) * 100) for x in labels] == [43, 36, 22]  # rounded apart: 101%
    assert [s.percent(x) for x in labels] == [42, 36, 22]
    acme = SentimentShare(positive=3, neutral=2, negative=4, unscored=1)  # rounded apart: 33 + 22 + 44
    assert [acme.percent(x) for x in labels] == [33, 22, 45]
    assert SentimentShare(unscored=3).percent("positive") is None
    for counts in itertools.product(range(12), repeat=3):
        if sum(counts):
            assert sum(SentimentShare(*counts).percent(x) or 0 for x in labels) == 100, counts
    assert largest_remainder([1, 1, 1]) == [34, 33, 33] and largest_remainder([0, 0]) == [0, 0]


def test_top_terms_handles_dutch_and_english_stop_words() -> None:
    complaints = [
        "De trein is weer vertraagd en er is geen informatie",
        "Trein vertraagd, geen informatie op het perron",
        "Why is the train delayed again, no information at all",
        "train delayed and no information from them",
    ]
    background = ["Fijne reis gehad met de trein", "nice trip on the train today"] * 5
    terms = top_terms(complaints, background, limit=4)
    assert "vertraagd" in terms or "trein vertraagd" in terms
    assert any("information" in t or "informatie" in t for t in terms)
    assert not set(" ".join(terms).split()) & {"de", "het", "is", "en", "er", "geen", "the", "and", "why"}


def test_digest_with_real_settings_file(tmp_path: Path) -> None:
    # A database that has never seen a mention still gives a digest (first-run daemon).
    db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    upgrade(db)
    d = build_digest(db, parse_config(CONFIG).settings, "Acme", WEEK.start, WEEK.end)
    assert d.volume == 0 and d.competitors[0].volume == 0
    db.dispose()


def test_the_same_numbers_on_every_backend(db_url: str) -> None:
    db = Database(db_url)
    upgrade(db)
    ids = seed_week(Seeder(db))
    d = build_digest(db, parse_config(CONFIG).settings, "Acme", WEEK.start, WEEK.end)
    assert (d.volume, d.previous_volume, d.complaints, d.praise) == (10, 5, 4, 3)
    assert [p.total for p in d.trend] == [4, 2, 2, 1, 0, 0, 1]
    assert d.themes[0].term == "refund delayed" and d.top_praise[0].mention_id == ids["praise"]
    assert d.handling.claim_median == pytest.approx(12.5 * 60) and d.handling.raised == 7
    assert [x.top_terms for x in d.spikes][1] == ("refund delayed", "phone")
    db.dispose()


def test_theme_counts_cover_every_complaint_not_only_the_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Themes are chosen on the most-reached complaints (at most MAX_COMPLAINT_TEXTS of them) but
    # their counts are over all of the period's complaints, and they are listed by count.
    monkeypatch.setattr("alerts.digest.MAX_COMPLAINT_TEXTS", 6)
    db = Database(f"sqlite:///{tmp_path / 'repmon.db'}")
    upgrade(db)
    s = Seeder(db)
    t = local(mon(1), 12)
    for i in range(4):  # the sample: 4 × "late train", 2 × "broken app", all more reached
        s.mention("Acme", t, "late train", sentiment="negative", complaint=0.9, followers=1000 + i)
    for i in range(2):
        s.mention("Acme", t, "broken app", sentiment="negative", complaint=0.9, followers=900 + i)
    for _ in range(9):  # outside the sample
        s.mention("Acme", t, "broken app", sentiment="negative", complaint=0.9, followers=1)
    s.mention(
        "Acme", t, "since the update", title="Broken app", sentiment="negative", complaint=0.9, followers=1
    )
    # Not complaints of Acme in the period: never counted.
    s.mention("Acme", t, "broken app fixed, great", sentiment="positive", followers=1)
    s.mention("Rival", t, "broken app", sentiment="negative", complaint=0.9, followers=1)
    s.mention("Acme", local(mon(-3), 12), "broken app", sentiment="negative", complaint=0.9, followers=1)
    try:
        d = build_digest(db, parse_config(CONFIG).settings, "Acme", WEEK.start, WEEK.end)
    finally:
        db.dispose()
    assert d.complaints == 16
    assert [(theme.term, theme.count) for theme in d.themes] == [("broken app", 12), ("late train", 4)]
    # Examples still come from the most-reached complaints (those read to choose the themes).
    assert [p.followers for p in d.themes[0].examples] == [901, 900]


def test_themes_are_listed_by_count(tmp_path: Path) -> None:
    # top_terms ranks the phrase first (phrases weigh 1.3×); the digest lists the larger count first.
    db = Database(f"sqlite:///{tmp_path / 'repmon.db'}")
    upgrade(db)
    s = Seeder(db)
    for text, n in (("late train", 6), ("refund", 7)):
        for _ in range(n):
            s.mention("Acme", local(mon(1), 12), text, sentiment="negative", complaint=0.9)
    try:
        d = build_digest(db, parse_config(CONFIG).settings, "Acme", WEEK.start, WEEK.end)
    finally:
        db.dispose()
    assert top_terms(["late train"] * 6 + ["refund"] * 7, limit=2) == ["late train", "refund"]
    assert [(theme.term, theme.count) for theme in d.themes] == [("refund", 7), ("late train", 6)]
