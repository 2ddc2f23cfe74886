"""``repmon check``: validate configuration and report what it sets up, credentials and reachability."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from config.loader import LoadedConfig
from config.settings import BrandSettings, ClassifierSettings, DigestSettings
from config.urls import database_url_problem
from monitor.db import Database, database_url, redact_url

__all__ = [
    "broad_query_warnings",
    "classifier_findings",
    "credential_fields",
    "error_cause",
    "lossy_keyword_warnings",
    "run_checks",
]

#: One line of the classifier report: True (fine), False (cannot work: exit 1), None (a warning).
Finding = tuple[bool | None, str]


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
    url_problem = database_url_problem(url)  # storage.url is checked on load; url_env's value is not
    if url_problem is not None:
        ok = False
        out.print(
            f"[red]✗[/] database URL {escape(redact_url(url))} cannot be used: {escape(url_problem)}",
            highlight=False,
        )
    elif new_file is not None:
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
        line = f"Slack bot token set ({slack.token_env}); API {escape(slack.api_url)}"
        accepted = True
        if online:
            accepted, answer = await _probe_slack(env[slack.token_env], slack.api_url)
            line += " — " + answer
        # a token Slack refuses (or a Slack that cannot be reached) is as bad as none: exit 1
        ok = ok and accepted
        out.print(("[green]✓[/] " if accepted else "[red]✗[/] ") + line, highlight=False)
    elif env.get(slack.webhook_url_env):
        out.print(f"[green]✓[/] Slack incoming webhook set ({slack.webhook_url_env})")
    else:
        out.print(
            f"[yellow]![/] no Slack credentials ({slack.token_env} or {slack.webhook_url_env}): alerts go to the console"
        )
    ok = _check_digest_schedule(settings.digest, out) and ok
    c = settings.classifier
    line = f"classifier: {c.model} (batch {c.batch_size}, {c.device})"
    if c.heads is not None:
        if os.path.isfile(c.heads) and os.access(c.heads, os.R_OK):
            line += f", heads {c.heads}"
        else:
            ok = False
            out.print(f"[red]✗[/] classifier.heads {c.heads} is not a readable file")
    out.print(line)
    for good, message in classifier_findings(c, env, online=online):
        mark = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[yellow]![/]"}[good]
        out.print(f"{mark} {escape(message)}", highlight=False, soft_wrap=True)
        ok = ok and good is not False
    return ok


def _check_digest_schedule(digest: DigestSettings, out: Console) -> bool:
    """Print when the digest runs next (shows what the cron expression means); False if it never does."""
    from monitor.digest_schedule import next_run

    if not digest.enabled:
        out.print("digest: disabled")
        return True
    where = f"({digest.schedule}, {digest.timezone})"
    try:
        due = next_run(digest.schedule, digest.timezone, datetime.now(UTC))
    except ValueError as exc:
        out.print(
            f"[red]✗[/] digest schedule {escape(where)} has no next run: {escape(str(exc))}", highlight=False
        )
        return False
    local = due.astimezone(ZoneInfo(digest.timezone))
    out.print(f"[green]✓[/] digest: next run {local:%a %Y-%m-%d %H:%M %Z} {escape(where)}", highlight=False)
    return True


def classifier_findings(
    c: ClassifierSettings, env: Mapping[str, str], *, online: bool = False
) -> list[Finding]:
    """Whether the configured classifier can load here, found without loading it.

    A ``transformers:`` model needs torch and transformers, and its model where the backend looks
    for it: a local directory (a path), or a hub id in the local Hugging Face cache, or one it can
    download (checked against the hub only with ``online``). A ``cuda`` device needs a GPU torch
    can use. The default model's device is checked when the configuration loads.
    """
    if not c.is_transformers:
        return []
    findings: list[Finding] = []
    missing = [name for name in ("torch", "transformers") if importlib.util.find_spec(name) is None]
    if missing:
        return [
            (
                False,
                f"classifier {c.model}: needs {' and '.join(missing)} installed (pip install 'repmon[ml]')",
            )
        ]
    if c.device.startswith("cuda"):
        findings.append(_device_finding(c.device, _cuda_device_count()))
    elif c.device == "auto":
        gpus = _cuda_device_count()
        findings.append(
            (True, f"classifier.device auto: runs on {'the GPU (cuda)' if gpus else 'the CPU (no GPU)'}")
        )
    findings.append(_model_finding(c.model.strip().partition(":")[2].strip(), env, online=online))
    return findings


def _device_finding(device: str, gpus: int | None) -> Finding:
    """Whether ``cuda``/``cuda:N`` exists for torch (``gpus`` None: torch cannot tell)."""
    index = int(device.partition(":")[2] or 0)
    if not gpus:
        why = (
            "torch cannot use CUDA"
            if gpus is None
            else "no GPU is available to torch (torch.cuda.is_available() is false)"
        )
        return False, f"classifier.device {device}: {why}; set device: cpu (or auto) on this machine"
    if index >= gpus:
        return False, f"classifier.device {device}: this machine has {gpus} GPU(s), cuda:0 to cuda:{gpus - 1}"
    return True, f"classifier.device {device}: GPU available"


def _cuda_device_count() -> int | None:
    """How many CUDA GPUs torch sees (None when torch cannot be imported). Imports torch."""
    try:
        import torch
    except ImportError:
        return None
    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except RuntimeError:  # a broken driver install: as unusable as no GPU
        return 0


def _model_finding(model: str, env: Mapping[str, str], *, online: bool) -> Finding:
    """Where the transformers backend would find ``model``, resolved as it does (see TorchTextModel)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    path = Path(model).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return True, f"classifier model {model}: local directory"
        return (
            False,
            f"classifier model {model}: the directory has no config.json; it is not a Hugging Face model",
        )
    try:
        validate_repo_id(model)
    except HFValidationError:
        what = "is a file, not a model directory" if path.exists() else "no such directory"
        return False, f"classifier model {model}: {what} (and not a Hugging Face model id)"
    if _hub_cached(model, env):
        return True, f"classifier model {model}: in the local Hugging Face cache"
    if env.get("HF_HUB_OFFLINE", "") not in {"", "0"}:
        return False, (
            f"classifier model {model}: not in the local Hugging Face cache, and HF_HUB_OFFLINE is set: "
            "it cannot be loaded; download it first (hf download MODEL) or point model at a local directory"
        )
    if not online:
        return None, (
            f"classifier model {model}: not in the local Hugging Face cache; the daemon downloads it from "
            "huggingface.co when it first loads the classifier, which needs network access (check with "
            "--online, or download it first: hf download MODEL, or point model at a local directory)"
        )
    problem = _hub_problem(model)
    if problem is not None:
        return False, f"classifier model {model}: not in the local Hugging Face cache and {problem}"
    return True, f"classifier model {model}: on huggingface.co, downloaded when the classifier first loads"


def _hub_cached(model: str, env: Mapping[str, str]) -> bool:
    """Whether the model's config is in the Hugging Face cache the backend reads (HF_HUB_CACHE, HF_HOME)."""
    from huggingface_hub import try_to_load_from_cache

    cache = env.get("HF_HUB_CACHE") or (os.path.join(env["HF_HOME"], "hub") if env.get("HF_HOME") else None)
    return isinstance(try_to_load_from_cache(model, "config.json", cache_dir=cache), str)


def _hub_problem(model: str) -> str | None:
    """Why ``model`` cannot be downloaded from the hub (None when it can). Contacts huggingface.co."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        HfApi().model_info(model, timeout=15)
    except RepositoryNotFoundError:
        return "huggingface.co has no such model (or it is private)"
    except Exception as exc:  # noqa: BLE001 - the hub client's network errors differ by version; any means "not now"
        return f"huggingface.co cannot be reached to download it: {type(exc).__name__}: {exc}"
    return None


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


async def _probe_slack(token: str, api_url: str) -> tuple[bool, str]:
    """Call auth.test once: whether Slack accepts the token, and what it said (rich markup)."""
    import aiohttp
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=token, base_url=api_url, timeout=30)
    try:
        response = await client.auth_test()
    except SlackApiError as exc:
        error = escape(str(exc.response.get("error") or exc.response.status_code))
        return False, f"[red]auth.test failed: {error} (Slack refused the token)[/]"
    except (OSError, aiohttp.ClientError, TimeoutError) as exc:
        return False, f"[red]unreachable: {escape(type(exc).__name__)}: {escape(str(exc))}[/]"
    user, team = escape(str(response.get("user"))), escape(str(response.get("team")))
    return True, f"[green]authenticated as {user} in {team}[/]"
