"""``repmon watchlist test``: what a changed watchlist would add and drop on stored mentions."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, select

from classifiers.langid import LanguageDetector
from config.loader import LoadedConfig
from monitor import models
from monitor.db import Database, database_url
from monitor.watch import Watchlist
from sources.base import Author, Mention

__all__ = ["backtest", "print_backtest", "row_to_mention"]

#: A change that makes a brand match this many times as many stored mentions as before ...
BROAD_GROWTH = 5.0
#: ... or (nearly) every stored mention ...
BROAD_SHARE = 0.9
#: ... and adds at least this many, is probably too broad (`NOT lang:de`, a lone common word).
#: A term that matches a large share of the store is no warning by itself: sources search for
#: the brands, so the brand's own name matches most stored mentions.
BROAD_MIN_ADDED = 25
#: Terms named as the likely cause of a too-broad change.
BROAD_CAUSES = 3


def row_to_mention(row: models.Mention) -> Mention:
    """Rebuild the source-level mention from a stored row (for re-matching)."""
    return Mention(
        source=row.source,
        external_id=row.external_id,
        text=row.text,
        created_at=row.created_at,
        url=row.url,
        author=Author(handle=row.author_handle, name=row.author_name, followers=row.author_followers),
        title=row.title,
        language=row.language,
        in_reply_to=row.in_reply_to,
        mentioned_handles=tuple(row.mentioned_handles or ()),
    )


def backtest(
    current: LoadedConfig,
    proposed: LoadedConfig,
    *,
    brand: str | None = None,
    days: int = 7,
    samples: int = 5,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Match stored mentions of the last ``days`` with both configurations and compare."""
    now = now or datetime.now(UTC)
    try:
        since = now - timedelta(days=days)
    except OverflowError:  # more days than the calendar has: everything stored
        since = datetime.min.replace(tzinfo=UTC)
    db = Database(database_url(current.settings.storage))
    detector = LanguageDetector()  # one model for both watchlists, loaded only if a lang: needs it
    old = Watchlist(current.settings.brands, detector=detector, sources=current.settings.sources)
    new = Watchlist(proposed.settings.brands, detector=detector, sources=proposed.settings.sources)
    names = sorted({b.name for b in current.settings.brands} | {b.name for b in proposed.settings.brands})
    if brand is not None:
        names = [n for n in names if n == brand]
    per: dict[str, dict[str, Any]] = {
        n: {"current": 0, "proposed": 0, "added": [], "dropped": [], "added_n": 0, "dropped_n": 0}
        for n in names
    }
    added_terms: dict[str, Counter[str]] = {n: Counter() for n in names}
    total = 0
    try:
        with db.session() as session:
            stored = session.execute(
                select(func.count()).where(models.Mention.created_at >= since)
            ).scalar_one()
            rows = session.execute(
                select(models.Mention)
                .where(models.Mention.created_at >= since)
                .order_by(models.Mention.created_at.desc())
            ).scalars()
            for row in rows:
                total += 1
                mention = row_to_mention(row)
                before = {h.brand for h in old.match(mention)}
                after_hits = new.match(mention)
                after = {h.brand for h in after_hits}
                for hit in after_hits:
                    if hit.brand in added_terms and hit.brand not in before:
                        added_terms[hit.brand].update(hit.terms)
                for name in names:
                    entry = per[name]
                    entry["current"] += name in before
                    entry["proposed"] += name in after
                    change = (
                        "added"
                        if name in after and name not in before
                        else "dropped"
                        if name in before and name not in after
                        else None
                    )
                    if change:
                        entry[f"{change}_n"] += 1
                        if len(entry[change]) < samples:
                            entry[change].append(
                                {
                                    "id": row.id,
                                    "source": row.source,
                                    "created_at": row.created_at,
                                    "text": row.text[:200],
                                    "url": row.url,
                                }
                            )
    finally:
        db.dispose()
    broad = [
        {
            "brand": name,
            "current": e["current"],
            "proposed": e["proposed"],
            "share": e["proposed"] / total,
            "terms": [t for t, _ in added_terms[name].most_common(BROAD_CAUSES)],
        }
        for name, e in per.items()
        if _too_broad(e["current"], e["proposed"], e["added_n"], total)
    ]
    return {
        "days": days,
        "since": since,
        "mentions": total,
        "stored": stored,
        "brands": per,
        "too_broad": broad,
    }


def _too_broad(current: int, proposed: int, added: int, total: int) -> bool:
    """Whether a change makes a brand match hugely more stored mentions, or nearly all of them."""
    if added < BROAD_MIN_ADDED:
        return False
    # a new brand (nothing matched before) is judged by its share alone
    return (current > 0 and proposed >= BROAD_GROWTH * current) or proposed >= BROAD_SHARE * total


def print_backtest(report: dict[str, Any], out: Console) -> None:
    """Render a backtest report for operators."""
    out.print(
        f"{report['mentions']} stored mentions since {report['since']:%Y-%m-%d %H:%M} UTC (last {report['days']} days)"
    )
    table = Table("brand", "current", "proposed", "added", "dropped")
    for name, e in report["brands"].items():
        table.add_row(name, str(e["current"]), str(e["proposed"]), f"+{e['added_n']}", f"-{e['dropped_n']}")
    out.print(table)
    for name, e in report["brands"].items():
        for change, colour in (("added", "green"), ("dropped", "red")):
            if e[change]:
                out.print(
                    f"[{colour}]{change} for {name}[/] (showing {len(e[change])} of {e[change + '_n']}):"
                )
                for s in e[change]:
                    out.print(
                        f"  {s['created_at']:%m-%d %H:%M} {s['source']}: {s['text']}",
                        markup=False,
                        highlight=False,
                    )
    for w in report["too_broad"]:
        via = ", ".join(repr(t) for t in w["terms"])
        out.print(
            f"[yellow]warning:[/] {escape(w['brand'])} would match {w['proposed']:,} stored mentions "
            f"instead of {w['current']:,} ({w['share']:.0%} of all stored)"
            + (f", most added ones through {escape(via)}" if via else "")
            + "; too broad? Consider a phrase, a NEAR/n, a positive term next to a NOT, or an exclusion",
            highlight=False,
        )
    if not report["mentions"]:
        out.print("[yellow]no stored mentions in this period: widen --days or let repmon collect first[/]")
