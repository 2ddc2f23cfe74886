"""``repmon check``: validate configuration and report what it sets up, credentials and reachability."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from config.loader import LoadedConfig
from config.settings import BrandSettings
from monitor.db import Database, database_url, redact_url

__all__ = ["broad_query_warnings", "credential_fields", "error_cause", "lossy_keyword_warnings", "run_checks"]


def error_cause(exc: BaseException, url: str) -> str:
    """The first line of the driver's own error behind ``exc``, with the database password hidden."""
    cause: BaseException = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    text = lines[0].strip() if lines else type(cause).__name__
    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001 - an unparsable URL has no password we could hide
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text or type(cause).__name__


def _missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite database file that does not exist yet (None otherwise)."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not a URL we can read: the connection attempt says why
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if os.path.exists(database) else database


def _check_database(url: str, out: Console) -> bool:
    """Connect once and say whether the schema is there; False when unreachable."""
    try:
        db = Database(url)
        schema = db.has_schema()
        db.dispose()
    except (SQLAlchemyError, OSError) as exc:
        out.print(
            f"[red]✗[/] database {escape(redact_url(url))} unreachable: {escape(error_cause(exc, url))}",
            highlight=False,
        )
        return False
    out.print(
        f"[green]✓[/] database {redact_url(url)} reachable" + ("" if schema else " (run `repmon db upgrade`)")
    )
    return True


def broad_query_warnings(brands: Sequence[BrandSettings]) -> list[str]:
    """Brands whose query can match posts without any of its terms (pure NOT, only lang:/source:)."""
    from config.query import compile_query, matches_without_terms

    warnings = []
    for b in brands:
        if b.query and matches_without_terms(compile_query(b.query, fold_diacritics=b.fold_diacritics).node):
            warnings.append(
                f"brand {b.name}: query {b.query!r} matches posts that contain none of its words "
                "(only NOT, lang: or source: decide): every post those filters let through, each "
                f"checked against it; add a positive term, e.g. '{b.name.casefold()} AND ({b.query})', "
                "or move the NOT part to exclude:"
            )
    return warnings


def lossy_keyword_warnings(brands: Sequence[BrandSettings]) -> list[str]:
    """Keywords with characters that matching ignores (`.NET` is the word `net`, `€uro` is `uro`)."""
    from config.tokenize import dropped_characters, tokenize

    warnings = []
    for b in brands:
        for keyword in b.keywords:
            lost = dropped_characters(keyword)
            if lost:
                words = " ".join(t.text for t in tokenize(keyword, fold_diacritics=False) if t.span == 1)
                warnings.append(
                    f"brand {b.name}: keyword {keyword!r} matches as {words!r}: matching ignores "
                    f"{' '.join(lost)!r} (punctuation and symbols only separate words)"
                )
    return warnings


def credential_fields(options: object) -> dict[str, str]:
    """Option fields naming environment variables (``*_env``) and their variable names."""
    data = options.model_dump() if hasattr(options, "model_dump") else {}
    return {k: v for k, v in data.items() if k.endswith("_env") and isinstance(v, str) and v}


async def run_checks(
    config: LoadedConfig, env: Mapping[str, str], out: Console, *, online: bool = False
) -> bool:
    """Print a report; returns False when something needed is missing or unreachable."""
    settings = config.settings
    ok = True
    out.print(f"[green]✓[/] configuration {config.path or ''} is valid")

    url = database_url(settings.storage, env)
    new_file = _missing_sqlite_file(url)
    if new_file is not None:
        # checking creates nothing: a typo in the path would otherwise leave a new, empty
        # database behind and be reported reachable
        out.print(
            f"[yellow]![/] database file {escape(new_file)} does not exist yet; "
            "`repmon db upgrade` (or the daemon) creates it",
            highlight=False,
        )
    else:
        ok = _check_database(url, out) and ok

    if not settings.brands:
        ok = False
        out.print("[yellow]![/] no brands configured: no mention will match and no alert is raised")
    if not settings.sources:
        ok = False
        out.print("[yellow]![/] no sources configured: nothing will be polled")

    brands = Table("brand", "handles", "keywords", "query", "channels", "alerts", title="Brands")
    for b in settings.brands:
        brands.add_row(
            b.name,
            " ".join("@" + h for h in b.handles) or "-",
            str(len(b.keywords)),
            "yes" if b.query else "-",
            " ".join(b.channels) or settings.slack.default_channel,
            "competitor (digest only)" if b.competitor else "yes",
        )
    out.print(brands)
    for warning in [*broad_query_warnings(settings.brands), *lossy_keyword_warnings(settings.brands)]:
        out.print(f"[yellow]![/] {escape(warning)}", highlight=False)

    sources = Table("source", "type", "every", "credentials", "reachable", title="Sources")

    reach: dict[str, str] = {}
    if online:
        reach = await _probe_sources(config, env)
    for s in settings.sources:
        options = config.source_options.get(s.name)
        creds = credential_fields(options)
        data = options.model_dump() if options is not None else {}
        missing = [
            var
            for field, var in creds.items()
            if not env.get(var) and not _readable(data.get(field.removesuffix("_env") + "_file"))
        ]
        optional = getattr(options, "credentials_optional", False)
        if not creds:
            cred_text = "none needed"
        elif missing and not optional:
            cred_text = f"[red]missing {', '.join(missing)}[/]"
            ok = ok and not s.enabled
        elif missing:
            cred_text = f"[yellow]optional, unset: {', '.join(missing)}[/]"
        else:
            cred_text = "[green]set: " + ", ".join(creds.values()) + "[/]"
        reachable = reach.get(s.name, "not checked (use --online)")
        if reachable.startswith("[red]"):
            ok = False
        sources.add_row(s.name, s.type, f"{s.interval:g}s", cred_text, reachable if s.enabled else "disabled")
    out.print(sources)

    slack = settings.slack
    if env.get(slack.token_env):
        line = f"[green]✓[/] Slack bot token set ({slack.token_env}); API {slack.api_url}"
        if online:
            line += " — " + await _probe_slack(env[slack.token_env], slack.api_url)
        out.print(line)
    elif env.get(slack.webhook_url_env):
        out.print(f"[green]✓[/] Slack incoming webhook set ({slack.webhook_url_env})")
    else:
        out.print(
            f"[yellow]![/] no Slack credentials ({slack.token_env} or {slack.webhook_url_env}): alerts go to the console"
        )
    c = settings.classifier
    line = f"classifier: {c.model} (batch {c.batch_size}, {c.device})"
    if c.heads is not None:
        if os.path.isfile(c.heads) and os.access(c.heads, os.R_OK):
            line += f", heads {c.heads}"
        else:
            ok = False
            out.print(f"[red]✗[/] classifier.heads {c.heads} is not a readable file")
    out.print(line)
    return ok


def _readable(path: object) -> bool:
    """Whether a ``*_file`` secret path is set and readable."""
    return isinstance(path, str) and bool(path) and os.access(path, os.R_OK)


async def _probe_sources(config: LoadedConfig, env: Mapping[str, str]) -> dict[str, str]:
    """Poll each enabled source once without storing anything; report how it went."""
    import httpx

    from sources.base import AuthError, SourceContext, SourceError
    from sources.http import USER_AGENT
    from sources.registry import build_source

    def client(**kwargs: object) -> httpx.AsyncClient:
        headers = {"User-Agent": USER_AGENT, **dict(kwargs.pop("headers", None) or {})}  # type: ignore[call-overload]
        return httpx.AsyncClient(headers=headers, **kwargs)  # type: ignore[arg-type]

    from datetime import UTC, datetime

    from monitor.coordinator import PollLimiter

    ctx = SourceContext(env=env, http_client=client, clock=lambda: datetime.now(UTC))
    results: dict[str, str] = {}
    # as polite as the daemon: hundreds of feeds on one host are not all probed at once
    limiter = PollLimiter(config.settings.daemon.max_concurrent_polls)

    async def probe(name: str, type_: str) -> None:
        source = build_source(type_, name, config.source_options[name], ctx)
        try:
            async with limiter.slot():
                result = await asyncio.wait_for(source.poll({}), timeout=30)
            results[name] = f"[green]yes[/] ({len(result.mentions)} items)"
        except AuthError as exc:
            results[name] = f"[red]credentials refused: {exc}[/]"
        except (SourceError, TimeoutError) as exc:
            results[name] = f"[red]no: {type(exc).__name__}: {exc}[/]"
        finally:
            await source.aclose()

    await asyncio.gather(*(probe(s.name, s.type) for s in config.settings.sources if s.enabled))
    return results


async def _probe_slack(token: str, api_url: str) -> str:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=token, base_url=api_url)
    try:
        response = await client.auth_test()
        return f"[green]authenticated as {response.get('user')} in {response.get('team')}[/]"
    except SlackApiError as exc:
        return f"[red]auth.test failed: {exc.response.get('error')}[/]"
    except OSError as exc:
        return f"[red]unreachable: {type(exc).__name__}[/]"
