"""``repmon demo``: a week of sample mentions through the real pipeline, in simulated time.

The replayed week is shifted to the last full ISO week, so the digest's default period covers it.
The daemon's clock follows the replay (each cycle moves it to the newest stored mention), which
makes group intervals and spike buckets behave as they would have live, in a minute or two.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from config.loader import parse_config
from monitor import models
from monitor.clock import FakeClock
from monitor.migrate import upgrade
from monitor.notify import build_notifier
from monitor.runtime import Runtime
from sources.text import parse_timestamp

__all__ = ["DEMO_DIR", "digest_path", "last_full_week", "run_demo", "utc_time"]

#: The demo's sample week: beside the package in a checkout, or where REPMON_DEMO_DIR says (the
#: Docker image installs the package without the repository and puts the files there).
DEMO_DIR = Path(
    os.environ.get("REPMON_DEMO_DIR") or Path(__file__).resolve().parents[1] / "examples" / "demo"
)


def last_full_week(now: datetime, zone: str = "Europe/Amsterdam") -> tuple[datetime, datetime]:
    """Start and end (exclusive, UTC) of the last full ISO week in ``zone``."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    monday = (local - timedelta(days=local.weekday() + 7)).date()
    start = datetime.combine(monday, datetime.min.time(), tz)
    end = datetime.combine(monday + timedelta(days=7), datetime.min.time(), tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def utc_time(when: datetime) -> str:
    """``Sat 09:40 UTC``: how the demo summary shows incident times."""
    return f"{when.astimezone(UTC):%a %H:%M} UTC"


def digest_path(workdir: Path, start: datetime, end: datetime, timezone: str) -> Path:
    """Where the demo writes the digest of [start, end): named by the period as the digest shows it.

    The week is a local one, so its UTC start can fall in the ISO week before: the name comes from
    :attr:`alerts.digest.Period.slug` (local time), as the scheduler's files do.
    """
    from alerts.digest import Period

    return workdir / f"digest-{Period(start, end, timezone).slug}.html"


def _shifted_replay(source: Path, target: Path, week_start: datetime) -> int:
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    first = min(parse_timestamp(r["created_at"]) for r in rows)  # type: ignore[type-var]
    assert first is not None
    origin = first.replace(hour=0, minute=0, second=0, microsecond=0)
    delta = week_start - origin
    with target.open("w", encoding="utf-8") as handle:
        for r in rows:
            when = parse_timestamp(r["created_at"])
            assert when is not None
            r["created_at"] = (when + delta).isoformat()
            handle.write(json.dumps(r, ensure_ascii=False) + "\n")
    return len(rows)


def run_demo(workdir: Path, out: Console, *, demo_dir: Path = DEMO_DIR) -> int:
    """Run the demo; returns the exit code."""
    return asyncio.run(_run(workdir, out, demo_dir))


async def _run(workdir: Path, out: Console, demo_dir: Path) -> int:
    if not (demo_dir / "mentions.jsonl").is_file() or not (demo_dir / "demo.yaml").is_file():
        out.print(
            f"the demo's sample files are not in {demo_dir} (an install without the repository's "
            "examples/demo folder); set REPMON_DEMO_DIR to a copy of it",
            markup=False,
        )
        return 2
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in workdir.glob("demo.db*"):
        stale.unlink()
    week_start, week_end = last_full_week(datetime.now(UTC))
    replay = workdir / "mentions.jsonl"
    count = _shifted_replay(demo_dir / "mentions.jsonl", replay, week_start)
    raw = yaml.safe_load((demo_dir / "demo.yaml").read_text(encoding="utf-8"))
    raw["storage"]["url"] = f"sqlite:///{(workdir / 'demo.db').resolve()}"
    raw["sources"][0]["path"] = str(replay.resolve())
    raw["digest"]["html_dir"] = str(workdir.resolve())
    config = parse_config(yaml.safe_dump(raw, allow_unicode=True), str(demo_dir / "demo.yaml"))

    zone = ZoneInfo(config.settings.digest.timezone)
    local_start, local_end = week_start.astimezone(zone), week_end.astimezone(zone)
    out.rule("[bold]repmon demo")
    out.print(
        f"Replaying {count} mentions of {local_start:%Y-%m-%d} – {local_end - timedelta(days=1):%Y-%m-%d} for "
        "Spoorweg Noord (a Dutch railway) and Kettle & Co (an English web shop).\n"
        "Alerts render on the console exactly as they would go to Slack. Time is simulated.\n"
    )
    clock = FakeClock(week_start)
    notifier = build_notifier(config.settings, {}, stream=sys.stdout)
    runtime = Runtime(config, notifier=notifier, clock=clock, env={})
    upgrade(runtime.db)
    out.print(f"classifier: {runtime.classifier.model_id}\n")
    coordinator = next(iter(runtime.coordinators.values()))
    try:
        while True:
            outcome = await coordinator.poll_once()
            if not outcome.ok:
                out.print(f"[red]replay failed: {outcome.error}[/]")
                return 1
            with runtime.db.session() as session:
                newest = session.execute(select(func.max(models.Mention.created_at))).scalar()
            if newest is not None and newest > clock.now():
                clock.set(newest)
            await runtime.process()
            if not outcome.more:
                break
        # Let the last group intervals and the last buckets close, as a live daemon would.
        for _ in range(10):
            clock.advance(config.settings.alerts.group_interval + 60)
            await runtime.process()
            if not runtime.delivery.pending():
                break
        _summary(runtime, out)
        html = await asyncio.to_thread(_digest, runtime, week_start, week_end, workdir)
        if html is not None:
            out.print(f"\nWeekly digest written to [bold]{html}[/] (open it in a browser).")
    finally:
        await runtime.aclose()
    return 0


def _summary(runtime: Runtime, out: Console) -> None:
    with runtime.db.session() as session:
        by_brand = session.execute(
            select(models.MentionBrand.brand, models.Score.sentiment, func.count())
            .join(models.Score, models.Score.mention_id == models.MentionBrand.mention_id)
            .group_by(models.MentionBrand.brand, models.Score.sentiment)
        ).all()
        alerts = session.execute(
            select(models.Alert.kind, models.Alert.status, func.count()).group_by(
                models.Alert.kind, models.Alert.status
            )
        ).all()
        incidents = list(
            session.execute(select(models.SpikeIncident).order_by(models.SpikeIncident.started_at)).scalars()
        )
        stored = session.execute(select(func.count()).select_from(models.Mention)).scalar_one()
        copies = session.execute(
            select(func.count()).where(models.Mention.duplicate_of_id.is_not(None))
        ).scalar_one()
    out.rule("[bold]summary")
    table = Table(
        "brand", "negative", "neutral", "positive", title=f"{stored} mentions stored ({copies} copies linked)"
    )
    brands: dict[str, dict[str, int]] = {}
    for brand, sentiment, n in by_brand:
        brands.setdefault(brand, {})[sentiment] = n
    for brand, counts in sorted(brands.items()):
        table.add_row(brand, *(str(counts.get(s, 0)) for s in ("negative", "neutral", "positive")))
    out.print(table)
    alert_table = Table("alert kind", "status", "count")
    for kind, status, n in sorted(alerts):
        alert_table.add_row(kind, status, str(n))
    out.print(alert_table)

    def inside_crisis(total: models.SpikeIncident) -> bool:  # as the spike stage decides it
        return any(
            c.brand == total.brand
            and c.metric == "negative"
            and c.started_at <= total.started_at + timedelta(minutes=10)
            and (c.resolved_at is None or c.resolved_at >= total.started_at)
            for c in incidents
        )

    for inc in incidents:
        end = f"resolved {utc_time(inc.resolved_at)}" if inc.resolved_at else "still open"
        what = "crisis" if inc.metric == "negative" else "volume spike"
        covered = (
            " (inside the crisis: not alerted on its own)"
            if inc.metric == "total" and inside_crisis(inc)
            else ""
        )
        out.print(
            f"{what}: {inc.brand} ({inc.metric}) from {utc_time(inc.started_at)}, peak {inc.peak_count:.0f} "
            f"per 5 min vs {inc.expected:.1f} expected, level {inc.level}, {end}{covered}"
        )


def _digest(runtime: Runtime, start: datetime, end: datetime, workdir: Path) -> Path | None:
    try:
        from alerts.digest import build_digest
        from alerts.digest_html import render_html
    except ImportError:
        return None
    digests = [
        build_digest(runtime.db, runtime.settings, b.name, start, end)
        for b in runtime.settings.brands
        if not b.competitor
    ]
    path = digest_path(workdir, start, end, runtime.settings.digest.timezone)
    path.write_text(render_html(digests, (start, end)), encoding="utf-8")
    return path
