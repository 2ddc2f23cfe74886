"""Typed settings and watchlists: every default lives here, cross-field checks included.

The YAML file is validated into :class:`Settings`. Secrets are never part of it: fields ending in
``_env`` name environment variables and ``_file`` fields name files that hold them.
"""

from __future__ import annotations

import math
import re
from datetime import time as dtime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from config.urls import database_url_problem, http_url

__all__ = [
    "AlertSettings",
    "BrandSettings",
    "ClassifierSettings",
    "DaemonSettings",
    "DigestSettings",
    "Duration",
    "QuietHours",
    "Route",
    "Settings",
    "SlackSettings",
    "SourceSettings",
    "SpikeRuleSettings",
    "StorageSettings",
    "Thresholds",
    "cross_field_problems",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like ``30s``, ``5m``, ``1h``, ``2d``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m, 1h or a number of seconds")
    if isinstance(value, int | float):
        # Every duration is a wait or a lifetime: a negative one (or NaN) has no meaning, so it is
        # refused here for all of them rather than by one validator per field.
        if math.isnan(value) or value < 0:
            raise ValueError(f"{value!r} is not a duration; a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
        if value.strip().startswith("-"):
            raise ValueError(f"{value!r} is not a duration; a duration cannot be negative")
    raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 1h, 2d or a number of seconds")


#: Seconds, written in YAML as ``300``, ``5m``, ``1h`` ...
Duration = Annotated[float, BeforeValidator(parse_duration)]

#: An absolute http(s) URL with a host (a typo would otherwise fail at every request, retried forever).
HttpUrl = Annotated[str, AfterValidator(http_url)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageSettings(_Model):
    """Where mentions, scores and alerts are stored."""

    url: str = Field("sqlite:///var/repmon.db", description="SQLAlchemy URL; SQLite (WAL) or PostgreSQL.")
    url_env: str | None = Field(
        "REPMON_DATABASE_URL", description="Environment variable that overrides url (use it for passwords)."
    )
    pool_size: int = Field(5, ge=1, le=100)

    @field_validator("url")
    @classmethod
    def _usable_url(cls, value: str) -> str:
        problem = database_url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class Thresholds(_Model):
    """Alert thresholds: the global block, and a brand's own values over it (key by key)."""

    praise_min_positive: Annotated[float, Field(ge=0, le=1)] | Literal["auto"] = Field(
        "auto",
        description=(
            "Minimum P(positive) for praise alerts; 'auto' = the scoring model's calibrated praise "
            "threshold for the post's language (≥ 90 % precision on held-out tweets), 0.75 for a "
            "model without one."
        ),
    )
    complaint_min: float = Field(
        0.6, ge=0, le=1, description="Minimum complaint probability for complaint alerts."
    )
    complaint_min_reach: int = Field(
        0, ge=0, description="Untagged complaints alert only from authors with at least this reach."
    )
    review_complaint_max_rating: float = Field(
        0.4, ge=0, le=1, description="Reviews rated at or below this share of the scale count as complaints."
    )
    review_praise_min_rating: float = Field(
        0.9,
        ge=0,
        le=1,
        description=(
            "Reviews rated at or above this share of the scale (5/5, 9/10) are praise unless their "
            "text reads negative, and their text alone raises no complaint: the author rated it top."
        ),
    )
    large_account_followers: int = Field(
        10_000, ge=0, description="Authors with this reach are flagged as large."
    )
    spike_min_count: int = Field(
        5, ge=1, description="A spike needs at least this many negative mentions a bucket."
    )


class BrandSettings(_Model):
    """One watched brand: how to recognise its mentions and where its alerts go."""

    name: str = Field(min_length=1)
    handles: tuple[str, ...] = Field((), description="The brand's own accounts (@handles).")
    keywords: tuple[str, ...] = Field((), description="Plain keywords and phrases; any of them matches.")
    query: str | None = Field(None, description="A boolean query (AND, OR, NOT, NEAR/n, fields).")
    exclude: tuple[str, ...] = Field((), description="Queries whose matches are dropped.")
    competitor: bool = Field(False, description="Tracked for digests only, never alerted.")
    compare_with: tuple[str, ...] = Field(
        (), description="Competitor brands shown beside this one in digests."
    )
    channels: tuple[str, ...] = Field((), description="Slack channels for this brand's alerts.")
    thresholds: Thresholds | None = Field(
        None, description="Values that differ from the global thresholds; the others are inherited."
    )
    fold_diacritics: bool = True

    @field_validator("handles")
    @classmethod
    def _normalise_handles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        handles = tuple(h.strip().lstrip("@").lower() for h in value)
        for handle in handles:
            if not handle or not re.fullmatch(r"[\w.\-]+(@[\w.\-]+)?", handle):
                raise ValueError(f"{handle!r} is not a handle; write it like @acme_help")
        return handles

    @model_validator(mode="after")
    def _needs_a_term(self) -> BrandSettings:
        if not self.keywords and not self.query and not self.handles:
            raise ValueError(f"brand {self.name!r} has no keywords, query or handles: it would match nothing")
        return self


class SourceSettings(BaseModel):
    """Common settings of one source; the type-specific options are checked by the source's own model."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    type: str
    interval: Duration = Field(300.0, description="Seconds between polls.")
    jitter: float = Field(0.1, ge=0, le=1, description="Random share of the interval added or removed.")
    enabled: bool = True
    brand: str | None = Field(
        None,
        description=(
            "The brand this source is about (its App Store app, Kiyoh location, Trustpilot page): "
            "every mention it brings is that brand's, whatever the text says; the brand's "
            "exclusions still apply."
        ),
    )

    def options(self) -> dict[str, Any]:
        """The type-specific options (everything not common to all sources)."""
        return dict(self.model_extra or {})

    @field_validator("interval")
    @classmethod
    def _sane_interval(cls, value: float) -> float:
        if value < 1:
            raise ValueError("interval must be at least 1 second")
        return value


class ClassifierSettings(_Model):
    """Which classifier scores mentions and how."""

    model: str = Field(
        "default", description='"default" (embedded, offline), "lexicon", or "transformers:<id|dir>".'
    )
    batch_size: int = Field(64, ge=1, le=4096)
    device: str = Field("cpu", description='"cpu", "cuda", "cuda:1", "auto".')
    threads: int | None = Field(None, ge=1, le=256)
    max_attempts: int = Field(5, ge=1, description="Scoring attempts before a mention is parked as failed.")
    heads: str | None = Field(
        None,
        description=(
            "A head file from repmon train --out FILE: with model default, heads retrained on the "
            "default encoder (e.g. with the team's feedback); with a transformers: encoder, the "
            "heads trained on it (repmon train --encoder)."
        ),
    )
    label_map: dict[str, Literal["negative", "neutral", "positive", "complaint", "ignore"]] | None = Field(
        None, description="transformers: what each of the model's labels means, when its names do not say."
    )
    max_length: int = Field(256, ge=8, le=8192, description="transformers: tokens kept per post.")
    placeholders: bool = Field(
        True,
        description=(
            "transformers: show the model every @handle as '@user' and every link as 'http' (what "
            "Twitter-trained models such as cardiffnlp's saw in training); false feeds posts as written."
        ),
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description=(
            "Matrix-product type. transformers: auto = bf16 (fp16) on a GPU, float32 on the CPU. "
            "default model: auto = bf16 where the CPU has bf16 units (AMX, AVX512-BF16), else float32."
        ),
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"cpu|auto|cuda(:\d+)?|mps", value):
            raise ValueError(f"unknown device {value!r}; write cpu, auto, cuda or cuda:N (a GPU's number)")
        return value

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        # The specs classifiers.registry.load_classifier accepts (name case-insensitive, spaces
        # around the spec ignored); a typo would otherwise only fail when the daemon loads it.
        name, colon, arg = value.strip().partition(":")
        name = name.lower()
        if name == "transformers":
            if not arg.strip():
                raise ValueError(
                    f"{value!r} names no model; write transformers:<hub id or local directory>, "
                    "e.g. transformers:cardiffnlp/twitter-xlm-roberta-base-sentiment"
                )
            return value
        if name in {"default", "embedded", "lexicon", "stub"} and not colon:
            return value
        import difflib

        hint = difflib.get_close_matches(name, ["default", "embedded", "lexicon", "transformers"], n=1)
        guess = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(
            f"unknown classifier model {value!r}{guess}; write default (or embedded), lexicon, "
            "or transformers:<hub id or local directory>"
        )

    @property
    def is_default(self) -> bool:
        """Whether :attr:`model` is the embedded default (``default`` or ``embedded``)."""
        return self.model.strip().lower() in {"default", "embedded"}

    @property
    def is_transformers(self) -> bool:
        """Whether :attr:`model` names a Hugging Face model (``transformers:<id or dir>``)."""
        return self.model.strip().lower().startswith("transformers:")

    @model_validator(mode="after")
    def _transformers_only_options(self) -> ClassifierSettings:
        is_hf = self.is_transformers
        if self.heads is not None and not (is_hf or self.is_default):
            raise ValueError("heads only go with model: default or transformers:<encoder>")
        if self.label_map is not None and (not is_hf or self.heads is not None):
            raise ValueError("label_map only goes with a transformers: classification model (no heads)")
        if not self.placeholders and not is_hf:
            raise ValueError("placeholders: false only goes with a transformers: model")
        if self.dtype == "float16" and not is_hf:
            raise ValueError(
                "dtype float16 is for transformers: models; the default runs float32 or bfloat16"
            )
        if self.is_default and self.device not in {"cpu", "auto"}:
            raise ValueError(
                f"device {self.device}: the default model runs on the CPU only; use device cpu, "
                "or a transformers:<model> for a GPU"
            )
        return self

    def load_options(self) -> dict[str, Any]:
        """Keyword options for :func:`classifiers.registry.load_classifier` of :attr:`model`."""
        options: dict[str, Any] = {
            "device": self.device,
            "threads": self.threads,
            "batch_size": self.batch_size,
        }
        if self.is_default:
            options["dtype"] = self.dtype
            if self.heads is not None:
                options["heads_path"] = self.heads
        if self.is_transformers:
            options.update(max_length=self.max_length, dtype=self.dtype, placeholders=self.placeholders)
            if self.heads is not None:
                options["heads"] = self.heads
            if self.label_map is not None:
                options["label_map"] = dict(self.label_map)
        return options


class SlackSettings(_Model):
    """Slack delivery. Without a token (or webhook) alerts render to the console."""

    token_env: str = "SLACK_BOT_TOKEN"
    app_token_env: str = Field("SLACK_APP_TOKEN", description="App-level token for Socket Mode buttons.")
    webhook_url_env: str = "SLACK_WEBHOOK_URL"
    api_url: HttpUrl = Field(
        "https://slack.com/api/", description="Slack Web API base URL (proxies, test servers)."
    )
    default_channel: str = "#webcare"
    ops_channel: str | None = Field(None, description="Channel for operational alerts (source failures).")


class QuietHours(_Model):
    """A daily window in which a channel gets no notifications (they wait until it ends)."""

    start: dtime
    end: dtime
    timezone: str = "Europe/Amsterdam"
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = (
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _check_zone(value)


class Route(_Model):
    """Sends alerts whose labels match to a channel, Alertmanager style (first match wins)."""

    match: dict[str, str] = Field(default_factory=dict, description="Label equality matchers.")
    channel: str
    group_by: tuple[str, ...] | None = None
    quiet_hours: QuietHours | None = None
    continue_: bool = Field(False, alias="continue")


class AlertSettings(_Model):
    """Routing and timing of notifications."""

    group_by: tuple[str, ...] = ("brand", "kind")
    group_wait: Duration = Field(0.0, description="Wait before the first notification of a new group.")
    group_interval: Duration = Field(300.0, description="Wait between notifications about a group.")
    repeat_interval: Duration = Field(
        14400.0, description="Re-notify an unchanged open crisis after this long."
    )
    routes: tuple[Route, ...] = ()
    quiet_hours: dict[str, QuietHours] = Field(default_factory=dict, description="Per channel.")
    max_per_minute: int = Field(30, ge=1, description="Per channel; more wait in the outbox.")
    give_up_after: Duration = Field(
        86400.0,
        description="Retry an alert whose delivery fails with a retryable error (5xx, timeout, 429) "
        "for this long after it was raised, then park it as failed.",
    )
    console: bool = Field(True, description="Render alerts on the console when Slack is not configured.")
    jsonl_path: str | None = Field(None, description="Also append delivered alerts to this JSONL file.")
    praise: bool = True
    complaints: bool = True
    spikes: bool = True
    max_post_age: Duration | None = Field(
        7 * 86400.0,
        description=(
            "Praise and complaint alerts only for posts at most this old when they are evaluated "
            "(by the spikes clock: with clock data, the newest stored post's time); older ones (a "
            "new source's history, an old post retweeted today) are stored, scored and counted "
            "but not alerted. null: any age."
        ),
    )


class SpikeRuleSettings(_Model):
    """Spike detection on per-brand mention volume."""

    bucket: Duration = 300.0
    clock: Literal["wall", "data"] = Field(
        "wall",
        description='"wall": buckets close by the clock; "data": by the newest stored mention (replays).',
    )
    lateness: Duration = Field(
        120.0, description="How long to wait for late mentions before closing a bucket."
    )
    metrics: tuple[Literal["negative", "total"], ...] = ("negative", "total")
    max_age: Duration | None = Field(
        12 * 3600.0,
        description=(
            "With clock wall, spike alerts only for buckets at most this old: a backfill, or a "
            "daemon catching up after a long outage, does not page about crises that are over. "
            "A crisis still open is re-notified by repeat_interval. null: any age."
        ),
    )


class DigestSettings(_Model):
    """The weekly digest for communication managers."""

    schedule: str = Field("0 9 * * mon", description="Cron expression in the digest timezone.")
    timezone: str = "Europe/Amsterdam"
    channel: str | None = None
    html_dir: str | None = Field("var/digests", description="Where HTML reports are written.")
    enabled: bool = True

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _check_zone(value)

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from datetime import datetime, timedelta
        from itertools import pairwise

        from croniter import CroniterError, croniter

        example = "write e.g. '0 9 * * mon' (minute hour day-of-month month day-of-week)"
        fields = value.split()
        macro = len(fields) == 1 and fields[0].startswith("@")
        if not (macro or len(fields) == 5) or not croniter.is_valid(value):
            # croniter would also take a 6th (seconds) and 7th (year) field: "0 9 * * mon *" would
            # then fire every second of the minute instead of once a week.
            raise ValueError(
                f"{value!r} is not a 5-field cron expression (or @daily, @weekly, @monthly); {example}"
            )
        # A schedule that matches no real date ("0 9 31 2 *") or too rarely to report on (leap days)
        # would pass croniter's syntax check and stop the digest scheduler later: refuse it here.
        limit = timedelta(days=2 * 366)
        start = datetime.now()
        try:
            it = croniter(value, start, max_years_between_matches=5)
            runs = [start, it.get_next(datetime), it.get_next(datetime)]
        except CroniterError:
            raise ValueError(f"{value!r} never fires (no date matches it); {example}") from None
        if any(b - a > limit for a, b in pairwise(runs)):
            raise ValueError(
                f"{value!r} fires less than once in two years (next: {runs[1]:%Y-%m-%d %H:%M}, "
                f"then {runs[2]:%Y-%m-%d %H:%M}); {example}"
            )
        return value


class DaemonSettings(_Model):
    """Runtime behaviour of ``repmon run``."""

    shutdown_timeout: Duration = Field(10.0, description="Seconds to finish in-flight work on SIGTERM.")
    classify_interval: Duration = 1.0
    deliver_interval: Duration = 1.0
    max_backoff: Duration = Field(3600.0, description="Longest wait between polls of a failing source.")
    health_host: str = "127.0.0.1"
    health_port: int | None = Field(9464, ge=0, le=65535, description="Health + /metrics; null disables it.")
    lease_ttl: Duration = Field(
        60.0, description="How long a source lease lasts without renewal (PostgreSQL)."
    )
    max_concurrent_polls: int = Field(
        8,
        ge=1,
        le=1000,
        description="Sources polling at the same time; the others wait their turn. A poll makes its "
        "requests one after another, so this bounds concurrent HTTP requests too.",
    )
    startup_spread: Duration = Field(
        60.0,
        description="When the daemon starts more sources than max_concurrent_polls, each one's first "
        "poll waits a random time up to this (at most its interval), so they do not all fetch at once.",
    )


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r}; write an IANA name like Europe/Amsterdam") from None
    return value


class Settings(_Model):
    """Everything repmon reads from its YAML file."""

    storage: StorageSettings = StorageSettings()
    brands: tuple[BrandSettings, ...] = ()
    sources: tuple[SourceSettings, ...] = ()
    thresholds: Thresholds = Thresholds()
    classifier: ClassifierSettings = ClassifierSettings()
    alerts: AlertSettings = AlertSettings()
    slack: SlackSettings = SlackSettings()
    spikes: SpikeRuleSettings = SpikeRuleSettings()
    digest: DigestSettings = DigestSettings()
    daemon: DaemonSettings = DaemonSettings()

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Settings:
        # The loader runs these itself on the raw YAML (context cross_checks=False), so that they
        # are reported with their lines even when other settings are invalid.
        if isinstance(info.context, dict) and info.context.get("cross_checks") is False:
            return self
        raw = self.model_dump(include={"brands", "sources"})
        problems = cross_field_problems(raw)
        if problems:
            raise ValueError("; ".join(f"{'.'.join(map(str, loc))}: {message}" for loc, message in problems))
        return self

    def thresholds_for(self, brand: str) -> Thresholds:
        """The thresholds that apply to ``brand``: the global ones, with the values the brand sets."""
        for b in self.brands:
            if b.name == brand and b.thresholds is not None:
                own = {key: getattr(b.thresholds, key) for key in b.thresholds.model_fields_set}
                return self.thresholds.model_copy(update=own)
        return self.thresholds

    def brand(self, name: str) -> BrandSettings | None:
        """The brand called ``name``, if configured."""
        return next((b for b in self.brands if b.name == name), None)


def cross_field_problems(data: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems between brands and sources in configuration ``data`` (parsed YAML), each located.

    Unique brand and source names, and ``compare_with`` and a source's ``brand`` naming configured
    brands. Works on the raw
    mapping, so it still runs when other settings are invalid; entries it cannot read are skipped
    (their own errors say why).
    """
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if not isinstance(data, dict):
        return problems
    brands = _items(data.get("brands"))
    sources = _items(data.get("sources"))
    for section, items, what in (("brands", brands, "brand"), ("sources", sources, "source")):
        seen: set[str] = set()
        for index, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen:
                problems.append(
                    ((section, index, "name"), f"{what} names must be unique; {name!r} is repeated")
                )
            seen.add(name)
    known = {b["name"] for b in brands if isinstance(b, dict) and isinstance(b.get("name"), str)}
    for index, source in enumerate(sources):
        owner = source.get("brand") if isinstance(source, dict) else None
        if isinstance(owner, str) and owner not in known:
            choices = ", ".join(sorted(known)) or "none"
            problems.append(
                (
                    ("sources", index, "brand"),
                    f"unknown brand {owner!r}; brand names a configured brand ({choices})",
                )
            )
    for index, brand in enumerate(brands):
        others = brand.get("compare_with") if isinstance(brand, dict) else None
        if not isinstance(others, list | tuple):
            continue
        for i, other in enumerate(others):
            if isinstance(other, str) and other not in known:
                choices = ", ".join(sorted(known)) or "none"
                problems.append(
                    (
                        ("brands", index, "compare_with", i),
                        f"unknown brand {other!r}; compare_with names configured brands ({choices})",
                    )
                )
    return problems


def _items(value: Any) -> list[Any]:
    """The entries of a YAML list (an empty list for anything else)."""
    return list(value) if isinstance(value, list | tuple) else []
