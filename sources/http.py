"""HTTP helpers shared by sources: one place that maps HTTP outcomes to source error policy."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import httpx

from sources.base import AuthError, NotConfiguredError, RateLimitedError, SourceError, TransientError

__all__ = [
    "MAX_REDIRECTS",
    "RETRYABLE_STATUSES",
    "USER_AGENT",
    "GoneError",
    "RateLimitGate",
    "check_response",
    "clock_seconds",
    "json_body",
    "parse_retry_after",
    "request",
    "whole_request_timeout",
]

USER_AGENT = "repmon/0.1 (+https://github.com/repmon/repmon; reputation monitoring)"
#: Statuses worth retrying with backoff (Scrapy's list, plus 429 handled separately).
RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504, 520, 521, 522, 524})
_RESET_HEADERS = ("x-rate-limit-reset", "x-ratelimit-reset", "ratelimit-reset")
#: Redirects followed for one request (an API that moved, http → https); more is taken as a loop.
MAX_REDIRECTS = 5
_PERMANENT_REDIRECTS = frozenset({301, 308})
#: Request headers that carry no credential. A request with any other header (Authorization,
#: Trustpilot's apikey ...) or with ``auth`` is not sent on to another host: httpx drops only
#: Authorization and Cookie there, and would send every other header along.
_PLAIN_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "content-length",
        "content-type",
        "host",
        "if-modified-since",
        "if-none-match",
        "user-agent",
    }
)


class GoneError(SourceError):
    """HTTP 410: the resource is gone for good; the source stops polling it."""


def parse_retry_after(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait according to the server, from ``Retry-After`` or a rate-limit reset header.

    ``x-rate-limit-reset`` (X) is an epoch timestamp; ``X-Ratelimit-Reset`` (Reddit) and
    ``RateLimit-Reset`` are seconds from now. Small values are seconds, large ones epochs.
    Mastodon sends ``X-RateLimit-Reset`` as an ISO 8601 timestamp; that is understood too.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after")
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                return max(0.0, when.timestamp() - now())
    for name in _RESET_HEADERS:
        raw = lowered.get(name)
        if not raw:
            continue
        try:
            number = float(raw.strip())
        except ValueError:
            when_iso = _parse_iso(raw)
            if when_iso is not None:
                return max(0.0, when_iso.timestamp() - now())
            continue
        # An epoch timestamp is far larger than any sensible delay in seconds.
        if number > 1e9:
            return max(0.0, number - now())
        return max(0.0, number)
    return None


def check_response(response: httpx.Response, now: Callable[[], float] = time.time) -> httpx.Response:
    """Raise the source error matching ``response``'s status; return it when it is usable.

    304 Not Modified is returned as is (callers treat it as "nothing new"); any other 3xx is a
    redirect :func:`request` could not follow (no usable ``Location``) and a TransientError.
    """
    status = response.status_code
    where = f"{response.request.method} {_safe_url(response.request.url)}"
    if 300 <= status < 400 and status != 304:
        # request() follows the redirects it may; one left over has no usable Location.
        raise TransientError(f"HTTP {status} from {where}: a redirect without a usable Location")
    if status < 400:
        return response
    if status == 429:
        raise RateLimitedError(f"HTTP 429 from {where}", retry_after=parse_retry_after(response.headers, now))
    if status in (401, 403):
        raise AuthError(f"HTTP {status} from {where}: credentials refused")
    if status == 410:
        raise GoneError(f"HTTP 410 from {where}: gone")
    if status in RETRYABLE_STATUSES or status >= 500:
        retry_after = parse_retry_after(response.headers, now) if status == 503 else None
        if retry_after is not None:
            raise RateLimitedError(f"HTTP {status} from {where}", retry_after=retry_after)
        raise TransientError(f"HTTP {status} from {where}")
    raise TransientError(f"HTTP {status} from {where}")


async def request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str | int] | None = None,
    now: Callable[[], float] = time.time,
    data: Mapping[str, str] | None = None,
    json_data: object = None,
    auth: tuple[str, str] | None = None,
    check: bool = True,
    timeout: float | None = None,
) -> httpx.Response:
    """Send one request and map transport failures and HTTP errors to source errors.

    Redirects are followed (at most :data:`MAX_REDIRECTS`) for GET and HEAD, and to another host
    only when no credential is in the request's headers or ``auth`` (the query is not passed on:
    the target is the server's ``Location``). A redirect that is not followed raises a clear
    error naming where it points: :class:`NotConfiguredError` when it is permanent (301/308: set
    the new URL in the configuration), else :class:`TransientError`.
    ``check=False`` returns error responses unchecked, for sources that must read an error body
    (e.g. Kiyoh's invalid-hash answer) before deciding; transport failures are still mapped.

    ``timeout`` (default: the client's, see :func:`whole_request_timeout`) bounds the whole
    request, redirects and body included: httpx's own timeouts apply to each read, so a server
    that trickles a byte now and then would otherwise hold the request (and its source) forever.
    """
    limit = timeout if timeout is not None else whole_request_timeout(client)
    try:
        async with asyncio.timeout(limit):
            response = await _follow(client, method, url, headers, params, data, json_data, auth)
    except TimeoutError as exc:
        raise TransientError(
            f"timeout for {_safe_url_text(url)}: no complete answer within {limit:g}s"
        ) from exc
    return check_response(response, now) if check else response


async def _follow(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    headers: Mapping[str, str] | None,
    params: Mapping[str, str | int] | None,
    data: Mapping[str, str] | None,
    json_data: object,
    auth: tuple[str, str] | None,
) -> httpx.Response:
    """Send the request and follow the redirects :func:`request` may follow; map transport errors."""
    try:
        response = await client.request(
            method, url, headers=dict(headers or {}), params=params, data=data, json=json_data, auth=auth
        )
        hops = 0
        while response.next_request is not None:
            _check_redirect(response, response.next_request, credentials=auth is not None)
            hops += 1
            if hops > MAX_REDIRECTS:
                raise TransientError(
                    f"more than {MAX_REDIRECTS} redirects from {_safe_url_text(url)}: a redirect loop"
                )
            target = response.next_request
            await response.aclose()
            response = await client.send(target)
    except httpx.TimeoutException as exc:
        raise TransientError(f"timeout for {_safe_url_text(url)}: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise TransientError(f"connection error for {_safe_url_text(url)}: {type(exc).__name__}") from exc
    except httpx.RequestError as exc:
        # Undecodable bodies (bad gzip), redirect loops: the server's fault, worth a later retry.
        raise TransientError(f"bad answer from {_safe_url_text(url)}: {type(exc).__name__}") from exc
    return response


def whole_request_timeout(client: httpx.AsyncClient) -> float | None:
    """The seconds one whole request may take: the longest of the client's timeouts (None: no bound).

    Sources create their client with ``timeout=options.timeout``, documented as the seconds for
    the whole request; httpx applies it to the connection and to each read separately.
    """
    t = client.timeout
    values = [v for v in (t.connect, t.read, t.write, t.pool) if v is not None]
    return max(values) if values else None


def _check_redirect(response: httpx.Response, target: httpx.Request, *, credentials: bool) -> None:
    """Raise when ``response``'s redirect to ``target`` must not be followed."""
    sent = response.request
    why = None
    if sent.method not in ("GET", "HEAD"):
        # A 307/308 would send the body again (a password, a token request) wherever it points.
        why = f"a {sent.method} is not redirected"
    elif not _same_site(sent.url, target.url) and (
        credentials or any(name.lower() not in _PLAIN_HEADERS for name in sent.headers)
    ):
        why = "another host; credentials are not sent there"
    if why is None:
        return
    status = response.status_code
    where = f"HTTP {status} from {sent.method} {_safe_url(sent.url)}: redirected to {_safe_url(target.url)}"
    if status in _PERMANENT_REDIRECTS:
        raise NotConfiguredError(f"{where} ({why}); set the new URL in the configuration")
    raise TransientError(f"{where} ({why})")


def _same_site(url: httpx.URL, other: httpx.URL) -> bool:
    """Same scheme, host and port, or the same host moving from http to https (default ports)."""
    if url.host != other.host:
        return False
    if url.scheme == other.scheme:
        return url.port == other.port
    return (
        url.scheme == "http"
        and other.scheme == "https"
        and url.port in (None, 80)
        and other.port in (None, 443)
    )


def json_body(response: httpx.Response) -> object:
    """The response's JSON body; a body that is not JSON is a transient server fault."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise TransientError(
            f"HTTP {response.status_code} from {_safe_url(response.request.url)}: body is not JSON"
        ) from exc


def clock_seconds(clock: Callable[[], datetime]) -> Callable[[], float]:
    """Adapt a datetime clock (``SourceContext.clock``) to the epoch-seconds clock used here."""
    return lambda: clock().timestamp()


def _parse_iso(value: str) -> datetime | None:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _safe_url(url: httpx.URL) -> str:
    """The URL without query string or credentials, so tokens passed as parameters never get logged."""
    return str(url.copy_with(query=None, fragment=None, userinfo=b""))


def _safe_url_text(url: str) -> str:
    try:
        return _safe_url(httpx.URL(url))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<invalid url>"


def utcnow() -> datetime:
    """The current time in UTC (used only where a source gives no timestamp of its own)."""
    return datetime.now(UTC)


class RateLimitGate:
    """Remembers when an API said the request budget is spent, so the next poll waits instead of asking.

    APIs report the budget on every answer (``x-rate-limit-remaining``/``-reset`` on X,
    ``X-Ratelimit-Remaining``/``-Reset`` on Reddit and Mastodon). A source calls :meth:`observe`
    after each answer and stops paging when it returns True; the next poll calls :meth:`check`,
    which raises :class:`RateLimitedError` with the server's own wait until the reset time.
    """

    def __init__(self, clock: Callable[[], datetime], remaining_header: str, reset_header: str) -> None:
        self._clock = clock
        self._remaining = remaining_header
        self._reset = reset_header
        self._until: datetime | None = None

    def check(self, what: str) -> None:
        """Raise RateLimitedError while the remembered budget is still spent."""
        if self._until is None:
            return
        wait = (self._until - self._clock()).total_seconds()
        if wait > 0:
            raise RateLimitedError(
                f"{what}: rate-limit budget spent until the server's reset", retry_after=wait
            )
        self._until = None

    def observe(self, response: httpx.Response, *, reserve: float = 0) -> bool:
        """Read the budget headers of ``response``; True when no more than ``reserve`` requests remain."""
        raw = response.headers.get(self._remaining)
        if raw is None:
            return False
        try:
            remaining = float(raw.strip())
        except ValueError:
            return False
        if remaining > reserve:
            return False
        reset = response.headers.get(self._reset)
        now = self._clock()
        wait = parse_retry_after({self._reset: reset}, lambda: now.timestamp()) if reset else None
        self._until = now + timedelta(seconds=wait if wait is not None else 60.0)
        return True
