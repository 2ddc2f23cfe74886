"""Review sources: App Store and Kiyoh replayed from real answers; Trustpilot and Google Play from
realistic hand-made answers (no recordings exist); all served from a local HTTP server."""

from __future__ import annotations

import calendar
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import feedparser
import pytest
from sqlalchemy import select

from monitor import models
from sources.appstore import AppStoreOptions, AppStoreSource
from sources.base import AuthError, Mention, SourceError, TransientError
from sources.googleplay import GooglePlayOptions, GooglePlaySource
from sources.kiyoh import KiyohOptions, KiyohSource
from sources.trustpilot import TrustpilotOptions, TrustpilotSource
from sources.watermark import stream_prefix
from tests.fixtures_util import fixture_params
from tests.pipeline_util import config_text, load, make_runtime, write_jsonl
from tests.replay_server import Reply, Request, Script, make_ctx

KIYOH_HASH = "kiyoh-hash-0123456789abcdef"
TP_KEY = "trustpilot-key-0123456789"

pytest_plugins = ["tests.replay_fixtures"]


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


# --- App Store ---------------------------------------------------------------------------------


def _appstore_expected(path: Path) -> list[dict[str, Any]]:
    """Reviews in a recorded feed, read independently (feedparser for Atom, json for JSON)."""
    body = path.read_bytes()
    out = []
    if path.suffix == ".json":
        feed = json.loads(body)["feed"]
        entries = feed.get("entry") or []
        for entry in [entries] if isinstance(entries, dict) else entries:
            if "im:rating" not in entry:
                continue
            when = (entry.get("updated") or feed["updated"])["label"]
            out.append(
                {
                    "id": entry["id"]["label"],
                    "title": entry["title"]["label"],
                    "content": entry["content"]["label"],
                    "rating": float(entry["im:rating"]["label"]),
                    "author": entry["author"]["name"]["label"],
                    "at": _iso(when),
                }
            )
    else:
        for entry in feedparser.parse(body).entries:
            if "im_rating" not in entry:
                continue
            text = next(c["value"] for c in entry["content"] if c["type"] == "text/plain")
            out.append(
                {
                    "id": entry["id"],
                    "title": entry["title"],
                    "content": text,
                    "rating": float(entry["im_rating"]),
                    "author": entry["author"],
                    "at": datetime.fromtimestamp(calendar.timegm(entry["updated_parsed"]), UTC),
                }
            )
    return out


@pytest.mark.parametrize("path", fixture_params("reviews", [".json", ".xml"]))
async def test_replay_review_file(path: Path, script: Script) -> None:
    """Every review in a recorded feed becomes one mention; recorded error answers raise the right error."""
    name = path.name.lower()
    if name.startswith("appstore"):
        await _replay_appstore(path, script)
    elif name.startswith(("kiyoh", "klantenvertellen")):
        await _replay_kiyoh(path, script)
    else:
        pytest.skip(f"no replay rule for {path.name}")


async def _replay_appstore(path: Path, script: Script) -> None:
    body = path.read_bytes()
    text = body.decode("utf-8", "replace")
    app = re.search(r"id=(\d{5,12})", text) or re.search(r"/id(\d{5,12})", text)
    country = re.search(r"itunes\.apple\.com/([a-z]{2})/rss/customerreviews", text)
    app_id, cc = (app.group(1) if app else "123456"), (country.group(1) if country else "us")
    variant = "json" if path.suffix == ".json" else "xml"
    script.queue(
        "GET",
        f"/{cc}/rss/customerreviews/page=1/id={app_id}/sortby=mostrecent/{variant}",
        Reply(200, [], body),
    )
    options = AppStoreOptions(app_id=app_id, countries=[cc], format=variant, base_url=script.base_url)
    source = AppStoreSource("appstore-replay", options, make_ctx())
    result = await source.poll({})
    await source.aclose()
    assert script.overruns == [] and script.pending() == 0
    expected = _appstore_expected(path)
    assert [m.external_id for m in result.mentions] == [e["id"] for e in expected]
    for mention, want in zip(result.mentions, expected, strict=True):
        _check_appstore(mention, want, app_id, cc)


def _check_appstore(mention: Mention, want: dict[str, Any], app_id: str, country: str) -> None:
    assert mention.source == "appstore"
    assert mention.text == f"{want['title']}\n{want['content']}".strip()
    assert mention.title == want["title"]
    assert mention.rating == want["rating"] and mention.rating_max == 5
    assert mention.author.name == want["author"]
    assert mention.created_at == want["at"]
    assert mention.url == f"https://apps.apple.com/{country}/app/id{app_id}?see-all=reviews"


class FakeAppStore:
    """The review feed (XML) over an in-memory list, newest first, ``per_page`` per page."""

    def __init__(self, per_page: int = 5) -> None:
        self.per_page = per_page
        self.reviews: list[tuple[int, datetime]] = []
        self.when = datetime(2024, 3, 1, tzinfo=UTC)

    def add(self, count: int) -> list[str]:
        """New reviews one minute apart."""
        ids = []
        for _ in range(count):
            self.when += timedelta(minutes=1)
            self.reviews.append((10_000_000 + len(self.reviews), self.when))
            ids.append(str(self.reviews[-1][0]))
        return ids

    def answer(self, request: Request) -> Reply:
        """One page of the Atom feed."""
        page = int(re.search(r"page=(\d+)", request.path).group(1))  # type: ignore[union-attr]
        newest = sorted(self.reviews, key=lambda r: r[1], reverse=True)
        chunk = newest[(page - 1) * self.per_page : page * self.per_page]
        entries = "".join(
            f"<entry><updated>{when.isoformat()}</updated><id>{rid}</id><title>T{rid}</title>"
            f'<content type="text">Body {rid}</content><im:rating>2</im:rating>'
            f"<author><name>N{rid}</name><uri>https://itunes.apple.com/reviews/id{rid}</uri></author></entry>"
            for rid, when in chunk
        )
        feed = (
            '<?xml version="1.0" encoding="utf-8"?><feed xmlns:im="http://itunes.apple.com/rss" '
            'xmlns="http://www.w3.org/2005/Atom"><updated>2024-03-02T00:00:00-07:00</updated>'
            "<entry><id>app</id><title>The app itself (no rating)</title></entry>" + entries + "</feed>"
        )
        return Reply(200, [("Content-Type", "text/xml; charset=utf-8")], feed.encode())


async def test_appstore_resume_and_page_walk(script: Script) -> None:
    """The watermark stops the walk; more new reviews than max_pages hold are read on the next poll."""
    api = FakeAppStore()
    script.fallback(api.answer)
    api.add(3)
    options = AppStoreOptions(
        app_id="12345678", countries=["nl"], base_url=script.base_url, max_pages=2, lateness=0
    )
    source = AppStoreSource("appstore-test", options, make_ctx())
    first = await source.poll({})
    assert len(first.mentions) == 3
    assert (await source.poll(first.cursor)).mentions == []
    fresh = api.add(13)
    second = await source.poll(first.cursor)
    assert second.more and len(second.mentions) == 10
    third = await source.poll(second.cursor)
    assert not third.more
    assert sorted(m.external_id for m in second.mentions + third.mentions) == sorted(fresh)
    assert (await source.poll(third.cursor)).mentions == []
    assert all("/nl/rss/customerreviews/page=" in r.path for r in script.requests)
    await source.aclose()


async def test_appstore_late_review_is_read_within_lateness(script: Script) -> None:
    """A review that appears after newer ones, dated below the mark, is delivered (within lateness)."""
    api = FakeAppStore(per_page=50)
    script.fallback(api.answer)
    api.add(3)
    options = AppStoreOptions(app_id="12345678", countries=["nl"], base_url=script.base_url, lateness="6h")
    source = AppStoreSource("appstore-test", options, make_ctx())
    first = await source.poll({})
    api.reviews.append((20_000_000, api.when - timedelta(hours=2)))  # held back, then published
    api.reviews.append((20_000_001, api.when - timedelta(hours=7)))  # later than lateness allows
    second = await source.poll(first.cursor)
    delivered = {m.external_id for m in second.mentions}
    assert "20000000" in delivered and "20000001" not in delivered
    assert delivered >= {m.external_id for m in first.mentions}  # repeats: the store drops them
    await source.aclose()


async def test_appstore_broken_feed_is_transient(script: Script) -> None:
    """An unparseable answer is a TransientError, a 5xx too."""
    script.fallback(lambda r: Reply(200, [], b"<feed><entry>"))
    source = AppStoreSource("a", AppStoreOptions(app_id="12345678", base_url=script.base_url), make_ctx())
    with pytest.raises(TransientError):
        await source.poll({})


# --- Kiyoh -------------------------------------------------------------------------------------


def _kiyoh_expected(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(location, reviews) read independently from the raw file; None for an error answer."""
    body = path.read_bytes()
    if path.suffix == ".json":
        data = json.loads(body)
        if "errorCode" in data or "httpCode" in data:
            return None
        reviews = []
        for review in data.get("reviews") or []:
            answers = {q["questionGroup"]: q["rating"] for q in review.get("reviewContent") or []}
            reviews.append({**review, "answers": answers})
        return {"locationId": str(data.get("locationId"))}, reviews
    root = ET.fromstring(body)
    if root.tag == "error":
        return None
    reviews = []
    for node in root.findall("./reviews/reviews"):
        answers = {
            q.findtext("questionGroup"): (q.findtext("rating") or "").strip()
            for q in node.findall("./reviewContent/reviewContent")
        }
        reviews.append(
            {
                "reviewId": node.findtext("reviewId"),
                "reviewAuthor": node.findtext("reviewAuthor"),
                "rating": node.findtext("rating"),
                "dateSince": node.findtext("dateSince"),
                "answers": answers,
            }
        )
    return {"locationId": root.findtext("locationId")}, reviews


def _kiyoh_source(script: Script, variant: str, **extra: Any) -> KiyohSource:
    options = KiyohOptions(base_url=script.base_url, format=variant, **extra)
    return KiyohSource("kiyoh-test", options, make_ctx({"KIYOH_HASH": KIYOH_HASH}))


async def _replay_kiyoh(path: Path, script: Script) -> None:
    variant = "json" if path.suffix == ".json" else "xml"
    body = path.read_bytes()
    expected = _kiyoh_expected(path)
    if expected is None:
        # Error answers: whether served with 200 or with the status the body names, a bad hash is AuthError.
        status = int(re.search(rb"httpCode\W+(\d{3})", body).group(1))  # type: ignore[union-attr]
        for code in (200, status):
            script.queue("GET", f"/v1/review/feed.{variant}", Reply(code, [], body))
            with pytest.raises(AuthError) as caught:
                await _kiyoh_source(script, variant).poll({})
            assert KIYOH_HASH not in str(caught.value)
        return
    script.queue("GET", f"/v1/review/feed.{variant}", Reply(200, [], body))
    source = _kiyoh_source(script, variant)
    result = await source.poll({})
    await source.aclose()
    assert script.requests[0].param("hash") == KIYOH_HASH
    location, reviews = expected
    assert [m.external_id for m in result.mentions] == [r["reviewId"] for r in reviews]
    for mention, review in zip(result.mentions, reviews, strict=True):
        oneliner = review["answers"].get("DEFAULT_ONELINER", "").strip()
        opinion = review["answers"].get("DEFAULT_OPINION", "").strip()
        assert mention.source == "kiyoh"
        assert oneliner in mention.text and opinion in mention.text
        assert mention.author.name == review["reviewAuthor"]
        assert mention.rating == float(review["rating"]) and mention.rating_max == 10
        assert mention.created_at == _iso(review["dateSince"])
        assert mention.url == f"{script.base_url}/reviews/{location['locationId']}"


async def test_kiyoh_delivers_every_review_of_the_feed(script: Script) -> None:
    """Each poll delivers every review in the feed (the store keeps each once): a review that shows
    up after a newer one was delivered (moderation, a lagging cache) is not lost."""
    reviews = [_kiyoh_review("b", "2024-01-02T10:00:00Z")]
    script.route(
        "GET", "/v1/review/feed.json", lambda r: Reply.json({"locationId": 9, "reviews": list(reviews)})
    )
    source = _kiyoh_source(script, "json", limit_days=7)
    old_mark = stream_prefix("ky", script.base_url + "json") + "at"
    first = await source.poll({old_mark: "2023-12-31T00:00:00+00:00", "other": "kept"})
    assert [m.external_id for m in first.mentions] == ["b"]
    assert script.requests[-1].param("limitDays") == "7"
    assert first.cursor == {"other": "kept"}  # nothing that grows; an old watermark is dropped
    reviews.append(_kiyoh_review("a", "2024-01-01T10:00:00Z"))  # older, published late
    reviews.insert(0, _kiyoh_review("c", "2024-01-03T10:00:00Z"))
    second = await source.poll(first.cursor)
    assert [m.external_id for m in second.mentions] == ["c", "b", "a"]
    assert second.cursor == first.cursor
    assert second.mentions[0].rating == 4 and second.mentions[0].text == "Slecht\nNiet geleverd."
    await source.aclose()


async def test_kiyoh_repeats_are_stored_and_alerted_once(
    script: Script, sqlite_url: str, tmp_path: Path
) -> None:
    """Through the daemon: a review delivered on every poll is one mention and one alert."""
    reviews = [_kiyoh_review("k1", "2026-03-02T09:10:00Z", "Kettle Co stuurde een kapotte waterkoker")]
    script.route(
        "GET", "/v1/review/feed.json", lambda r: Reply.json({"locationId": 9, "reviews": list(reviews)})
    )
    hash_file = tmp_path / "kiyoh-hash"
    hash_file.write_text(KIYOH_HASH)
    kiyoh = (
        f"  - name: kiyoh-kettle\n    type: kiyoh\n    format: json\n"
        f"    base_url: {script.base_url}\n    hash_file: {hash_file}\n"
    )
    replay = write_jsonl(tmp_path / "posts.jsonl", [])
    runtime, notifier = make_runtime(load(config_text(sqlite_url, replay, extra_sources=kiyoh)), tmp_path)
    try:
        assert (await runtime.run_once()).stored == 1
        assert (await runtime.run_once()).stored == 0
        reviews.append(_kiyoh_review("k0", "2026-03-02T09:05:00Z", "Kettle Co levert nooit op tijd"))
        assert (await runtime.run_once()).stored == 1
        with runtime.db.session() as session:
            stored = session.execute(select(models.Mention.external_id)).scalars().all()
        assert sorted(stored) == ["k0", "k1"]
        sent = [k for r in notifier.records() for k in r["alert_keys"]]
        assert sent == ["complaint:Kettle Co:kiyoh:k1", "complaint:Kettle Co:kiyoh:k0"]
    finally:
        await runtime.aclose()


def _kiyoh_review(ident: str, when: str, opinion: str = "Niet geleverd.") -> dict[str, Any]:
    return {
        "reviewId": ident,
        "reviewAuthor": "Piet",
        "city": "Delft",
        "rating": 4,
        "reviewContent": [
            {"questionGroup": "DEFAULT_ONELINER", "rating": "Slecht"},
            {"questionGroup": "DEFAULT_OPINION", "rating": opinion},
        ],
        "dateSince": when,
        "updatedSince": when,
    }


async def test_kiyoh_other_errors(script: Script) -> None:
    """A server error is transient, a 401/403 an AuthError, garbage with 200 transient."""
    script.queue("GET", "/v1/review/feed.xml", Reply(500, [], b"<html>oops</html>"))
    script.queue("GET", "/v1/review/feed.xml", Reply(403, [], b""))
    script.queue("GET", "/v1/review/feed.xml", Reply(200, [], b"not xml"))
    with pytest.raises(TransientError):
        await _kiyoh_source(script, "xml").poll({})
    with pytest.raises(AuthError):
        await _kiyoh_source(script, "xml").poll({})
    with pytest.raises(TransientError):
        await _kiyoh_source(script, "xml").poll({})


# --- Trustpilot (hand-made answers in the shape of the public API) ------------------------------


def _tp_review(ident: str, created: datetime, stars: int = 2) -> dict[str, Any]:
    return {
        "links": [
            {"href": f"https://api.trustpilot.com/v1/reviews/{ident}", "method": "GET", "rel": "reviews"}
        ],
        "id": ident,
        "consumer": {
            "links": [],
            "id": f"c{ident}",
            "displayName": "Jan Jansen",
            "displayLocation": "Utrecht, NL",
            "numberOfReviews": 3,
        },
        "businessUnit": {
            "links": [],
            "id": "4bdf7b0b00006400050a7b26",
            "identifyingName": "acme.nl",
            "displayName": "Acme",
        },
        "location": None,
        "stars": stars,
        "title": "Pakket nooit aangekomen",
        "text": "Drie weken gewacht, geen antwoord van de klantenservice.",
        "language": "nl",
        "createdAt": created.isoformat().replace("+00:00", "Z"),
        "experiencedAt": None,
        "updatedAt": None,
        "companyReply": None,
        "isVerified": True,
        "numberOfLikes": 0,
        "status": "active",
        "reportData": None,
        "complianceLabels": [],
        "countsTowardsTrustScore": True,
        "countsTowardsLocationTrustScore": None,
        "invitation": None,
        "businessUnitHistory": [],
        "reviewVerificationLevel": "verified",
    }


class FakeTrustpilot:
    """``/v1/business-units/{id}/reviews`` ordered createdat.desc with page/perPage and next-page links."""

    def __init__(self) -> None:
        self.reviews: list[dict[str, Any]] = []
        self.when = datetime(2024, 2, 1, tzinfo=UTC)

    def add(self, count: int) -> list[str]:
        """New reviews, one minute apart (ids are 24 hex chars like Trustpilot's)."""
        ids = []
        for _ in range(count):
            self.when += timedelta(minutes=1)
            ident = f"{len(self.reviews) + 1:024x}"
            self.reviews.append(_tp_review(ident, self.when))
            ids.append(ident)
        return ids

    def answer(self, request: Request) -> Reply:
        """A page of reviews; 401 without the right key."""
        if request.headers.get("apikey") != TP_KEY:
            return Reply.json({"message": "Unauthorized"}, 401)
        assert request.param("orderBy") == "createdat.desc"
        page, per = int(request.param("page") or 1), int(request.param("perPage") or 20)
        newest = sorted(self.reviews, key=lambda r: r["createdAt"], reverse=True)
        chunk = newest[(page - 1) * per : page * per]
        links = [{"href": "...", "method": "GET", "rel": "next-page"}] if page * per < len(newest) else []
        return Reply.json({"links": links, "reviews": chunk})


async def test_trustpilot_reviews_resume_and_paging(script: Script) -> None:
    """Reviews become mentions with stars 1-5; the walk stops at the watermark and resumes by page."""
    api = FakeTrustpilot()
    unit = "4bdf7b0b00006400050a7b26"
    script.route("GET", f"/v1/business-units/{unit}/reviews", api.answer)
    api.add(2)
    options = TrustpilotOptions(
        business_unit_id=unit, api_url=script.base_url, per_page=5, max_pages=2, lateness=0
    )
    source = TrustpilotSource("tp", options, make_ctx({"TRUSTPILOT_API_KEY": TP_KEY}))
    first = await source.poll({})
    review = api.reviews[-1]
    mention = first.mentions[0]
    assert mention.external_id == review["id"] and mention.rating == 2 and mention.rating_max == 5
    assert mention.text == f"{review['title']}\n{review['text']}" and mention.language == "nl"
    assert mention.url == f"https://www.trustpilot.com/reviews/{review['id']}"
    assert mention.author.name == "Jan Jansen" and mention.created_at == _iso(review["createdAt"])
    fresh = api.add(12)
    second = await source.poll(first.cursor)
    assert second.more and len(second.mentions) == 10
    third = await source.poll(second.cursor)
    assert sorted(m.external_id for m in second.mentions + third.mentions) == sorted(fresh)
    assert (await source.poll(third.cursor)).mentions == []
    await source.aclose()


async def test_trustpilot_late_review_is_read_within_lateness(script: Script) -> None:
    """A review published late with its earlier createdAt is delivered (default lateness: a day)."""
    api = FakeTrustpilot()
    unit = "4bdf7b0b00006400050a7b26"
    script.route("GET", f"/v1/business-units/{unit}/reviews", api.answer)
    api.add(3)
    options = TrustpilotOptions(business_unit_id=unit, api_url=script.base_url)
    source = TrustpilotSource("tp", options, make_ctx({"TRUSTPILOT_API_KEY": TP_KEY}))
    first = await source.poll({})
    api.reviews.append(_tp_review("late0000000000000000000a", api.when - timedelta(hours=5)))
    second = await source.poll(first.cursor)
    assert "late0000000000000000000a" in {m.external_id for m in second.mentions}
    await source.aclose()


# --- Google Play (hand-made batchexecute answers in the shape the web endpoint sends) -----------


def _gp_review(ident: str, when: datetime, score: int, text: str) -> list[Any]:
    user = ["Anna de Vries", [None, 2, None, [None, None, "https://play-lh.googleusercontent.com/a/x"]]]
    return [
        f"gp:{ident}", user, score, None, text, [int(when.timestamp()), 123000000], 7,
        None, None, None, "5.12.0", None, None, None, None, None, None, None, None, None,
    ]  # fmt: skip


def _gp_answer(reviews: list[list[Any]], token: str | None) -> str:
    inner = json.dumps([reviews, None, [None, token] if token else None])
    envelope = [
        ["wrb.fr", "UsvDTd", inner, None, None, None, "generic"],
        ["di", 55],
        ["af.httprm", 54, "1", 9],
    ]
    return ")]}'\n\n" + json.dumps(envelope)


async def test_googleplay_reviews_and_paging(script: Script) -> None:
    """Reviews are read newest first with the continuation token; a second poll repeats nothing."""
    base = datetime(2024, 5, 1, tzinfo=UTC)
    all_reviews = [
        _gp_review(f"r{i}", base + timedelta(hours=i), 1 + i % 5, f"review {i}") for i in range(8)
    ][::-1]

    def answer(request: Request) -> Reply:
        form = parse_qs(request.body.decode())
        inner = json.loads(json.loads(form["f.req"][0])[0][0][1])
        count, token = inner[2][2][0], inner[2][2][2]
        assert inner[3] == ["com.acme.app", 7] and inner[2][1] == 2
        start = int(token or 0)
        page = all_reviews[start : start + count]
        more = str(start + count) if start + count < len(all_reviews) else None
        return Reply(
            200, [("Content-Type", "application/json; charset=utf-8")], _gp_answer(page, more).encode()
        )

    script.route("POST", "/_/PlayStoreUi/data/batchexecute", answer)
    options = GooglePlayOptions(
        app_id="com.acme.app", lang="nl", country="nl", base_url=script.base_url, count=3, lateness=0
    )
    source = GooglePlaySource("gp", options, make_ctx())
    first = await source.poll({})
    assert [m.external_id for m in first.mentions] == ["gp:r7", "gp:r6", "gp:r5"]
    top = first.mentions[0]
    assert (
        top.rating == 3
        and top.rating_max == 5
        and top.text == "review 7"
        and top.author.name == "Anna de Vries"
    )
    assert top.created_at == base + timedelta(hours=7)
    assert top.url == "https://play.google.com/store/apps/details?id=com.acme.app&hl=nl&reviewId=gp:r7"
    assert script.requests[-1].param("hl") == "nl" and script.requests[-1].param("gl") == "nl"
    assert (await source.poll(first.cursor)).mentions == []
    all_reviews.insert(0, _gp_review("r8", base + timedelta(hours=8), 5, "top"))
    again = await source.poll(first.cursor)
    assert [m.external_id for m in again.mentions] == ["gp:r8"]
    await source.aclose()
    # With the default lateness (a day) a review that shows up late, dated an hour before the
    # newest one delivered, is read too.
    late = GooglePlaySource("gp", options.model_copy(update={"lateness": 86400.0}), make_ctx())
    all_reviews.insert(2, _gp_review("late", base + timedelta(hours=7), 1, "late"))
    later = await late.poll(again.cursor)
    assert "gp:late" in [m.external_id for m in later.mentions]
    await late.aclose()


async def test_googleplay_changed_shape_is_a_clear_error(script: Script) -> None:
    """When Google changes the answer, the source says so (SourceError), it does not guess."""
    script.route("POST", "/_/PlayStoreUi/data/batchexecute", lambda r: Reply(200, [], b")]}'\n\n<html>"))
    source = GooglePlaySource(
        "gp", GooglePlayOptions(app_id="com.acme.app", base_url=script.base_url), make_ctx()
    )
    with pytest.raises(SourceError, match="unexpected shape"):
        await source.poll({})


def test_googleplay_scraper_is_not_imported() -> None:
    """google-play-scraper disables TLS verification process-wide when imported: never load it."""
    import sys

    import sources.googleplay  # noqa: F401

    assert "google_play_scraper" not in sys.modules
