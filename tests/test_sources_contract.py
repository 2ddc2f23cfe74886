"""Contract tests every source passes: error policy by HTTP status, missing credentials, no secret leaks.

Each source is pointed at the local server, which answers every request with the same status;
the exception class decides the daemon's policy (see sources.base), so it must be right everywhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

from sources.appstore import AppStoreOptions, AppStoreSource
from sources.base import (
    AuthError,
    NotConfiguredError,
    RateLimitedError,
    Source,
    SourceError,
    TransientError,
)
from sources.bluesky import BlueskyOptions, BlueskySource
from sources.googleplay import GooglePlayOptions, GooglePlaySource
from sources.kiyoh import KiyohOptions, KiyohSource
from sources.mastodon import MastodonOptions, MastodonSource
from sources.reddit import RedditOptions, RedditSource
from sources.registry import SOURCE_TYPES, build_source
from sources.rss import FeedOptions, FeedSource
from sources.trustpilot import TrustpilotOptions, TrustpilotSource
from sources.x import XOptions, XSource
from tests.drip_server import drip_server
from tests.replay_server import FakeClock, Reply, Request, Script, make_ctx

SECRET = "s3cr3t-Value-that-must-never-leak"

pytest_plugins = ["tests.replay_fixtures"]


@dataclass(frozen=True)
class Case:
    """How to build one source against a base URL, and which variables hold its credentials."""

    build: Callable[[str], tuple[type, BaseModel]]
    env: dict[str, str]
    required: str | None = None


CASES: dict[str, Case] = {
    "x": Case(
        lambda b: (XSource, XOptions(queries=["acme"], api_url=b)),
        {"X_BEARER_TOKEN": SECRET},
        "X_BEARER_TOKEN",
    ),
    "reddit": Case(
        lambda b: (RedditSource, RedditOptions(subreddits=["test"], auth_url=b, api_url=b)),
        {"REDDIT_CLIENT_ID": "client-id", "REDDIT_CLIENT_SECRET": SECRET},
        "REDDIT_CLIENT_SECRET",
    ),
    "mastodon": Case(
        lambda b: (
            MastodonSource,
            MastodonOptions(instance_url=b, tags=["acme"], access_token_env="MASTODON_TOKEN"),
        ),
        {"MASTODON_TOKEN": SECRET},
        "MASTODON_TOKEN",
    ),
    "bluesky": Case(
        lambda b: (
            BlueskySource,
            BlueskyOptions(
                queries=["acme"],
                api_url=b,
                pds_url=b,
                identifier_env="BSKY_ID",
                app_password_env="BSKY_PASSWORD",
            ),
        ),
        {"BSKY_ID": "monitor.bsky.social", "BSKY_PASSWORD": SECRET},
        "BSKY_PASSWORD",
    ),
    "trustpilot": Case(
        lambda b: (
            TrustpilotSource,
            TrustpilotOptions(business_unit_id="4bdf7b0b00006400050a7b26", api_url=b),
        ),
        {"TRUSTPILOT_API_KEY": SECRET},
        "TRUSTPILOT_API_KEY",
    ),
    "kiyoh": Case(lambda b: (KiyohSource, KiyohOptions(base_url=b)), {"KIYOH_HASH": SECRET}, "KIYOH_HASH"),
    "appstore": Case(lambda b: (AppStoreSource, AppStoreOptions(app_id="12345678", base_url=b)), {}),
    "googleplay": Case(
        lambda b: (GooglePlaySource, GooglePlayOptions(app_id="com.acme.app", base_url=b)), {}
    ),
    "rss": Case(lambda b: (FeedSource, FeedOptions(url=b + "/feed.xml")), {}),
}


def _build(kind: str, base: str, env: dict[str, str] | None = None, clock: FakeClock | None = None) -> Source:
    case = CASES[kind]
    cls, options = case.build(base)
    source: Source = cls(f"{kind}-contract", options, make_ctx(case.env if env is None else env, clock))
    return source


def _messages(exc: BaseException) -> str:
    """Every message in the exception chain."""
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts.append(f"{seen!s} {seen!r}")
        seen = seen.__cause__ or seen.__context__
    return " ".join(parts)


async def _poll_error(kind: str, script: Script, reply: Reply, clock: FakeClock | None = None) -> SourceError:
    script.fallback(lambda r: reply)
    return await _failure(kind, script, clock)


async def _failure(kind: str, script: Script, clock: FakeClock | None = None) -> SourceError:
    """The error one poll against ``script`` raises (it must raise one), never with the secret."""
    source = _build(kind, script.base_url, clock=clock)
    try:
        with pytest.raises(SourceError) as caught:
            await source.poll({})
    finally:
        await source.aclose()
    assert SECRET not in _messages(caught.value)
    return caught.value


def test_every_registered_type_is_covered() -> None:
    """The contract runs over every registered source type (replay has no network)."""
    assert set(SOURCE_TYPES) - {"replay"} == set(CASES)


@pytest.mark.parametrize("kind", sorted(SOURCE_TYPES))
def test_registry_entries_are_well_formed(kind: str) -> None:
    """Each registered class names its kind, forbids unknown options, and documents itself."""
    cls: Any = SOURCE_TYPES[kind]
    assert cls.kind == kind
    assert cls.Options.model_config.get("extra") == "forbid"
    assert cls.__doc__ and cls.Options.__doc__ and cls.poll.__doc__ and cls.aclose.__doc__
    assert __import__(cls.__module__, fromlist=["_"]).__doc__, (
        "module docstring states credentials and limits"
    )


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_build_source_from_registry(kind: str) -> None:
    """build_source instantiates every type from its options model."""
    _, options = CASES[kind].build("http://127.0.0.1:9")
    source = build_source(kind, "built", options, make_ctx({}))
    assert source.name == "built" and isinstance(source, Source)
    await source.aclose()


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("kind", sorted(CASES))
async def test_server_errors_are_transient(kind: str, status: int, script: Script) -> None:
    """5xx is TransientError (back off and retry)."""
    error = await _poll_error(
        kind, script, Reply(status, [("Content-Type", "text/plain")], b"upstream trouble")
    )
    assert isinstance(error, TransientError) and not isinstance(error, RateLimitedError)


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("kind", sorted(CASES))
async def test_auth_refusals_are_auth_errors(kind: str, status: int, script: Script) -> None:
    """401/403 is AuthError (disable the source, alert once), never with the secret in it."""
    error = await _poll_error(kind, script, Reply(status, [("Content-Type", "application/json")], b"{}"))
    assert isinstance(error, AuthError)


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_429_honours_retry_after(kind: str, script: Script) -> None:
    """429 is RateLimitedError carrying the server's Retry-After."""
    error = await _poll_error(kind, script, Reply(429, [("Retry-After", "37")], b""))
    assert isinstance(error, RateLimitedError) and error.retry_after == pytest.approx(37)


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_connection_refused_is_transient(kind: str) -> None:
    """Nothing listening is TransientError."""
    source = _build(kind, "http://127.0.0.1:9")
    with pytest.raises(TransientError) as caught:
        await source.poll({})
    await source.aclose()
    assert SECRET not in _messages(caught.value)


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_timeout_bounds_the_whole_request_of_a_trickling_server(kind: str) -> None:
    """A server that sends its headers, then a byte now and then, times out after ``timeout`` in all.

    httpx's timeout is per read, so each byte would restart it: the source must bound the request.
    """
    async with drip_server(every=0.05) as base:
        case = CASES[kind]
        cls, options = case.build(base)
        options = options.model_copy(update={"timeout": 0.3})
        source: Source = cls(f"{kind}-contract", options, make_ctx(case.env))
        started = time.monotonic()
        try:
            with pytest.raises(TransientError) as caught:
                # The guard only keeps a regression from hanging the suite.
                await asyncio.wait_for(source.poll({}), 10)
        finally:
            await source.aclose()
    assert time.monotonic() - started < 3
    assert "timeout" in str(caught.value) and SECRET not in _messages(caught.value)


@pytest.mark.parametrize("kind", sorted(k for k, c in CASES.items() if c.required))
async def test_missing_credentials_name_the_variable(kind: str, script: Script) -> None:
    """Without the credential the source raises AuthError naming the variable, before any request."""
    case = CASES[kind]
    assert case.required is not None
    env = {k: v for k, v in case.env.items() if k != case.required}
    source = _build(kind, script.base_url, env=env)
    with pytest.raises(AuthError, match=case.required):
        await source.poll({})
    await source.aclose()
    assert script.requests == []


@pytest.mark.parametrize("kind", sorted(k for k, c in CASES.items() if c.required))
async def test_secret_never_in_query_or_errors(kind: str, script: Script) -> None:
    """The secret travels in a header or form body (Kiyoh's hash must be in the query), never in errors."""
    script.fallback(lambda r: Reply(404, [], b""))
    source = _build(kind, script.base_url)
    with pytest.raises(SourceError) as caught:
        await source.poll({})
    await source.aclose()
    assert SECRET not in _messages(caught.value)
    for request in script.requests:
        in_query = any(SECRET in v for values in request.query.values() for v in values)
        assert not in_query or kind == "kiyoh"


def _carries_secret(request: Request) -> bool:
    values = [*request.headers.values(), *(v for vs in request.query.values() for v in vs)]
    return any(SECRET in v for v in values) or SECRET.encode() in request.body


@pytest.mark.parametrize("status", [301, 307])
@pytest.mark.parametrize("kind", sorted(CASES))
async def test_redirect_to_another_host_never_takes_the_secret(
    kind: str, status: int, script: Script, other_script: Script
) -> None:
    """A redirect to another host is followed only without credentials; refused, the error names it.

    Never "body is not JSON": the redirect answer itself is not parsed.
    """
    script.fallback(lambda r: Reply(status, [("Location", other_script.base_url + r.path)], b"<html>Moved"))
    other_script.fallback(lambda r: Reply(503, [("Content-Type", "text/plain")], b"try later"))
    error = await _failure(kind, script)
    assert not any(_carries_secret(r) for r in other_script.requests)
    if other_script.requests:
        assert isinstance(error, TransientError) and "503" in str(error)  # followed
    else:
        assert "redirected to " + other_script.base_url in str(error)
        permanent = isinstance(error, NotConfiguredError)
        assert permanent == (status == 301) and (permanent or isinstance(error, TransientError))


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_redirect_on_the_same_host_is_followed(kind: str, script: Script) -> None:
    """A GET moved on the same host is followed, credentials and all; a POST is not redirected."""
    script.fallback(
        lambda r: (
            Reply(503, [], b"")
            if r.path.startswith("/moved/")
            else Reply(308, [("Location", script.base_url + "/moved" + r.path)], b"")
        )
    )
    error = await _failure(kind, script)
    moved = [r for r in script.requests if r.path.startswith("/moved/")]
    if moved:
        assert isinstance(error, TransientError) and "HTTP 503" in str(error)
        assert all(r.method == "GET" for r in moved)
    else:
        assert isinstance(error, NotConfiguredError) and "POST is not redirected" in str(error)
