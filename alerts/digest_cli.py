"""``repmon digest``: the sentiment digest for any period, printed, written as HTML and/or posted to Slack."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape as markup_escape
from rich.table import Table

from alerts.digest import BrandDigest, Period, format_change, format_net, format_percent
from alerts.escape import clean, safe_url, shorten

__all__ = ["digest_command", "print_digest", "resolve_period"]


def resolve_period(
    first: date | None, last: date | None, timezone: str, now: datetime | None = None
) -> Period:
    """The period for ``--from``/``--to`` (local days, ``last`` inclusive); default the last full ISO week.

    With only one of them given the period is the week that starts or ends on it.
    """
    if first is None and last is None:
        return Period.last_full_week(now or datetime.now(UTC), timezone)
    if first is None:
        assert last is not None
        first = last - timedelta(days=6)
    if last is None:
        last = first + timedelta(days=6)
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    return Period.from_dates(first, last, timezone)


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; write YYYY-MM-DD", param_hint=option) from None


def _duration(seconds: float | None) -> str:
    from alerts.render import format_duration

    return "–" if seconds is None else format_duration(seconds)


def print_digest(digest: BrandDigest, console: Console) -> None:
    """A readable terminal summary of one brand's digest (post text cleaned of terminal escapes, never markup)."""
    s = digest.sentiment
    console.rule(f"[bold]{markup_escape(digest.brand)}[/] · {digest.period.label}", style="blue")
    for note in digest.notes:
        console.print(f"[yellow]note:[/] {markup_escape(note)}")
    head = Table.grid(padding=(0, 3))
    head.add_row(
        f"mentions [bold]{digest.volume}[/] ({format_change(digest.change_pct)} vs {digest.previous_volume})",
        f"net sentiment [bold]{format_net(s.net)}[/]",
        f"positive {format_percent(s.percent('positive'))} · neutral {format_percent(s.percent('neutral'))} · "
        f"negative {format_percent(s.percent('negative'))}"
        + (f" · {s.unscored} unscored" if s.unscored else ""),
    )
    head.add_row(
        f"complaints [bold]{digest.complaints}[/]",
        f"praise [bold]{digest.praise}[/]",
        f"spikes [bold]{len(digest.spikes)}[/]",
    )
    console.print(head)
    if digest.trend:
        trend = Table("day", "mentions", "pos", "neu", "neg", "net", box=None, header_style="bold")
        for p in digest.trend:
            trend.add_row(
                f"{p.day:%a %d %b}",
                str(p.total),
                str(p.sentiment.positive),
                str(p.sentiment.neutral),
                str(p.sentiment.negative),
                format_net(p.net),
            )
        console.print(trend)
    if digest.by_source:
        sources = ", ".join(f"{v.label} {v.count} ({format_change(v.change_pct)})" for v in digest.by_source)
        console.print(f"by source: {sources}", highlight=False, markup=False)
    for c in digest.competitors:
        console.print(
            f"vs {c.brand}: {c.volume} mentions ({format_change(c.change_pct)}), net {format_net(c.sentiment.net)}",
            highlight=False,
            markup=False,
        )
    if digest.themes:
        console.print("[bold]top complaint themes:[/]")
        for theme in digest.themes:
            console.print(f"  {clean(theme.term)} ({theme.count})", highlight=False, markup=False)
    for title, posts in (
        ("most-reached complaints", digest.top_complaints),
        ("most-reached praise", digest.top_praise),
    ):
        if posts:
            console.print(f"[bold]{title}:[/]")
            for post in posts[:3]:
                text = shorten(" ".join(clean(post.text).split()), 140)
                url = safe_url(post.url) and clean(post.url or "")
                console.print(f"  {clean(post.author)}: {text} {url or ''}", highlight=False, markup=False)
    for x in digest.spikes:
        end = f"{x.resolved_at.astimezone(digest.period.zone):%a %H:%M}" if x.resolved_at else "still open"
        console.print(
            f"spike ({x.metric}) {x.started_at.astimezone(digest.period.zone):%a %d %b %H:%M} → {end}, "
            f"peak {x.peak_count:.0f} vs {x.expected:.1f} expected; {clean(', '.join(x.top_terms))}",
            highlight=False,
            markup=False,
        )
    h = digest.handling
    console.print(
        f"team: {h.raised} alerts, {h.claimed} claimed, {h.handled} handled, {h.not_relevant} not relevant; "
        f"claim median {_duration(h.claim_median)} / p90 {_duration(h.claim_p90)}, "
        f"handle median {_duration(h.handle_median)} / p90 {_duration(h.handle_p90)}",
        highlight=False,
    )


def digest_command(
    brand: Annotated[
        list[str] | None,
        typer.Option("--brand", "-b", help="Only this brand (repeatable); default all own brands."),
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="First day, YYYY-MM-DD (digest timezone).")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD, inclusive.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report to this file.")] = None,
    slack: Annotated[
        bool, typer.Option("--slack", help="Post the digest to the digest Slack channel.")
    ] = False,
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="Include charts (matplotlib).")] = True,
    config: Path = typer.Option(  # noqa: B008 - typer's documented way to declare an option
        Path("repmon.yaml"), "--config", "-c", envvar="REPMON_CONFIG", help="YAML configuration file."
    ),
) -> None:
    """Build the sentiment digest for a period (default: last full ISO week) and print, write or post it."""
    from config.loader import ConfigError, load_config
    from monitor.db import Database, database_url, redact_url

    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        loaded = load_config(config)
    except ConfigError as exc:
        err.print("[bold red]configuration error[/]:")
        for issue in exc.issues:
            err.print(f"  {issue}", markup=False)
        raise typer.Exit(2) from None
    settings = loaded.settings
    try:
        period = resolve_period(
            _parse_date(from_, "--from"), _parse_date(to, "--to"), settings.digest.timezone
        )
    except ValueError as exc:
        err.print(f"[red]{exc}[/]", markup=True)
        raise typer.Exit(2) from None
    known = [b.name for b in settings.brands]
    names = list(brand) if brand else [b.name for b in settings.brands if not b.competitor]
    unknown = [n for n in names if n not in known]
    if unknown:
        err.print(
            f"unknown brand(s): {', '.join(unknown)}; configured: {', '.join(known) or 'none'}", markup=False
        )
        raise typer.Exit(2)
    token = os.environ.get(settings.slack.token_env) if slack else None
    if slack and not token:
        err.print(
            f"--slack needs a Slack bot token in the environment variable {settings.slack.token_env}; "
            "set it (or drop --slack)",
            markup=False,
        )
        raise typer.Exit(2)

    db = Database(database_url(settings.storage))
    try:
        if not db.has_schema():
            err.print(
                f"the database {redact_url(db.url)} has no tables yet; run `repmon db upgrade` first",
                markup=False,
            )
            raise typer.Exit(1)
        from alerts.digest import build_digests

        digests = build_digests(db, settings, period, names)
    finally:
        db.dispose()

    for digest in digests:
        print_digest(digest, out)
    if html is not None:
        from alerts.digest_html import render_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(digests, period, charts=charts), encoding="utf-8")
        out.print(f"HTML report written to {html}", markup=False)
    if slack and token:
        import aiohttp
        from slack_sdk.errors import SlackApiError

        from alerts.digest_slack import make_client, post_digest

        channel = settings.digest.channel or settings.slack.default_channel
        try:
            posted = asyncio.run(
                post_digest(make_client(token, settings.slack.api_url), channel, digests, charts=charts)
            )
        except SlackApiError as exc:
            err.print(f"Slack refused the digest: {exc.response.get('error')}", markup=False)
            raise typer.Exit(1) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # The API is unreachable (proxy down, wrong slack.api_url): one line, not a traceback.
            err.print(f"Slack unreachable at {settings.slack.api_url}: {exc}", markup=False)
            raise typer.Exit(1) from None
        for p in posted:
            chart = (
                f", chart {p.file_id}"
                if p.file_id
                else (f", chart failed: {p.chart_error}" if p.chart_error else "")
            )
            out.print(f"posted {p.brand} to {channel} (ts {p.ts}{chart})", markup=False)
