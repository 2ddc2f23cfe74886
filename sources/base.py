"""The source interface: what every poller implements and what it produces.

A source turns one remote API or feed into normalised :class:`Mention` objects. The daemon owns
scheduling, health, backoff and persistence; a source only fetches and normalises. Policy is
decided by the exception a source raises (see the ``*Error`` classes below).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import httpx

__all__ = [
    "AuthError",
    "Author",
    "Cursor",
    "Mention",
    "NotConfiguredError",
    "PollResult",
    "RateLimitedError",
    "Source",
    "SourceContext",
    "SourceError",
    "TransientError",
    "ensure_utc",
]

#: A source's resume state: a few named strings (since_id, etag, last_modified, next_token, ...).
#: Stored as rows in the ``source_cursors`` table, one row per key.
Cursor = dict[str, str]


@dataclass(slots=True)
class Author:
    """Who wrote a mention, as far as the source tells."""

    handle: str | None = None
    name: str | None = None
    id: str | None = None
    followers: int | None = None
    url: str | None = None


@dataclass(slots=True)
class Mention:
    """One post, comment, review or feed entry, normalised across sources.

    ``source`` is the kind of source (``rss``, ``x``, ``reddit`` ...) and with ``external_id``
    forms the deduplication key. ``created_at`` comes from the source and is always UTC.
    """

    source: str
    external_id: str
    text: str
    created_at: datetime
    url: str | None = None
    author: Author = field(default_factory=Author)
    title: str | None = None
    language: str | None = None
    rating: float | None = None
    rating_max: float | None = None
    parent_id: str | None = None
    thread_id: str | None = None
    in_reply_to: str | None = None
    mentioned_handles: tuple[str, ...] = ()
    repost_of: str | None = None
    source_name: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.created_at = ensure_utc(self.created_at)

    @property
    def key(self) -> tuple[str, str]:
        """The deduplication key (source kind, external id)."""
        return (self.source, self.external_id)


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime (naive values are taken to be UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(slots=True)
class PollResult:
    """What one poll produced: mentions, the cursor that covers them, and what was skipped."""

    mentions: list[Mention]
    cursor: Cursor
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    #: True when the source knows more is waiting right now (another page); the daemon polls
    #: again soon instead of waiting a whole interval.
    more: bool = False
    #: Set when the remote side asked us to stop for good (HTTP 410 Gone).
    gone: bool = False


class SourceError(Exception):
    """Base class for errors a source raises; the subclass decides the daemon's policy."""


class TransientError(SourceError):
    """A failure worth retrying with exponential backoff (5xx, timeouts, connection errors)."""


class RateLimitedError(TransientError):
    """The remote side asked us to wait; ``retry_after`` is in seconds when it said how long."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(SourceError):
    """Credentials are missing, wrong or revoked: stop polling and raise one ops alert."""


class NotConfiguredError(SourceError):
    """The source lacks required settings; it switches itself off with a clear log line."""


@runtime_checkable
class Source(Protocol):
    """A poller: fetches new items since ``cursor`` and returns them normalised."""

    kind: ClassVar[str]
    name: str

    async def poll(self, cursor: Cursor) -> PollResult:
        """Fetch what is new since ``cursor``; raise a :class:`SourceError` subclass on failure."""
        ...

    async def aclose(self) -> None:
        """Release client sessions."""
        ...


@dataclass(slots=True)
class SourceContext:
    """What the daemon hands every source: environment (for secrets), an HTTP client factory, a clock."""

    env: Mapping[str, str]
    http_client: Callable[..., httpx.AsyncClient]
    clock: Callable[[], datetime]

    def secret(self, env_name: str | None, file_path: str | None = None, *, what: str) -> str:
        """Read a secret from the named environment variable or file; raise AuthError when absent.

        The error names the variable, never the value.
        """
        if env_name and self.env.get(env_name):
            return self.env[env_name].strip()
        if file_path:
            try:
                with open(file_path, encoding="utf-8") as handle:
                    value = handle.read().strip()
            except OSError as exc:
                raise AuthError(f"{what}: cannot read secret file {file_path}: {exc.strerror}") from None
            if value:
                return value
        where = f"environment variable {env_name}" if env_name else "configuration"
        alternative = f" or {file_path}" if file_path else ""
        raise AuthError(f"{what}: missing credential, set {where}{alternative}")
