"""Render notifications as Slack Block Kit and fallback text; every receiver shows this same content.

All untrusted text (post text, author names, titles, reasons, terms) goes through
:mod:`alerts.escape`; the only markup in the output is our own (bold labels, quotes, links built from
validated URLs, ``<!date^…>`` tokens, buttons).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from alerts.escape import (
    BUTTON_VALUE_LIMIT,
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
)
from alerts.labels import source_label
from alerts.model import AlertItem, IncidentView, MentionView, Notification, ScoreView

__all__ = [
    "ACTION_PREFIX",
    "MAX_ITEMS",
    "METADATA_EVENT_TYPE",
    "alert_metadata",
    "format_count",
    "format_duration",
    "format_rating",
    "format_scores",
    "format_time",
    "metadata_matches",
    "notification_fingerprint",
    "render_blocks",
    "render_text",
    "render_update_blocks",
    "render_update_text",
]

#: ``action_id`` of a button is ``repmon:<action>``; its ``value`` is the alert id.
ACTION_PREFIX = "repmon:"
#: Items rendered in one message; the rest are summarised as "and N more" (Slack allows 50 blocks).
MAX_ITEMS = 10
#: Slack message metadata ``event_type`` that marks our messages (used to reconcile after a crash).
METADATA_EVENT_TYPE = "repmon_alert"

POST_TEXT_LIMIT = 1200
SAMPLE_TEXT_LIMIT = 280
POST_MAX_LINES = 12

_KIND = {
    "praise": ("🌟", "Praise"),
    "complaint": ("⚠️", "Complaint"),
    "spike": ("🚨", "Spike"),
    "ops": ("🛠️", "Ops"),
}
_SOCIAL = {"x", "twitter", "bluesky", "mastodon", "reddit"}
_BUTTONS = {
    "claim": ("🙋 Claim", "primary"),
    "handled": ("✅ Handled", None),
    "not_relevant": ("🚫 Not relevant", None),
    "wrong_sentiment": ("🔁 Wrong sentiment", None),
}
_METRICS = {"negative": "Negative mentions", "total": "All mentions", "complaint": "Complaints"}


# ---------------------------------------------------------------------------------------------- formats


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def format_time(dt: datetime) -> str:
    """``2024-05-01 14:03 UTC`` (naive datetimes are taken as UTC)."""
    return _utc(dt).strftime("%Y-%m-%d %H:%M UTC")


def _slack_date(dt: datetime) -> str:
    """A Slack date token: shown in the reader's own timezone, with our UTC text as fallback."""
    return f"<!date^{int(_utc(dt).timestamp())}^{{date_short_pretty}} {{time}}|{format_time(dt)}>"


def format_count(n: float) -> str:
    """Human counts: ``999``, ``12.3k``, ``1.2M`` (used for reach and volumes)."""
    if n < 1000:
        return f"{n:.0f}" if float(n).is_integer() else f"{n:.1f}"
    units = (("B", 1e9), ("M", 1e6), ("k", 1e3))
    for i, (suffix, div) in enumerate(units):
        if n >= div or (i + 1 == len(units)):
            value = n / div
            text = f"{value:.1f}" if value < 100 else f"{value:.0f}"
            if text == "1000" and i > 0:  # 999.95k reads better as 1M
                return f"1{units[i - 1][0]}"
            return text.removesuffix(".0") + suffix
    return str(n)  # pragma: no cover - loop always returns


def format_duration(seconds: float) -> str:
    """``2h 15m`` / ``45m`` / ``3d 4h``."""
    minutes = max(int(seconds // 60), 0)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m"


def format_rating(rating: float, rating_max: float | None = None) -> str:
    """``★★☆☆☆ 2/5`` for a review rating on any scale."""
    scale = rating_max or 5.0
    stars = max(0, min(5, int(rating / scale * 5 + 0.5)))
    shown = f"{rating:g}/{scale:g}"
    return "★" * stars + "☆" * (5 - stars) + " " + shown


def format_scores(scores: ScoreView) -> str:
    """``positive 0.93 · complaint 0.04`` (plus severity when the classifier gives one)."""
    label = scores.sentiment.lower()
    if label.startswith("pos"):
        p = scores.p_positive
    elif label.startswith("neg"):
        p = scores.p_negative
    else:
        p = scores.p_neutral
    text = f"{escape_mrkdwn(label, 30)} {p:.2f} · complaint {scores.complaint:.2f}"
    if scores.severity is not None:
        text += f" · severity {scores.severity}"
    return text


def _source_name(source: str) -> str:
    return source_label(source)


def _author(m: MentionView) -> str:
    handle = m.author_handle
    if handle and m.source.lower() in _SOCIAL and not handle.startswith(("@", "u/", "/u/")):
        handle = ("u/" if m.source.lower() == "reddit" else "@") + handle
    parts = [p for p in (handle, m.author_name) if p]
    if not parts:
        return "unknown author"
    if len(parts) == 2 and parts[0].lstrip("@").lower() == parts[1].lower():
        parts = parts[:1]
    return " · ".join(escape_mrkdwn(p, 80) for p in parts)


def _quote(text: str, limit: int, max_lines: int = POST_MAX_LINES) -> str:
    """Untrusted post text as a mrkdwn block quote (escaped, trimmed, bounded number of lines)."""
    lines = [line.strip() for line in escape_mrkdwn(text).split("\n")]
    kept: list[str] = []
    for line in lines:
        if not line and (not kept or not kept[-1]):
            continue  # collapse blank runs
        kept.append(line)
    if len(kept) > max_lines:
        kept = [*kept[: max_lines - 1], " ".join(kept[max_lines - 1 :])]
    body = trim("\n".join(kept).strip(), limit)
    if not body:
        return ">(no text)"
    return "\n".join(">" + line for line in body.split("\n"))


# ---------------------------------------------------------------------------------------------- blocks


def _text(text: str, kind: str = "mrkdwn") -> dict[str, Any]:
    obj: dict[str, Any] = {"type": kind, "text": text}
    if kind == "plain_text":
        obj["emoji"] = True
    return obj


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": _text(escape_plain(text, HEADER_TEXT_LIMIT), "plain_text")}


def _section(text: str, fields: list[str] | None = None, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": _text(trim(text, SECTION_TEXT_LIMIT))}
    if fields:
        block["fields"] = [_text(trim(f, FIELD_TEXT_LIMIT)) for f in fields[:10]]
    if block_id:
        block["block_id"] = block_id
    return block


def _context(parts: list[str]) -> dict[str, Any]:
    return {"type": "context", "elements": [_text(trim(p, CONTEXT_TEXT_LIMIT)) for p in parts[:10]]}


def _divider() -> dict[str, Any]:
    return {"type": "divider"}


def _kind_label(item: AlertItem) -> str:
    emoji, label = _KIND.get(item.kind, ("🔔", item.kind.title()))
    if item.kind == "spike" and item.incident is not None and item.incident.status == "resolved":
        emoji, label = "✅", "Spike resolved"
    return f"{emoji} {label}"


def _buttons(item: AlertItem) -> list[str]:
    actions = ["claim", "handled", "not_relevant", "wrong_sentiment"]
    if item.kind == "spike":
        actions.remove("wrong_sentiment")
    if item.claimed_by or item.handled_by or item.dismissed_by:
        actions.remove("claim")
    if item.handled_by or item.dismissed_by:
        actions.remove("handled")
    if item.dismissed_by and "not_relevant" in actions:
        actions.remove("not_relevant")
    return actions


def _actions(item: AlertItem) -> dict[str, Any] | None:
    names = _buttons(item)
    if not names:
        return None
    elements = []
    for name in names:
        label, style = _BUTTONS[name]
        button: dict[str, Any] = {
            "type": "button",
            "action_id": f"{ACTION_PREFIX}{name}",
            "text": _text(label, "plain_text"),
            "value": str(item.alert_id)[:BUTTON_VALUE_LIMIT],
        }
        if style:
            button["style"] = style
        elements.append(button)
    return {"type": "actions", "block_id": f"repmon:{item.alert_id}:actions", "elements": elements}


def _state_line(item: AlertItem, *, bold: bool = True) -> str | None:
    # The fallback text leaves the names plain; stripping "*" afterwards could alter a link in a name.
    star = "*" if bold else ""
    parts = []
    if item.claimed_by:
        parts.append(f"🙋 Claimed by {star}{escape_mrkdwn(item.claimed_by, 80)}{star}")
    if item.handled_by:
        parts.append(f"✅ Handled by {star}{escape_mrkdwn(item.handled_by, 80)}{star}")
    if item.dismissed_by:
        parts.append(f"🚫 Marked not relevant by {star}{escape_mrkdwn(item.dismissed_by, 80)}{star}")
    return " · ".join(parts) if parts else None


def _why(item: AlertItem) -> str:
    return f"💡 *Why:* {escape_mrkdwn(item.reason, 600)}"


def _mention_blocks(item: AlertItem, m: MentionView) -> list[dict[str, Any]]:
    # bold stops at a line break in Slack: each title line is bold on its own
    heads = [escape_mrkdwn(t, 200) for t in (item.title, m.title) if t]
    lines = [f"*{h}*" for h in heads if h.strip()]
    text = "\n".join([*lines, _quote(m.text, POST_TEXT_LIMIT)])
    fields = [f"*Author*\n{_author(m)}"]
    if m.followers is not None:
        fields.append(f"*Reach*\n{format_count(m.followers)} followers")
    fields.append(f"*Source*\n{link(m.url, _source_name(m.source))}")
    fields.append(f"*Posted*\n{_slack_date(m.created_at)}")
    if item.scores is not None:
        fields.append(f"*Scores*\n{format_scores(item.scores)}")
    if m.rating is not None:
        fields.append(f"*Rating*\n{format_rating(m.rating, m.rating_max)}")
    fields.append(f"*Brand tag*\n{'tagged' if m.tagged else 'untagged'}")
    blocks = [_section(text, fields, block_id=f"repmon:{item.alert_id}:post")]
    context = [_why(item)]
    extra = [f"alert #{item.alert_id}", escape_mrkdwn(item.severity, 20)]
    if m.language:
        extra.append(f"lang {escape_mrkdwn(m.language, 10)}")
    if item.scores is not None:
        extra.append(f"model {escape_mrkdwn(item.scores.model, 60)}")
    context.append(" · ".join(extra))
    blocks.append(_context(context))
    return blocks


def _lasted(start: datetime, end: datetime) -> str:
    return format_duration((_utc(end) - _utc(start)).total_seconds())


def _incident_summary(inc: IncidentView) -> str:
    metric = _METRICS.get(inc.metric, escape_mrkdwn(inc.metric.replace("_", " ").capitalize(), 40))
    ratio = f" ({inc.count / inc.expected:.1f}×)" if inc.expected > 0 else ""
    if inc.status == "resolved":
        end = inc.resolved_at or inc.started_at
        return (
            f"{metric} are back to normal. The spike lasted *{_lasted(inc.started_at, end)}*"
            f" and peaked at *{format_count(inc.peak_count)}* (level {inc.level})."
        )
    return (
        f"{metric}: *{format_count(inc.count)}* in the last window vs *{format_count(inc.expected)}*"
        f" expected{ratio} · level *{inc.level}*"
    )


def _sample_lines(inc: IncidentView) -> str | None:
    if not inc.samples:
        return None
    lines = ["*Sample posts*"]
    for s in inc.samples[:3]:
        reach = f" · {format_count(s.followers)} followers" if s.followers is not None else ""
        lines.append(f"{_author(s)}{reach} · {link(s.url, _source_name(s.source))}")
        lines.append(_quote(s.text, SAMPLE_TEXT_LIMIT, max_lines=4))
    return "\n".join(lines)


def _spike_blocks(item: AlertItem, inc: IncidentView) -> list[dict[str, Any]]:
    text = f"*{escape_mrkdwn(item.title, 200)}*\n{_incident_summary(inc)}"
    fields = [
        f"*Started*\n{_slack_date(inc.started_at)}",
        f"*Peak*\n{format_count(inc.peak_count)}",
        f"*Level*\n{inc.level}",
        f"*Status*\n{'resolved' if inc.status == 'resolved' else 'open'}",
    ]
    if inc.resolved_at is not None:
        fields.append(f"*Resolved*\n{_slack_date(inc.resolved_at)}")
    blocks = [_section(text, fields, block_id=f"repmon:{item.alert_id}:incident")]
    if inc.top_terms:
        terms = " · ".join(escape_mrkdwn(t, 60) for t in inc.top_terms[:10])
        blocks.append(_section(f"*Top terms:* {terms}"))
    samples = _sample_lines(inc)
    if samples:
        blocks.append(_section(samples))
    blocks.append(_context([_why(item), f"incident #{inc.incident_id} · alert #{item.alert_id}"]))
    return blocks


def _ops_blocks(item: AlertItem) -> list[dict[str, Any]]:
    text = f"{_kind_label(item)} *{escape_mrkdwn(item.title, 200)}*\n{escape_mrkdwn(item.reason, 2000)}"
    blocks = [_section(text, block_id=f"repmon:{item.alert_id}:ops")]
    if item.labels:
        labels = " · ".join(
            f"{escape_mrkdwn(k, 40)}={escape_mrkdwn(v, 80)}" for k, v in sorted(item.labels.items())
        )
        blocks.append(_context([labels]))
    return blocks


def _item_blocks(item: AlertItem, *, grouped: bool) -> list[dict[str, Any]]:
    if item.kind == "ops" or (item.mention is None and item.incident is None):
        return _ops_blocks(item)
    if item.incident is not None:
        blocks = _spike_blocks(item, item.incident)
    else:
        assert item.mention is not None
        blocks = _mention_blocks(item, item.mention)
    if grouped:  # the message header names the group; each item names its own kind and brand
        lead = _kind_label(item) + (f" · {escape_mrkdwn(item.brand, 80)}" if item.brand else "")
        first = blocks[0]
        first["text"]["text"] = trim(f"{lead}\n{first['text']['text']}", SECTION_TEXT_LIMIT)
    state = _state_line(item)
    if state:  # into the item's context block (not a block of its own): grouped messages stay ≤ 50 blocks
        context = next((b for b in reversed(blocks) if b["type"] == "context"), None)
        if context is not None and len(context["elements"]) < 10:
            context["elements"].append(_text(trim(state, CONTEXT_TEXT_LIMIT)))
        else:
            blocks.append(_context([state]))
    actions = _actions(item)
    if actions:
        blocks.append(actions)
    return blocks


_PLURAL = {"praise": "praise alerts", "complaint": "complaints", "spike": "spikes", "ops": "ops alerts"}


def _header_text(items: tuple[AlertItem, ...], *, emoji: bool = True) -> str:
    """Raw (unescaped) headline of a message: kind, brand, count."""
    first = items[0]
    brands = {i.brand for i in items if i.brand}
    brand = f" · {next(iter(brands))}" if len(brands) == 1 else ""
    if len(items) == 1:
        label = _kind_label(first)
        if first.kind == "spike" and first.incident is not None and first.incident.status == "open":
            brand += f" (level {first.incident.level})"
    elif len({i.kind for i in items}) == 1:
        label = f"{_KIND.get(first.kind, ('🔔', ''))[0]} {len(items)} {_PLURAL.get(first.kind, 'alerts')}"
    else:
        label = f"🔔 {len(items)} alerts"
    if not emoji:
        label = label.split(" ", 1)[1]
    return label + brand


def render_blocks(notification: Notification) -> list[dict[str, Any]]:
    """The Block Kit blocks of a notification (an incident as of each alert's own event; ≤ 50 blocks)."""
    items = notification.items
    if not items:
        return [_section("(empty notification)")]
    grouped = len(items) > 1
    blocks: list[dict[str, Any]] = []
    if not (len(items) == 1 and items[0].kind == "ops"):
        blocks.append(_header(_header_text(items)))
    shown = 0
    for item in items[:MAX_ITEMS]:
        item_blocks = ([_divider()] if shown else []) + _item_blocks(item, grouped=grouped)
        # Slack rejects more than 50 blocks: keep room for the "and N more" divider + context.
        if shown and len(blocks) + len(item_blocks) + 2 > MAX_BLOCKS:
            break
        blocks.extend(item_blocks)
        shown += 1
    if len(items) > shown:
        more = len(items) - shown
        blocks.append(_divider())
        blocks.append(_context([f"…and {more} more alert{'s' if more != 1 else ''} in this group"]))
    return blocks


# ---------------------------------------------------------------------------------------------- text


def _item_text(item: AlertItem, *, post_limit: int) -> str:
    lead = _kind_label(item).split(" ", 1)[1] + (f" · {escape_mrkdwn(item.brand, 80)}" if item.brand else "")
    title = escape_mrkdwn(item.title, 200)
    if item.kind == "ops" or (item.mention is None and item.incident is None):
        return f"Ops: {title} — {escape_mrkdwn(item.reason, 500)}"
    if item.incident is not None:
        inc = item.incident
        text = f"{lead}: {title} — " + _incident_summary(inc).replace("*", "")
        if inc.top_terms:
            text += " Top terms: " + ", ".join(escape_mrkdwn(t, 40) for t in inc.top_terms[:5]) + "."
        text += f" Why: {escape_mrkdwn(item.reason, 300)}"
        return _with_state(text, item)
    m = item.mention
    assert m is not None
    who = _author(m)
    if m.followers is not None:
        who += f" ({format_count(m.followers)} followers)"
    post = " ".join(escape_mrkdwn(m.text).split())
    text = (
        f"{lead}: {title} — {who} on {escape_mrkdwn(_source_name(m.source), 40)},"
        f" {format_time(m.created_at)}: “{trim(post, post_limit)}”"
    )
    if m.rating is not None:
        text += f" Rating {format_rating(m.rating, m.rating_max)}."
    text += f" {'Tagged' if m.tagged else 'Untagged'}. Why: {escape_mrkdwn(item.reason, 300)}"
    if item.scores is not None:
        text += f" ({format_scores(item.scores)})"
    return _with_state(text, item)


def _with_state(text: str, item: AlertItem) -> str:
    """``text`` plus who claimed, handled or dismissed the alert (plain, for the fallback text)."""
    state = _state_line(item, bold=False)
    return f"{text} {state}" if state else text


def render_text(notification: Notification) -> str:
    """Fallback text (push notifications, screen readers): plain, escaped, ≤ 4000 characters."""
    items = notification.items
    if not items:
        return "(empty notification)"
    if len(items) == 1:
        return trim(_item_text(items[0], post_limit=1000), FALLBACK_TEXT_LIMIT)
    head = escape_mrkdwn(_header_text(items, emoji=False), 300)
    parts = [_item_text(item, post_limit=160) for item in items[:MAX_ITEMS]]
    text = f"{head}: " + "\n".join(f"{i + 1}. {p}" for i, p in enumerate(parts))
    if len(items) > MAX_ITEMS:
        text += f"\n…and {len(items) - MAX_ITEMS} more"
    return trim(text, FALLBACK_TEXT_LIMIT)


# ---------------------------------------------------------------------------------------------- updates


def render_update_text(notification: Notification) -> str:
    """One line saying what changed, for the thread reply under an incident's root message."""
    lines = []
    for item in notification.items[:MAX_ITEMS]:
        inc = item.incident
        if inc is None:
            lines.append(_item_text(item, post_limit=300))
            continue
        vs = f"{format_count(inc.count)} vs {format_count(inc.expected)} expected"
        if item.event == "resolve" or inc.status == "resolved":
            end = inc.resolved_at or inc.started_at
            line = (
                f"✅ Resolved at {format_time(end)} after {_lasted(inc.started_at, end)};"
                f" peaked at {format_count(inc.peak_count)} (level {inc.level})."
            )
        elif item.event == "escalate":
            line = f"📈 Escalated to level {inc.level}: {vs} (peak {format_count(inc.peak_count)})."
        elif item.event == "raise":
            line = f"🚨 Spike raised: {vs} (level {inc.level})."
        else:
            line = f"🔁 Still ongoing: {vs} (level {inc.level})."
        lines.append(f"{line} {escape_mrkdwn(item.reason, 300)}".rstrip())
    return trim("\n".join(lines) or "(no change)", FALLBACK_TEXT_LIMIT)


def render_update_blocks(notification: Notification) -> list[dict[str, Any]]:
    """Blocks of the thread reply describing an incident change (plain section + context)."""
    ids = ", ".join(f"#{i.alert_id}" for i in notification.items[:MAX_ITEMS])
    return [_section(render_update_text(notification)), _context([f"incident update · alert {ids}"])]


# ---------------------------------------------------------------------------------------------- identity


def _pairs(notification: Notification) -> list[tuple[str, str]]:
    return [(item.key, item.event) for item in notification.items]


def notification_fingerprint(notification: Notification) -> str:
    """A stable id of what a notification delivers (channel, group, alert keys and events, thread)."""
    body = json.dumps(
        [notification.channel, notification.group_key, _pairs(notification), notification.thread_ts],
        ensure_ascii=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def alert_metadata(notification: Notification) -> dict[str, Any]:
    """Slack message metadata (also stored by the JSONL receiver) that lets ``find_delivered`` reconcile."""
    return {
        "event_type": METADATA_EVENT_TYPE,
        "event_payload": {
            "keys": [item.key for item in notification.items],
            "events": [item.event for item in notification.items],
            "alert_ids": [item.alert_id for item in notification.items],
            "group_key": notification.group_key,
            "fingerprint": notification_fingerprint(notification),
        },
    }


def metadata_matches(metadata: Mapping[str, Any] | None, notification: Notification) -> bool:
    """Whether a delivered message's metadata covers this notification (fingerprint, or all keys+events)."""
    if not metadata or metadata.get("event_type") != METADATA_EVENT_TYPE:
        return False
    payload = metadata.get("event_payload") or {}
    if not isinstance(payload, Mapping):
        return False
    if payload.get("fingerprint") == notification_fingerprint(notification):
        return True
    keys, events = payload.get("keys") or [], payload.get("events") or []
    if not isinstance(keys, list) or not isinstance(events, list) or len(keys) != len(events):
        return False
    delivered = set(zip(map(str, keys), map(str, events), strict=True))
    wanted = set(_pairs(notification))
    return bool(wanted) and wanted <= delivered
