"""The digest as one self-contained HTML file: inline CSS, charts as data: URIs, no scripts, no requests.

Post text is hostile input. Jinja2 autoescaping escapes every value; text is cleaned of control and
bidi-override characters first (:func:`alerts.escape.clean`); links to posts are emitted only for
plain http(s) URLs (:func:`alerts.escape.safe_url`), so ``javascript:`` and ``data:`` never become
links. URLs inside post text stay text (byte-exact: HTML escaping does not alter them), and
shortening a post never cuts one in half (:func:`alerts.escape.shorten`, as in Slack). A
Content-Security-Policy meta tag forbids scripts and any load except inline styles and data:
images, as a second line of defence.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from alerts.digest import (
    BrandDigest,
    Period,
    SentimentShare,
    format_change,
    format_net,
    format_percent,
    format_share,
    source_label,
)
from alerts.escape import clean, safe_url, shorten
from alerts.render import format_count, format_duration

__all__ = ["render_html"]

log = logging.getLogger("repmon.digest")

#: Characters of post text shown in the report.
POST_TEXT_LIMIT = 400

_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_CSS = """
:root { --fg:#1d2329; --muted:#5f6b76; --bg:#ffffff; --card:#f5f7f9; --line:#dde3e8; --pos:#1a9850;
  --neu:#bdbdbd; --neg:#d73027; --uns:#e8e8e8; --accent:#253494; }
@media (prefers-color-scheme: dark) { :root { --fg:#e6e9ec; --muted:#9aa5af; --bg:#15191d; --card:#1f252b;
  --line:#333c44; --accent:#8fa6ff; } img.chart { background:#fff; } }
* { box-sizing:border-box; }
html { -webkit-text-size-adjust:100%; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
  color:var(--fg); background:var(--bg); }
main { max-width:1100px; margin:0 auto; padding:16px; }
header.top { border-bottom:3px solid var(--accent); margin-bottom:16px; }
h1 { font-size:1.6rem; margin:.2em 0; } h2 { font-size:1.4rem; margin:1.6em 0 .4em; }
h3 { font-size:1.1rem; margin:1.4em 0 .4em; }
.muted { color:var(--muted); } .small { font-size:.85rem; }
nav.brands a { margin-right:1em; }
a { color:var(--accent); overflow-wrap:anywhere; }
.cards { display:grid; grid-template-columns:repeat(auto-fit, minmax(160px, 1fr)); gap:10px; }
.card { background:var(--card); border-radius:8px; padding:10px 12px; }
.card .value { font-size:1.5rem; font-weight:600; }
.up { color:var(--neg); } .down { color:var(--pos); } .good { color:var(--pos); } .bad { color:var(--neg); }
.neutral-change { color:var(--muted); }
.share { display:flex; height:14px; border-radius:7px; overflow:hidden; background:var(--uns); margin:6px 0; }
.share span { display:block; height:100%; }
.s-positive { background:var(--pos); } .s-neutral { background:var(--neu); } .s-negative { background:var(--neg); }
.legend span { display:inline-block; margin-right:1em; }
.dot { display:inline-block; width:.7em; height:.7em; border-radius:50%; margin-right:.3em; }
img.chart { width:100%; height:auto; border:1px solid var(--line); border-radius:8px; margin:12px 0; }
.table-wrap { overflow-x:auto; -webkit-overflow-scrolling:touch; }
table { border-collapse:collapse; width:100%; font-size:.92rem; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
.posts { display:grid; grid-template-columns:repeat(auto-fit, minmax(280px, 1fr)); gap:10px; }
.post { background:var(--card); border-left:4px solid var(--line); border-radius:6px; padding:8px 12px;
  overflow-wrap:anywhere; }
.post.complaint { border-left-color:var(--neg); } .post.praise { border-left-color:var(--pos); }
.post .text { white-space:pre-line; margin:4px 0; }
.theme { margin:10px 0 14px; }
.term { font-weight:600; background:var(--card); border-radius:4px; padding:1px 6px; }
.notes { background:#fff6d6; color:#5c4700; border-radius:6px; padding:8px 12px; }
section.brand { border-top:1px solid var(--line); }
footer { margin:32px 0 8px; }
@media (max-width: 600px) { body { font-size:14px; } main { padding:10px; } h1 { font-size:1.3rem; }
  .card .value { font-size:1.25rem; } .posts { grid-template-columns:1fr; } }
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="referrer" content="no-referrer">
<meta name="generator" content="repmon">
<title>Sentiment digest — {{ period.label }}</title>
<style>{{ css }}</style>
</head>
<body>
<main>
<header class="top">
  <h1>Sentiment digest</h1>
  <p class="muted">{{ period.label }} · times in {{ period.timezone }} · generated {{ generated }}</p>
  {% if digests|length > 1 %}<nav class="brands">{% for d in digests %}
    <a href="#brand-{{ loop.index }}">{{ d.brand }}</a>{% endfor %}</nav>{% endif %}
</header>
{% if not digests %}<p class="notes">No brands are configured for the digest.</p>{% endif %}
{% for d in digests %}{% set b = loop.index %}
<section class="brand" id="brand-{{ b }}">
  <h2>{{ d.brand }}</h2>
  {% if d.notes %}<div class="notes">{% for n in d.notes %}<div>{{ n }}</div>{% endfor %}</div>{% endif %}
  <div class="cards">
    <div class="card"><div class="muted small">Mentions</div><div class="value">{{ count(d.volume) }}</div>
      <div class="small">{{ change(d.change_pct, d.previous_volume) }}</div></div>
    <div class="card"><div class="muted small">Net sentiment</div>
      <div class="value {{ sign_class(d.sentiment.net) }}">{{ net(d.sentiment.net) }}</div>
      <div class="small">{{ net_change(d.net_change) }}</div></div>
    <div class="card"><div class="muted small">Complaints</div><div class="value">{{ count(d.complaints) }}</div>
      <div class="small muted">{{ pct_of(d.complaints, d.volume) }} of mentions</div></div>
    <div class="card"><div class="muted small">Praise</div><div class="value">{{ count(d.praise) }}</div>
      <div class="small muted">{{ pct_of(d.praise, d.volume) }} of mentions</div></div>
    <div class="card"><div class="muted small">Alerts handled</div>
      <div class="value">{{ d.handling.handled + d.handling.not_relevant }} / {{ d.handling.raised }}</div>
      <div class="small muted">median claim {{ duration(d.handling.claim_median) }}</div></div>
  </div>

  <h3>Sentiment</h3>
  {% set s = d.sentiment %}
  <div class="share" role="img" aria-label="positive {{ spct(s, 'positive') }}, neutral {{ spct(s, 'neutral') }}, negative {{ spct(s, 'negative') }}">
    {% if s.scored %}{% for label in ('positive', 'neutral', 'negative') %}
    <span class="s-{{ label }}" style="width: {{ width(s.share(label)) }}%"></span>{% endfor %}{% endif %}
  </div>
  <div class="legend small">
    {% for label in ('positive', 'neutral', 'negative') %}<span><i class="dot s-{{ label }}"></i>{{ label }}
      {{ spct(s, label) }} ({{ s[label] }})</span>{% endfor %}
    {% if s.unscored %}<span class="muted">{{ s.unscored }} not scored</span>{% endif %}
    <span class="muted">previous period: net {{ net(d.previous_sentiment.net) }}</span>
  </div>
  {% if charts[b - 1] %}<img class="chart" src="{{ charts[b - 1] }}" width="880" height="396"
    alt="Mentions per day by sentiment and net sentiment for {{ d.brand }}">{% endif %}

  <div class="table-wrap"><table>
    <thead><tr><th>Day</th><th class="num">Mentions</th><th class="num">Positive</th><th class="num">Neutral</th>
      <th class="num">Negative</th><th class="num">Net</th></tr></thead>
    <tbody>{% for p in d.trend %}<tr><td>{{ day(p.day) }}</td><td class="num">{{ p.total }}</td>
      <td class="num">{{ p.sentiment.positive }}</td><td class="num">{{ p.sentiment.neutral }}</td>
      <td class="num">{{ p.sentiment.negative }}</td><td class="num">{{ net(p.net) }}</td></tr>{% endfor %}
    </tbody></table></div>

  <h3>Volume by source</h3>
  {% if d.by_source %}<div class="table-wrap"><table>
    <thead><tr><th>Source</th><th class="num">Mentions</th><th class="num">Previous</th><th class="num">Change</th></tr></thead>
    <tbody>{% for v in d.by_source %}<tr><td>{{ v.label }}</td><td class="num">{{ v.count }}</td>
      <td class="num">{{ v.previous }}</td><td class="num">{{ change(v.change_pct, v.previous, short=True) }}</td></tr>{% endfor %}
    </tbody></table></div>{% else %}<p class="muted">No mentions in this or the previous period.</p>{% endif %}

  {% if d.competitors %}
  <h3>Compared with competitors</h3>
  <div class="table-wrap"><table>
    <thead><tr><th>Brand</th><th class="num">Mentions</th><th class="num">Change</th><th class="num">Positive</th>
      <th class="num">Negative</th><th class="num">Net</th></tr></thead>
    <tbody><tr><td><strong>{{ d.brand }}</strong></td><td class="num">{{ d.volume }}</td>
      <td class="num">{{ change(d.change_pct, d.previous_volume, short=True) }}</td>
      <td class="num">{{ spct(d.sentiment, 'positive') }}</td><td class="num">{{ spct(d.sentiment, 'negative') }}</td>
      <td class="num">{{ net(d.sentiment.net) }}</td></tr>
    {% for c in d.competitors %}<tr><td>{{ c.brand }}</td><td class="num">{{ c.volume }}</td>
      <td class="num">{{ change(c.change_pct, c.previous_volume, short=True) }}</td>
      <td class="num">{{ spct(c.sentiment, 'positive') }}</td><td class="num">{{ spct(c.sentiment, 'negative') }}</td>
      <td class="num">{{ net(c.sentiment.net) }}</td></tr>{% endfor %}
    </tbody></table></div>
  {% endif %}

  <h3>Top complaint themes</h3>
  {% if d.themes %}{% for t in d.themes %}<div class="theme">
    <span class="term">{{ t.term }}</span> <span class="muted small">in {{ t.count }} complaint{{ 's' if t.count != 1 }}</span>
    <div class="posts">{% for p in t.examples %}{{ post(p, 'complaint') }}{% endfor %}</div>
  </div>{% endfor %}{% else %}<p class="muted">No recurring complaint themes.</p>{% endif %}

  <h3>Most-reached complaints</h3>
  {% if d.top_complaints %}<div class="posts">{% for p in d.top_complaints %}{{ post(p, 'complaint') }}{% endfor %}</div>
  {% else %}<p class="muted">No complaints in this period.</p>{% endif %}

  <h3>Most-reached praise</h3>
  {% if d.top_praise %}<div class="posts">{% for p in d.top_praise %}{{ post(p, 'praise') }}{% endfor %}</div>
  {% else %}<p class="muted">No praise in this period.</p>{% endif %}

  <h3>Spikes</h3>
  {% if d.spikes %}<div class="table-wrap"><table>
    <thead><tr><th>Metric</th><th>Start</th><th>Peak</th><th>End</th><th class="num">Peak size</th><th>Top terms</th></tr></thead>
    <tbody>{% for x in d.spikes %}<tr><td>{{ x.metric }} (level {{ x.level }})</td><td>{{ when(x.started_at) }}</td>
      <td>{{ when(x.peak_at) }}</td><td>{{ when(x.resolved_at) if x.resolved_at else 'still open' }}</td>
      <td class="num">{{ count(x.peak_count) }} vs {{ '%.1f'|format(x.expected) }} expected</td>
      <td>{{ x.top_terms|join(', ') }}</td></tr>{% endfor %}
    </tbody></table></div>{% else %}<p class="muted">No spikes in this period.</p>{% endif %}

  <h3>Team handling</h3>
  {% set h = d.handling %}
  <div class="table-wrap"><table>
    <tbody>
      <tr><td>Alerts raised</td><td class="num">{{ h.raised }}</td>
        <td class="muted small">{% for k, n in h.by_kind|dictsort %}{{ k }} {{ n }}{{ ', ' if not loop.last }}{% endfor %}</td></tr>
      <tr><td>Claimed</td><td class="num">{{ h.claimed }}</td><td class="small">median {{ duration(h.claim_median) }},
        p90 {{ duration(h.claim_p90) }} to claim</td></tr>
      <tr><td>Handled</td><td class="num">{{ h.handled }}</td><td class="small">median {{ duration(h.handle_median) }},
        p90 {{ duration(h.handle_p90) }} to handle</td></tr>
      <tr><td>Not relevant</td><td class="num">{{ h.not_relevant }}</td><td></td></tr>
      <tr><td>Still open</td><td class="num">{{ h.open }}</td><td></td></tr>
    </tbody></table></div>
</section>
{% endfor %}
<footer class="muted small">repmon sentiment digest · {{ period.label }}.
  Shares are over scored mentions; copies (retweets, syndicated news) and the brand's own posts are not counted.</footer>
</main>
</body>
</html>
"""

_POST = """<div class="post {{ kind }}">
  <div class="small muted">{{ source }} · {{ author }}{% if followers %} · {{ followers }} followers{% endif %}
    · {{ when }}{% if rating %} · rated {{ rating }}{% endif %}</div>
  <div class="text">{{ text }}</div>
  {% if url %}<a href="{{ url }}" rel="noopener noreferrer nofollow" target="_blank">open post</a>{% endif %}
</div>"""


def _environment() -> Environment:
    # autoescape=True for everything: these templates only ever produce HTML.
    return Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _text(text: str | None, limit: int = POST_TEXT_LIMIT) -> str:
    """Untrusted text cleaned of control/bidi characters, blank-line runs collapsed, shortened
    (before a URL rather than through it, as in Slack: half an address is a wrong address)."""
    return shorten(_BLANK_LINES.sub("\n\n", clean(text or "")).strip(), limit)


def _http_url(url: str | None) -> str | None:
    """The URL when it is a plain http(s) link to a host (the raw URL: Jinja escapes it), else None."""
    return url.strip() if url and safe_url(url) is not None else None


def _change(pct: float | None, previous: int, *, short: bool = False) -> str:
    if short:
        return format_change(pct)
    if pct is None:
        return "new: nothing in the previous period"
    if pct == 0 and previous == 0:
        return "±0%: nothing in this or the previous period"
    return f"{format_change(pct)} vs previous period ({previous})"


def _sentiment_pct(sentiment: SentimentShare, label: str) -> str:
    """The displayed share of ``label``: whole percents that sum to 100 over the three labels."""
    return format_percent(sentiment.percent(label))


def _helpers(period: Period) -> dict[str, Callable[..., Any]]:
    zone = period.zone

    def when(dt: datetime | None) -> str:
        return "–" if dt is None else f"{dt.astimezone(zone):%a %d %b %H:%M}"

    return {
        "count": format_count,
        "spct": _sentiment_pct,
        "net": format_net,
        "change": _change,
        "net_change": lambda v: "" if v is None else f"{format_net(v)} points vs previous period",
        "pct_of": lambda n, total: format_share(n / total if total else None),
        "width": lambda share: f"{(share or 0) * 100:.2f}",
        "sign_class": lambda v: "" if v is None or abs(v) < 0.05 else ("good" if v > 0 else "bad"),
        "duration": lambda s: "–" if s is None else format_duration(s),
        "day": lambda d: f"{d:%a} {d.day} {d:%b}",
        "when": when,
    }


def _chart_uri(digest: BrandDigest) -> str | None:
    try:
        from alerts.digest_chart import render_chart_png

        png = render_chart_png(digest)
    except ImportError as exc:  # matplotlib is optional for the HTML report
        log.warning("digest chart skipped (%s); install matplotlib for charts", exc)
        return None
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(
    digests: Sequence[BrandDigest],
    period: Period | tuple[datetime, datetime],
    *,
    charts: bool = True,
    generated_at: datetime | None = None,
) -> str:
    """One self-contained, responsive HTML report of ``digests`` (safe against hostile post text)."""
    timezone = digests[0].period.timezone if digests else "Europe/Amsterdam"
    span = Period.coerce(period, timezone)
    env = _environment()
    helpers = _helpers(span)
    post_template = env.from_string(_POST)

    def post(p: Any, kind: str) -> Markup:
        rating = f"{p.rating:g}/{p.rating_max:g}" if p.rating is not None and p.rating_max else None
        html = post_template.render(
            kind=kind,
            source=source_label(p.source),
            author=_text(p.author, 120),
            followers=format_count(p.followers) if p.followers else None,
            when=helpers["when"](p.created_at),
            rating=rating,
            text=_text(p.text),
            url=_http_url(p.url),
        )
        return Markup(html)  # rendered by an autoescaping template just above

    now = generated_at or datetime.now(UTC)
    return env.from_string(_TEMPLATE).render(
        digests=list(digests),
        period=span,
        charts=[_chart_uri(d) if charts else None for d in digests],
        css=Markup(_CSS),  # our own constant stylesheet, not user text
        csp=CSP,
        generated=f"{now.astimezone(span.zone):%Y-%m-%d %H:%M}",
        post=post,
        **helpers,
    )
