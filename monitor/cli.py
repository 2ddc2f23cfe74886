"""The ``repmon`` command line."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO, get_args

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from config.loader import ConfigError, LoadedConfig, load_config
from config.settings import parse_duration

if TYPE_CHECKING:
    from prometheus_client import Counter

    from monitor.db import Database
    from monitor.runtime import CycleSummary, Runtime

__all__ = ["app", "main"]

app = typer.Typer(
    name="repmon",
    help="Reputation monitoring for webcare teams: mentions in, Slack alerts and digests out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
watchlist_app = typer.Typer(help="Try watchlist changes before they go live.", no_args_is_help=True)
silence_app = typer.Typer(help="Mute alerts for a while (Alertmanager-style silences).", no_args_is_help=True)
alerts_app = typer.Typer(help="The alert outbox: failed deliveries.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks with a fixed input/output contract.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(watchlist_app, name="watchlist")
app.add_typer(silence_app, name="silence")
app.add_typer(alerts_app, name="alerts")
app.add_typer(bench_app, name="bench")

out = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", "-c", envvar="REPMON_CONFIG", help="YAML configuration file.", show_default=True
    ),
]
DEFAULT_CONFIG = Path("repmon.yaml")
log = logging.getLogger("repmon.cli")


#: The labels every alert carries, which silences can match on.
SILENCE_LABELS = ("brand", "kind", "source", "severity", "metric")
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)(.*)$", re.DOTALL)


def _load(path: Path, option: str = "--config") -> LoadedConfig:
    """Load configuration or exit 2 with every problem listed (``option`` named the file)."""
    try:
        return load_config(path, option=option)
    except ConfigError as exc:
        err.print(
            f"[bold red]configuration error[/] ({len(exc.issues)} problem{'s' if len(exc.issues) != 1 else ''}):"
        )
        for issue in exc.issues:
            err.print(f"  {issue}", markup=False, highlight=False)
        raise typer.Exit(2) from None


def _database_error_types() -> tuple[type[BaseException], ...]:
    """What opening or using the database raises when the operator may have something to fix.

    SQLAlchemy's operational and schema errors, an unusable URL (ArgumentError, NoSuchModuleError),
    a database driver that is not installed (ImportError) and a SQLite directory that cannot be
    created (OSError); :func:`_report_database_error` decides which of them really are the operator's.
    """
    from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

    return (OperationalError, ProgrammingError, ArgumentError, ImportError, OSError)


@contextmanager
def _database_errors(config: LoadedConfig) -> Iterator[None]:
    """Turn a database without tables, or one that cannot be reached or used, into one line and exit 1.

    Every command that reads or writes the database runs inside this, so an operator sees what to
    do instead of a SQLAlchemy traceback, and never the database password.
    """
    try:
        yield
    except _database_error_types() as exc:
        if not _report_database_error(exc, config):
            raise  # a malformed statement is a bug, not an operator's problem: keep the traceback
        raise typer.Exit(1) from None


def _report_database_error(exc: BaseException, config: LoadedConfig) -> bool:
    """Print what the operator can do about ``exc``; False when it is not theirs to fix (a bug)."""
    from sqlalchemy.exc import OperationalError

    from config.urls import database_url_problem
    from monitor.checks import error_cause
    from monitor.db import database_url, redact_url

    url = database_url(config.settings.storage)
    if isinstance(exc, OSError):
        folder = _sqlite_folder(url)
        if folder is None or exc.filename is None or not folder.is_relative_to(Path(exc.filename)):
            return False  # not about the database (a file of another setting, the network …)
        text = f"database {redact_url(url)} cannot be created in {folder}: {exc.strerror or exc}"
    elif not isinstance(exc, OperationalError) and not _missing_schema(exc):
        # an unusable URL (postgres://, a driver not installed), most likely from url_env, which
        # is read at run time: storage.url itself is checked when the configuration loads
        problem = database_url_problem(url)
        if problem is None:
            return False
        text = f"database URL {redact_url(url)} cannot be used: {problem}"
    elif _missing_schema(exc):
        text = f"the database {redact_url(url)} has no tables yet; run `repmon db upgrade` first"
    else:
        text = f"database {redact_url(url)} unreachable: {error_cause(exc, url)}"
    err.print(text, markup=False, highlight=False, soft_wrap=True)
    return True


def _sqlite_folder(url: str) -> Path | None:
    """The folder of a SQLite database file (None for other databases and in-memory ones)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - an unusable URL has no folder; its own error says why
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).absolute().parent


def _database(config: LoadedConfig) -> Database:
    """The configured database (no connection yet); a URL that cannot be used is one line and exit 1."""
    from monitor.db import Database, database_url

    with _database_errors(config):
        return Database(database_url(config.settings.storage))


def _with_database_errors(command: Callable[..., None]) -> Callable[..., None]:
    """``command``, which loads its own ``--config``, with database problems as one line and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except _database_error_types() as exc:
            try:
                config = load_config(kwargs["config"])
            except (KeyError, ConfigError):
                raise exc from None
            if not _report_database_error(exc, config):
                raise
            raise typer.Exit(1) from None

    return wrapper


def _missing_schema(exc: BaseException) -> bool:
    """Whether a database error says a table does not exist (SQLite, PostgreSQL 42P01)."""
    orig = getattr(exc, "orig", None)
    if "42P01" in (getattr(orig, "sqlstate", None), getattr(orig, "pgcode", None)):
        return True
    return "no such table" in str(orig if orig is not None else exc)


def _logging(level: str) -> None:
    from monitor.logs import setup_logging

    setup_logging(level)


def _runtime(config: LoadedConfig, *, upgrade: bool = True, console: TextIO | None = None) -> Runtime:
    """The runtime for ``config``; alerts that go to the console are printed on ``console``."""
    from monitor.migrate import upgrade as db_upgrade
    from monitor.notify import build_notifier
    from monitor.runtime import Runtime

    # A factory, not a receiver: a reload that changes alerts.*/slack.* builds a new one.
    runtime = Runtime(
        config, notifier_factory=lambda settings: build_notifier(settings, os.environ, stream=console)
    )
    if upgrade:
        db_upgrade(runtime.db)
    return runtime


@app.command()
def run(
    config: ConfigOption = DEFAULT_CONFIG,
    role: Annotated[list[str] | None, typer.Option(help="poll, classify, alert or all (repeatable).")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING.")] = "INFO",
) -> None:
    """Run the daemon until SIGTERM/SIGINT; SIGHUP or editing the file reloads the configuration."""
    from monitor.daemon import Daemon

    _logging(log_level)
    loaded = _load(config)
    roles = set(role or ["all"])
    if "all" in roles:
        roles = {"poll", "classify", "alert"}
    unknown = roles - {"poll", "classify", "alert"}
    if unknown:
        err.print(f"unknown role(s): {', '.join(sorted(unknown))}; use poll, classify, alert or all")
        raise typer.Exit(2)
    with _database_errors(loaded):
        runtime = _runtime(loaded)

    async def main_() -> None:
        extra = []
        if "alert" in roles and loaded.settings.digest.enabled:
            from monitor.digest_schedule import digest_task

            extra.append(digest_task(runtime))
        if "alert" in roles:
            from monitor.daemon import socket_mode_task

            buttons = socket_mode_task(runtime)
            if buttons is not None:
                extra.append(buttons)
        daemon = Daemon(runtime, config_path=config, roles=frozenset(roles), extra_tasks=extra)
        await daemon.run()

    from monitor.runtime import run_daemon

    run_daemon(main_())  # unlike asyncio.run, never waits forever for a hung database call


@app.command()
def once(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING.")] = "WARNING",
) -> None:
    """Poll every source once, process until all queues are empty, then exit (cron, tests)."""
    _logging(log_level)
    loaded = _load(config)
    with _database_errors(loaded):
        # with --json, stdout carries the summary alone: console alerts go to stderr
        runtime = _runtime(loaded, console=sys.stderr if as_json else None)

        async def main_() -> CycleSummary:
            try:
                return await runtime.run_once()
            finally:
                await runtime.aclose()

        summary = asyncio.run(main_())
    errors = {p.source: p.error for p in summary.polls if p.error}
    delivery_failures = _counter_total(runtime.metrics.alerts_failed)
    result = {
        "polled": len(summary.polls),
        "stored": summary.stored,
        "scored": summary.scored,
        "alerts_delivered": summary.delivered,
        "delivery_failures": delivery_failures,
        "spike_events": summary.spike_events,
        "failed_sources": summary.failed_sources,
        "errors": errors,
        "classifier_error": summary.classifier_error,
    }
    if summary.classifier_error:
        # Never scored as 'neutral': the mentions wait for a classifier that loads.
        err.print(
            f"classifier unavailable: {summary.classifier_error}; new mentions stay unscored "
            "(check classifier.* in the configuration)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if as_json:
        print(json.dumps(result))
    else:
        out.print(
            f"polled {result['polled']} time(s), stored {summary.stored} new mentions, scored {summary.scored}, "
            f"delivered {summary.delivered} alerts, {summary.spike_events} spike events"
        )
        for source, error in errors.items():
            out.print(f"[yellow]source {source} failed:[/] {error}", highlight=False)
        if delivery_failures:
            out.print(
                f"[yellow]{delivery_failures} alert deliver{'ies' if delivery_failures != 1 else 'y'} failed[/] "
                "(retried later, or parked: `repmon alerts failed`)",
                highlight=False,
            )
    # Cron and scripts see a failed run: all work is done and summarised first, then exit 1.
    raise typer.Exit(1 if summary.failed_sources or delivery_failures or summary.classifier_error else 0)


def _counter_total(counter: Counter) -> int:
    """The sum of a labelled Prometheus counter over all its label values."""
    return int(
        sum(s.value for metric in counter.collect() for s in metric.samples if s.name.endswith("_total"))
    )


@app.command()
def check(
    config: ConfigOption = DEFAULT_CONFIG,
    online: Annotated[
        bool, typer.Option(help="Also contact each source and Slack to test reachability.")
    ] = False,
) -> None:
    """Validate the configuration and show what it sets up; exit 2 when it is invalid."""
    from monitor.checks import run_checks

    loaded = _load(config)
    ok = asyncio.run(run_checks(loaded, os.environ, out, online=online))
    raise typer.Exit(0 if ok else 1)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = DEFAULT_CONFIG, revision: str = "head") -> None:
    """Create or migrate the database schema (idempotent)."""
    from monitor.db import redact_url
    from monitor.migrate import upgrade

    loaded = _load(config)
    db = _database(loaded)
    with _database_errors(loaded):
        upgrade(db, revision)
    out.print(f"database {redact_url(db.url)} is at revision {revision}")


@watchlist_app.command("test")
def watchlist_test(
    brand: Annotated[str | None, typer.Argument(help="Only this brand.")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Proposed configuration to compare.")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="Stored mentions of the last N days.")] = 7,
    samples: Annotated[int, typer.Option(min=0, help="Examples shown per change.")] = 5,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show what a changed watchlist would add and drop on stored mentions, before it goes live."""
    from monitor.backtest import backtest, print_backtest

    current = _load(config)
    proposed = _load(file, "--file") if file else current
    known = list(dict.fromkeys(b.name for c in (current, proposed) for b in c.settings.brands))
    if brand is not None and brand not in known:
        same = [k for k in known if k.casefold() == brand.casefold()]
        if len(same) != 1:  # none, or several brands differing only in case
            err.print(f"unknown brand: {brand}; configured: {', '.join(known) or 'none'}", markup=False)
            raise typer.Exit(2)
        brand = same[0]
    with _database_errors(current):
        report = backtest(current, proposed, brand=brand, days=days, samples=samples)
    if as_json:
        print(json.dumps(report, default=str))
    else:
        print_backtest(report, out)


@watchlist_app.command("explain")
def watchlist_explain(
    query: Annotated[str, typer.Argument(help="A boolean query.")],
    text: Annotated[str, typer.Argument(help="The post text to test.")],
    title: Annotated[str | None, typer.Option(help="Title of the post (reviews, feeds, Reddit).")] = None,
    lang: Annotated[
        str | None, typer.Option(help="Language of the post (detected, as when matching, when not given).")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Source type of the post (x, reddit, rss, ...).")] = None,
    author: Annotated[str | None, typer.Option(help="Author handle.")] = None,
    author_name: Annotated[str | None, typer.Option(help="Author display name.")] = None,
    url: Annotated[str | None, typer.Option(help="URL of the post.")] = None,
) -> None:
    """Explain which clause of a query matches a text, and why."""
    from classifiers.langid import language_hint
    from config.query import Document, QuerySyntaxError, compile_query, explain, uses_language
    from config.query_parser import normalize_field_value
    from monitor.watch import Watchlist

    doc = Document(
        text=text,
        title=title,
        lang=language_hint(lang),
        source=normalize_field_value("source", source) if source else None,
        author=author,
        author_name=author_name,
        url=url,
    )
    try:
        if doc.lang is None and uses_language(compile_query(query).node):
            doc = replace(doc, lang=Watchlist([]).language_of(doc))
            print(f"lang:   {doc.lang or 'unknown'} (detected, as when matching; --lang to set it)")
        result = explain(query, doc)
    except QuerySyntaxError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None
    print(result.render())
    raise typer.Exit(0 if result.matched else 1)


@silence_app.command("add")
def silence_add(
    match: Annotated[list[str], typer.Argument(help="Label matchers like brand=Acme kind=praise.")],
    duration: Annotated[str, typer.Option(help="How long, e.g. 2h, 30m, 1d.")] = "2h",
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    by: Annotated[str, typer.Option(help="Who.")] = os.environ.get("USER", "operator"),
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Silence alerts whose labels match, until the duration expires."""
    from monitor import models

    matchers = _parse_matchers(match)
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    loaded = _load(config)
    for warning in _matcher_warnings(matchers, [b.name for b in loaded.settings.brands]):
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    db = _database(loaded)
    now = datetime.now(UTC)
    with _database_errors(loaded), db.session() as session:
        silence = models.Silence(
            matchers=matchers,
            comment=comment,
            created_by=by,
            starts_at=now,
            ends_at=now + timedelta(seconds=seconds),
        )
        session.add(silence)
        session.flush()
        out.print(f"silence #{silence.id} for {matchers} until {silence.ends_at:%Y-%m-%d %H:%M} UTC")


def _parse_matchers(items: list[str]) -> dict[str, str]:
    """Equality matchers from ``label=value`` arguments; exit 2 on anything a silence cannot match."""
    labels = ", ".join(SILENCE_LABELS)
    matchers: dict[str, str] = {}
    for item in items:
        parsed = _MATCHER.match(item)
        if parsed is None:
            err.print(f"{item!r} is not a matcher; write label=value (labels: {labels})", markup=False)
            raise typer.Exit(2)
        key, op, value = parsed.group(1), parsed.group(2), parsed.group(3).strip()
        if op != "=":
            # Silences match labels exactly (Alertmanager's =); negative and regex matchers would
            # otherwise be stored as a label "brand!" or a value "~x" that never matches anything.
            err.print(
                f"{item!r}: the operator {op} is not supported; silences match exact values (label=value)",
                markup=False,
            )
            raise typer.Exit(2)
        if key not in SILENCE_LABELS:
            err.print(f"{item!r}: unknown label {key!r}; labels: {labels}", markup=False)
            raise typer.Exit(2)
        if not value:
            err.print(f"{item!r}: empty value; write {key}=VALUE", markup=False)
            raise typer.Exit(2)
        if key in matchers and matchers[key] != value:
            err.print(
                f"{key} is given twice ({matchers[key]!r} and {value!r}); no alert can match both",
                markup=False,
            )
            raise typer.Exit(2)
        matchers[key] = value
    return matchers


def _matcher_warnings(matchers: dict[str, str], brands: list[str]) -> list[str]:
    """Matchers that are valid but probably mistaken: a brand or kind no alert will carry."""
    from alerts.model import AlertKind

    warnings: list[str] = []
    brand = matchers.get("brand")
    if brand is not None and brand not in brands:
        close = [b for b in brands if b.casefold() == brand.casefold()]
        hint = f"did you mean {close[0]!r}?" if close else f"configured: {', '.join(brands) or 'none'}"
        warnings.append(f"brand {brand!r} is not a configured brand (names are case-sensitive); {hint}")
    kinds = get_args(AlertKind)
    kind = matchers.get("kind")
    if kind is not None and kind not in kinds:
        warnings.append(f"kind {kind!r} is not an alert kind; kinds: {', '.join(kinds)}")
    return warnings


@silence_app.command("list")
def silence_list(
    config: ConfigOption = DEFAULT_CONFIG, all_: Annotated[bool, typer.Option("--all")] = False
) -> None:
    """List active silences (or all with --all)."""
    from sqlalchemy import select

    from monitor import models

    loaded = _load(config)
    db = _database(loaded)
    now = datetime.now(UTC)
    table = Table("id", "matchers", "until (UTC)", "by", "comment")
    with _database_errors(loaded), db.session() as session:
        stmt = select(models.Silence).order_by(models.Silence.id)
        if not all_:
            stmt = stmt.where(models.Silence.ends_at > now)
        for s in session.execute(stmt).scalars():
            table.add_row(
                str(s.id),
                " ".join(f"{k}={v}" for k, v in s.matchers.items()),
                f"{s.ends_at:%Y-%m-%d %H:%M}",
                s.created_by,
                s.comment,
            )
    out.print(table)


@silence_app.command("expire")
def silence_expire(silence_id: int, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """End a silence now."""
    from monitor import models

    loaded = _load(config)
    db = _database(loaded)
    with _database_errors(loaded), db.session() as session:
        silence = session.get(models.Silence, silence_id)
        if silence is None:
            err.print(f"no silence #{silence_id}")
            raise typer.Exit(1)
        silence.ends_at = datetime.now(UTC)
    out.print(f"silence #{silence_id} expired")


@alerts_app.command("failed")
def alerts_failed(
    config: ConfigOption = DEFAULT_CONFIG,
    limit: Annotated[int, typer.Option(help="Show at most this many, newest first.")] = 50,
) -> None:
    """List alerts whose delivery was given up (permanent error, or failing past give_up_after)."""
    from sqlalchemy import select

    from monitor import models

    loaded = _load(config)
    db = _database(loaded)
    table = Table("id", "raised (UTC)", "brand", "kind", "channel", "attempts", "last error")
    with _database_errors(loaded), db.session() as session:
        rows = session.execute(
            select(models.Alert)
            .where(models.Alert.status == "failed")
            .order_by(models.Alert.created_at.desc())
            .limit(limit)
        ).scalars()
        for a in rows:
            table.add_row(
                str(a.id),
                f"{a.created_at:%Y-%m-%d %H:%M}",
                a.brand or "",
                a.kind,
                a.channel,
                str(a.attempts),
                (a.last_error or "")[:80],
            )
    out.print(table)


@alerts_app.command("retry")
def alerts_retry(
    ids: Annotated[list[int] | None, typer.Argument(help="Alert ids (default: every failed alert).")] = None,
    brand: Annotated[str | None, typer.Option(help="Only this brand's failed alerts.")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Give failed alerts one more delivery attempt (the running daemon sends them)."""
    from sqlalchemy import select

    from monitor import models
    from monitor.outbox import retry_failed

    loaded = _load(config)
    db = _database(loaded)
    with _database_errors(loaded):
        if ids:
            # Say which of the given ids cannot be retried (unknown, or not parked as failed).
            with db.read_session() as session:
                rows = session.execute(
                    select(models.Alert.id, models.Alert.status, models.Alert.brand).where(
                        models.Alert.id.in_(ids)
                    )
                ).all()
            found = {row.id: row for row in rows}
            for alert_id in dict.fromkeys(ids):
                row = found.get(alert_id)
                if row is None:
                    err.print(f"alert #{alert_id} not found", highlight=False)
                elif row.status != "failed":
                    err.print(f"alert #{alert_id} is {row.status}, not failed", highlight=False)
                elif brand is not None and row.brand != brand:
                    err.print(f"alert #{alert_id} is not an alert of {brand}", markup=False, highlight=False)
        count = retry_failed(db, datetime.now(UTC), brand=brand, ids=ids or ())
    out.print(f"{count} failed alert{'s' if count != 1 else ''} back in the outbox")
    if ids and count == 0:
        raise typer.Exit(1)


@bench_app.command("spikes")
def bench_spikes(
    input_dir: Annotated[Path, typer.Option("--input", help="Folder of NAME.csv (timestamp,value) series.")],
    output_dir: Annotated[Path, typer.Option("--output", help="Where NAME.csv with anomaly_score go.")],
) -> None:
    """Run the spike detector with default settings over every CSV series (NAB contract)."""
    from alerts.spike_bench import run_benchmark

    if not input_dir.is_dir():
        err.print(f"{input_dir} is not a folder")
        raise typer.Exit(2)
    written = run_benchmark(input_dir, output_dir)
    out.print(f"wrote {len(written)} detection files to {output_dir}")


@app.command("feedback-export")
def feedback_export(
    output: Annotated[Path, typer.Argument(help="JSONL file to write (text, label).")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Export the team's "wrong sentiment" corrections as training data for `repmon train --feedback`."""
    from monitor.feedback import export_feedback

    loaded = _load(config)
    db = _database(loaded)
    with _database_errors(loaded):
        count = export_feedback(db, output)
    out.print(f"wrote {count} corrections to {output}")


@app.command()
def status(
    config: ConfigOption = DEFAULT_CONFIG, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Show source health and queue depths from the database."""
    from monitor.status import print_status, status_report

    loaded = _load(config)
    with _database_errors(loaded):
        report = status_report(loaded)
    if as_json:
        print(json.dumps(report, default=str))
    else:
        print_status(report, out)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo database and reports go.")] = Path("var/demo"),
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING.")] = "WARNING",
) -> None:
    """Replay a week of sample mentions for two fictional brands through the real pipeline."""
    from monitor.demo import run_demo

    _logging(log_level)
    code = run_demo(workdir, out)
    raise typer.Exit(code)


def _mount_optional() -> None:
    """Commands whose implementation lives beside its subject (classifiers, digests)."""
    try:
        from classifiers.cli import eval_app, train_command
    except ImportError as exc:  # pragma: no cover - shown in --help so the gap is visible
        log.debug("classifier commands unavailable: %s", exc)
    else:
        app.add_typer(eval_app, name="eval", help="Evaluate a classifier on labelled JSONL.")
        app.command("train", help="(Re)build the classifier heads from labelled JSONL and feedback.")(
            train_command
        )
    try:
        from alerts.digest_cli import digest_command
    except ImportError as exc:  # pragma: no cover
        log.debug("digest command unavailable: %s", exc)
    else:
        app.command("digest", help="Build the sentiment digest for a period (HTML and/or Slack).")(
            _with_database_errors(digest_command)
        )


_mount_optional()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
