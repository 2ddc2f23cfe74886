"""The digest in Slack: a compact Block Kit summary per brand, with its chart uploaded in the thread.

Every piece of post text, author name and theme term goes through :mod:`alerts.escape`, so a post
containing ``<!channel>`` or ``<@U123>`` pings nobody; links are built only from http(s) URLs.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from alerts.digest import BrandDigest, PostRef, format_change, format_net, format_percent
from alerts.escape import (
    CONTEXT_TEXT_LIMIT,
    FALLBACK_TEXT_LIMIT,
    FIELD_TEXT_LIMIT,
    HEADER_TEXT_LIMIT,
    MAX_BLOCKS,
    SECTION_TEXT_LIMIT,
    escape_mrkdwn,
    escape_plain,
    link,
    trim,
    utf16_len,
)
from alerts.render import format_count, format_duration

__all__ = ["PostedDigest", "digest_blocks", "digest_text", "make_client", "post_digest"]

log = logging.getLogger("repmon.digest")

#: Posts and themes listed per section in Slack (the HTML report has more).
SLACK_POSTS = 3
SLACK_THEMES = 5
QUOTE_LIMIT = 160


@dataclass(frozen=True, slots=True)
class PostedDigest:
    """Where one brand's digest went: the message, and the chart file when it uploaded."""

    brand: str
    channel: str
    ts: str
    file_id: str | None = None
    chart_error: str | None = None


def make_client(token: str, api_url: str) -> AsyncWebClient:
    """An AsyncWebClient for ``api_url`` that also retries on rate limits and server errors."""
    from slack_sdk.http_retry.builtin_async_handlers import (
        AsyncConnectionErrorRetryHandler,
        AsyncRateLimitErrorRetryHandler,
        AsyncServerErrorRetryHandler,
    )

    return AsyncWebClient(
        token=token,
        base_url=api_url,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def _duration(seconds: float | None) -> str:
    return "–" if seconds is None else format_duration(seconds)


def _section(text: str, fields: list[str] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": trim(text, SECTION_TEXT_LIMIT)},
    }
    if fields:
        block["fields"] = [{"type": "mrkdwn", "text": trim(f, FIELD_TEXT_LIMIT)} for f in fields[:10]]
    return block


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": trim(text, CONTEXT_TEXT_LIMIT)}]}


def _with_link(line: str, url: str | None) -> tuple[str, str]:
    """``line`` followed by an ``<url|open>`` link when the URL is safe, and ``line`` alone."""
    opener = link(url, "open", trusted_label=True)
    return (f"{line} {opener}" if opener != "open" else line), line


def _post_item(post: PostRef) -> tuple[str, str]:
    """``• @author (12k): "quote" <url|open>`` with every untrusted part escaped, and the same without link."""
    reach = f" ({format_count(post.followers)})" if post.followers else ""
    quote = escape_mrkdwn(" ".join(post.text.split()), QUOTE_LIMIT)
    return _with_link(f"• {escape_mrkdwn(post.author, 80)}{reach}: “{quote}”", post.url)


def _list_sections(title: str, items: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Sections with ``title`` and one line per item, split only between items.

    Each item is (line with its link, the same line without). Cutting a section at the character
    limit could end inside ``<url|label>`` markup (a broken link) and silently drop the lines after
    it, so lines are packed whole instead: a line that does not fit moves to a new section; a link
    too long for any section (or for the first one, beside the title) is left out, keeping the text.
    """
    texts: list[str] = []
    current = f"*{title}*"
    started = False
    for full, plain in items:
        line = full if utf16_len(full) <= SECTION_TEXT_LIMIT else trim(plain, SECTION_TEXT_LIMIT)
        if utf16_len(f"{current}\n{line}") > SECTION_TEXT_LIMIT:
            if started:
                texts.append(current)
                current = line
                continue
            line = trim(plain, SECTION_TEXT_LIMIT - utf16_len(current) - 1)
        current = f"{current}\n{line}"
        started = True
    texts.append(current)
    return [_section(text) for text in texts]


def digest_text(digest: BrandDigest) -> str:
    """Plain fallback text (notifications, screen readers) for one brand's digest."""
    s = digest.sentiment
    text = (
        f"Digest for {digest.brand}, {digest.period.label}: {digest.volume} mentions "
        f"({format_change(digest.change_pct)}), net sentiment {format_net(s.net)}, {digest.complaints} complaints, "
        f"{len(digest.spikes)} spikes"
    )
    return trim(escape_mrkdwn(text), FALLBACK_TEXT_LIMIT)


def digest_blocks(digest: BrandDigest) -> list[dict[str, Any]]:
    """A compact Block Kit summary of one brand's digest (untrusted text escaped)."""
    s = digest.sentiment
    brand = escape_mrkdwn(digest.brand, 150)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": escape_plain(f"📊 Digest: {digest.brand}", HEADER_TEXT_LIMIT),
            },
        },
        _context(f"{escape_mrkdwn(digest.period.label)} · vs {escape_mrkdwn(digest.previous_period.label)}"),
    ]
    net_change = "" if digest.net_change is None else f" ({digest.net_change * 100:+.0f} pts)"
    blocks.append(
        _section(
            f"*{brand}* had *{digest.volume}* mentions ({format_change(digest.change_pct)} vs {digest.previous_volume}).",
            [
                f"*Net sentiment*\n{format_net(s.net)}{net_change}",
                f"*Sentiment*\n🟢 {format_percent(s.percent('positive'))} · "
                f"⚪ {format_percent(s.percent('neutral'))} · 🔴 {format_percent(s.percent('negative'))}"
                + (f"\n_{s.unscored} not scored_" if s.unscored else ""),
                f"*Complaints*\n{digest.complaints}",
                f"*Praise*\n{digest.praise}",
            ],
        )
    )
    if digest.by_source:
        parts = [
            f"{escape_mrkdwn(v.label)} {v.count} ({format_change(v.change_pct)})"
            for v in digest.by_source[:8]
        ]
        blocks.append(_context("By source: " + " · ".join(parts)))
    if digest.competitors:
        parts = [f"{brand}: {digest.volume}, net {format_net(s.net)}"] + [
            f"{escape_mrkdwn(c.brand)}: {c.volume} ({format_change(c.change_pct)}), net {format_net(c.sentiment.net)}"
            for c in digest.competitors
        ]
        blocks.append(_context("Side by side: " + " · ".join(parts)))
    if digest.notes:
        blocks.append(_context(" ".join(escape_mrkdwn(n) for n in digest.notes)))
    blocks.append({"type": "divider"})
    if digest.themes:
        items = []
        for theme in digest.themes[:SLACK_THEMES]:
            example = theme.examples[0] if theme.examples else None
            line = f"• *{escape_mrkdwn(theme.term, 80)}* ({theme.count})"
            if example is None:
                items.append((line, line))
            else:
                quote = escape_mrkdwn(" ".join(example.text.split()), 100)
                items.append(_with_link(f"{line} — “{quote}”", example.url))
        blocks.extend(_list_sections("Top complaint themes", items))
    if digest.top_complaints:
        items = [_post_item(p) for p in digest.top_complaints[:SLACK_POSTS]]
        blocks.extend(_list_sections("Most-reached complaints", items))
    if digest.top_praise:
        items = [_post_item(p) for p in digest.top_praise[:SLACK_POSTS]]
        blocks.extend(_list_sections("Most-reached praise", items))
    if digest.spikes:
        zone = digest.period.zone
        items = []
        for x in digest.spikes[:5]:
            end = f"{x.resolved_at.astimezone(zone):%a %H:%M}" if x.resolved_at else "still open"
            terms = ", ".join(escape_mrkdwn(t, 40) for t in x.top_terms[:4])
            line = (
                f"• {escape_mrkdwn(x.metric)} {x.started_at.astimezone(zone):%a %d %b %H:%M} → {end}, "
                f"peak {x.peak_count:.0f} vs {x.expected:.1f} expected" + (f" ({terms})" if terms else "")
            )
            items.append((line, line))
        blocks.extend(_list_sections("Spikes", items))
    h = digest.handling
    blocks.append(
        _section(
            f"*Team handling*: {h.raised} alerts, {h.claimed} claimed, {h.handled} handled, "
            f"{h.not_relevant} not relevant, {h.open} open\n"
            f"Time to claim: median {_duration(h.claim_median)}, p90 {_duration(h.claim_p90)} · "
            f"time to handle: median {_duration(h.handle_median)}, p90 {_duration(h.handle_p90)}"
        )
    )
    return blocks[:MAX_BLOCKS]


_FILE_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


async def post_digest(
    client: AsyncWebClient, channel: str, digests: list[BrandDigest], *, charts: bool = True
) -> list[PostedDigest]:
    """Post each digest's summary to ``channel`` and upload its chart (files_upload_v2) in the thread.

    A failed message raises :class:`slack_sdk.errors.SlackApiError`; a failed chart upload is logged
    and reported in the result, since the summary is already out and must not be posted twice.
    """
    from alerts.digest_chart import render_chart_png

    posted: list[PostedDigest] = []
    for digest in digests:
        response = await client.chat_postMessage(
            channel=channel,
            text=digest_text(digest),
            blocks=digest_blocks(digest),
            unfurl_links=False,
            unfurl_media=False,
        )
        channel_id, ts = str(response["channel"]), str(response["ts"])
        file_id: str | None = None
        error: str | None = None
        if charts:
            try:
                png = await asyncio.to_thread(render_chart_png, digest)
                name = _FILE_SAFE.sub("-", f"digest-{digest.period.slug}-{digest.brand}").strip("-") + ".png"
                upload = await client.files_upload_v2(
                    channel=channel_id,
                    thread_ts=ts,
                    file=png,
                    filename=name,
                    title=escape_plain(f"{digest.brand} — {digest.period.label}", 250),
                )
                files = upload.get("files") or [upload.get("file") or {}]
                file_id = files[0].get("id") if files else None
            except (SlackClientError, OSError, TimeoutError) as exc:
                error = str(exc.response.get("error")) if isinstance(exc, SlackApiError) else repr(exc)
                log.warning("digest chart for %s not uploaded: %s", digest.brand, error)
        posted.append(PostedDigest(digest.brand, channel_id, ts, file_id, error))
    return posted
