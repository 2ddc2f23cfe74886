"""Reddit: search per query, new submissions and comments of subreddits, comment trees of threads.

Credentials: an OAuth app registered at https://www.reddit.com/prefs/apps — client id and secret
from ``REDDIT_CLIENT_ID`` / ``REDDIT_CLIENT_SECRET`` (or ``*_file``). A "script" app may also log in
as its owner (``username_env`` / ``password_env``, password grant); otherwise the app-only client
credentials grant is used. Reddit's API rules (Data API Terms,
https://www.redditinc.com/policies/data-api-terms, and the developer rules):
OAuth is required, the User-Agent must be unique and descriptive
(``<platform>:<app id>:<version> (by /u/<username>)``, set ``user_agent``), the free tier allows
about 100 requests per minute per client id (reported in ``X-Ratelimit-Remaining/-Reset``, honoured
here), commercial use needs an agreement with Reddit, and deleted content must not be kept.

Why plain httpx rather than praw: praw is synchronous and would need a thread per poll; the three
listing calls are small, and with httpx the token, statuses and rate-limit headers map directly to
our error policy while tests replay praw's recorded traffic from a local server.

Resume: listings are newest first; the cursor keeps the fullname of the newest item delivered and
asks for ``before=<fullname>``, which pages *forward* in time (like praw's streams). An anchor that
was deleted makes ``before`` answer nothing forever, so after ``reanchor_after_empty`` empty answers
one unanchored page is read and filtered by the stored creation time. Comment trees of watched
threads use a timestamp watermark. Comments hidden behind "load more" are not expanded.

Deleted and removed content is not kept: a comment whose body is ``[deleted]``/``[removed]``, a
submission whose self text is, or any item Reddit marks ``removed_by_category`` is skipped and
counted (``skip_reasons`` ``deleted``/``removed``) — a removed submission's title included, as the
post is gone from Reddit even where its title still shows. Items deleted *after* they were
stored are not looked up again.

A link post's text has its link (the submission's ``url``) under the title, as Reddit shows it,
so the team sees where it points and watchlist ``site:``/``url:`` and domain keywords match it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sources.base import AuthError, Author, Cursor, Mention, NotConfiguredError, PollResult, SourceContext
from sources.http import RateLimitGate, check_response, clock_seconds, json_body, request
from sources.text import clip
from sources.watermark import Watermark, stream_prefix

__all__ = ["RedditOptions", "RedditSource", "gone_reason", "listing_things", "thing_to_mention"]

_USER_REF = re.compile(r"(?<![\w/])/?u/([A-Za-z0-9_-]{3,20})")
_SUBREDDIT = re.compile(r"^[A-Za-z0-9_]{2,21}$")
_THREAD = re.compile(r"^(?:t3_)?([a-z0-9]{1,12})$")
#: A link post's address as it may go into the text: http(s), one token (no space or control).
_LINK = re.compile(r"https?://[^\s\x00-\x1f\x7f]+", re.IGNORECASE)
#: What Reddit shows instead of the text of deleted and removed items, and the skip reason.
_GONE_TEXT = {"[deleted]": "deleted", "[removed]": "removed"}
#: removed_by_category values meaning the author deleted the item (the others: moderators, Reddit).
_DELETED_BY_AUTHOR = frozenset({"deleted", "author"})


class RedditOptions(BaseModel):
    """Settings of one Reddit source."""

    model_config = ConfigDict(extra="forbid")

    queries: list[str] = Field(default_factory=list, description="Search queries (newest first).")
    search_subreddit: str = Field(
        "all", description="Subreddit the searches are restricted to; all = everywhere."
    )
    subreddits: list[str] = Field(default_factory=list, description="Subreddits whose new posts are read.")
    submissions: bool = Field(True, description="Read new submissions of the subreddits.")
    comments: bool = Field(True, description="Read new comments of the subreddits.")
    threads: list[str] = Field(
        default_factory=list, description="Submission ids whose comment trees are watched."
    )
    client_id_env: str = Field(
        "REDDIT_CLIENT_ID", description="Environment variable with the app's client id."
    )
    client_id_file: str | None = None
    client_secret_env: str = Field(
        "REDDIT_CLIENT_SECRET", description="Environment variable with the secret."
    )
    client_secret_file: str | None = None
    username_env: str | None = Field(None, description="Script apps: variable with the account name.")
    password_env: str | None = Field(None, description="Script apps: variable with the account password.")
    password_file: str | None = None
    user_agent: str = Field(
        "python:repmon:0.1 (reputation monitoring)",
        min_length=8,
        description="Unique, descriptive User-Agent, ideally ending in (by /u/yourname).",
    )
    auth_url: str = Field("https://www.reddit.com", description="Where tokens are fetched.")
    api_url: str = Field("https://oauth.reddit.com", description="OAuth API base URL.")
    limit: int = Field(100, ge=1, le=100, description="Items per page.")
    max_pages: int = Field(5, ge=1, le=50, description="Pages per listing and poll.")
    reanchor_after_empty: int = Field(
        3, ge=1, le=1000, description="Empty before-answers before re-anchoring."
    )
    timeout: float = Field(30.0, gt=0, le=300)

    @field_validator("subreddits")
    @classmethod
    def _subreddit_names(cls, value: list[str]) -> list[str]:
        names = [v.strip().removeprefix("/").removeprefix("r/") for v in value]
        for name in names:
            if not _SUBREDDIT.match(name):
                raise ValueError(f"{name!r} is not a subreddit name")
        return names

    @field_validator("threads")
    @classmethod
    def _thread_ids(cls, value: list[str]) -> list[str]:
        ids = []
        for thread in value:
            match = _THREAD.match(thread.strip())
            if not match:
                raise ValueError(f"{thread!r} is not a submission id (like 2gmzqe or t3_2gmzqe)")
            ids.append(match.group(1))
        return ids

    @model_validator(mode="after")
    def _something_to_read(self) -> RedditOptions:
        if not (self.queries or self.threads or (self.subreddits and (self.submissions or self.comments))):
            raise ValueError("set queries, subreddits or threads: this source would read nothing")
        return self


class RedditSource:
    """Polls Reddit listings with fullname (``before``) cursors over OAuth."""

    kind: ClassVar[str] = "reddit"
    Options: ClassVar[type[RedditOptions]] = RedditOptions

    def __init__(self, name: str, options: RedditOptions, ctx: SourceContext) -> None:
        self.name = name
        self.options = options
        self._ctx = ctx
        self._client: httpx.AsyncClient | None = None
        self._token: str | None = None
        self._token_expires: datetime | None = None
        self._gate = RateLimitGate(ctx.clock, "x-ratelimit-remaining", "x-ratelimit-reset")
        self._spent = False

    async def poll(self, cursor: Cursor) -> PollResult:
        """Read what is new in every configured listing and thread."""
        self._gate.check(f"reddit source {self.name}")
        self._spent = False
        new_cursor = dict(cursor)
        mentions: list[Mention] = []
        reasons: dict[str, int] = {}
        more = False
        for path, params in self._listings():
            if self._spent:
                more = True
                break
            found, listing_more = await self._poll_listing(path, params, new_cursor, reasons)
            mentions.extend(found)
            more = more or listing_more
        for thread in self.options.threads:
            if self._spent:
                more = True
                break
            mentions.extend(await self._poll_thread(thread, new_cursor, reasons))
        return PollResult(
            mentions, new_cursor, skipped=sum(reasons.values()), skip_reasons=reasons, more=more
        )

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _listings(self) -> Iterator[tuple[str, dict[str, str]]]:
        sub = self.options.search_subreddit
        for query in self.options.queries:
            params = {
                "q": query,
                "sort": "new",
                "type": "link",
                "restrict_sr": "on" if sub != "all" else "off",
            }
            yield f"/r/{sub}/search", params
        for name in self.options.subreddits:
            if self.options.submissions:
                yield f"/r/{name}/new", {}
            if self.options.comments:
                yield f"/r/{name}/comments", {}

    async def _poll_listing(
        self, path: str, params: Mapping[str, str], cursor: Cursor, reasons: dict[str, int]
    ) -> tuple[list[Mention], bool]:
        prefix = stream_prefix("rl", path + "?" + "&".join(f"{k}={v}" for k, v in sorted(params.items())))
        before = cursor.get(prefix + "before") or None
        newest_utc = _float(cursor.get(prefix + "utc"))
        empty = int(cursor.get(prefix + "empty") or 0)
        limit = self.options.limit
        delivered: list[dict[str, Any]] = []
        more = False
        if before is None:
            delivered = await self._listing(path, {**params, "limit": str(limit)})
        else:
            for page_no in range(1, self.options.max_pages + 1):
                page = await self._listing(path, {**params, "limit": str(limit), "before": before})
                if not page:
                    if not delivered:
                        empty += 1
                    break
                delivered.extend(page)
                before = _newest(page)["name"]
                empty = 0
                if len(page) < limit:
                    break
                if page_no == self.options.max_pages or self._spent:
                    more = True
                    break
            if not delivered and empty >= self.options.reanchor_after_empty:
                # The anchor may be gone (deleted/removed): read the newest page, keep what is newer.
                page = await self._listing(path, {**params, "limit": str(limit)})
                delivered = [
                    t for t in page if t["name"] != before and _float(t.get("created_utc")) >= newest_utc
                ]
                empty = 0
        if delivered:
            top = _newest(delivered)
            cursor[prefix + "before"] = str(top["name"])
            cursor[prefix + "utc"] = repr(_float(top.get("created_utc")))
        if empty:
            cursor[prefix + "empty"] = str(empty)
        else:
            cursor.pop(prefix + "empty", None)
        mentions = [thing_to_mention(t, source_name=self.name) for t in _kept(delivered, reasons)]
        return mentions, more

    async def _poll_thread(self, thread: str, cursor: Cursor, reasons: dict[str, int]) -> list[Mention]:
        prefix = stream_prefix("rt", thread)
        mark = Watermark.from_cursor(cursor, prefix)
        payload = await self._get(f"/comments/{thread}", {"sort": "new", "limit": "500"})
        listings = payload if isinstance(payload, list) else [payload]
        things: list[dict[str, Any]] = []
        for listing in listings:
            for kind, data in listing_things(listing):
                if kind == "more":
                    reasons["more_comments"] = reasons.get("more_comments", 0) + 1
                elif kind in ("t1", "t3"):
                    things.append(data)
        authors = {str(t.get("name")): str(t.get("author")) for t in things if t.get("author")}
        fresh = [t for t in things if not mark.covers(str(t["name"]), _utc(t))]
        cursor.update(mark.advanced((str(t["name"]), _utc(t)) for t in fresh).to_cursor(prefix))
        return [thing_to_mention(t, source_name=self.name, authors=authors) for t in _kept(fresh, reasons)]

    async def _listing(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        payload = await self._get(path, params)
        return [data for kind, data in listing_things(payload) if kind in ("t1", "t3")]

    async def _get(self, path: str, params: Mapping[str, str]) -> Any:
        client = self._http()
        url = self.options.api_url.rstrip("/") + path
        query = {**params, "raw_json": "1"}
        for attempt in (1, 2):
            token = await self._access_token(client)
            headers = {"Authorization": f"bearer {token}", "User-Agent": self.options.user_agent}
            response = await request(
                client,
                "GET",
                url,
                headers=headers,
                params=query,
                now=clock_seconds(self._ctx.clock),
                check=False,
            )
            if response.status_code == 401 and attempt == 1:
                # Tokens expire (and can be revoked early): fetch a new one once.
                self._token = None
                continue
            if response.status_code in (403, 404):
                _raise_listing_refusal(response, path)
            check_response(response, clock_seconds(self._ctx.clock))
            if self._gate.observe(response, reserve=1):
                self._spent = True
            return json_body(response)
        raise AuthError("reddit: the API refused a freshly issued token")  # pragma: no cover - loop returns

    async def _access_token(self, client: httpx.AsyncClient) -> str:
        now = self._ctx.clock()
        if self._token and self._token_expires and now < self._token_expires:
            return self._token
        opts = self.options
        client_id = self._ctx.secret(opts.client_id_env, opts.client_id_file, what="Reddit client id")
        secret = self._ctx.secret(
            opts.client_secret_env, opts.client_secret_file, what="Reddit client secret"
        )
        data = {"grant_type": "client_credentials"}
        if opts.username_env:
            data = {
                "grant_type": "password",
                "username": self._ctx.secret(opts.username_env, None, what="Reddit username"),
                "password": self._ctx.secret(opts.password_env, opts.password_file, what="Reddit password"),
            }
        response = await request(
            client,
            "POST",
            opts.auth_url.rstrip("/") + "/api/v1/access_token",
            headers={"User-Agent": opts.user_agent},
            data=data,
            auth=(client_id, secret),
            now=clock_seconds(self._ctx.clock),
        )
        body = json_body(response)
        if not isinstance(body, dict) or not body.get("access_token"):
            error = body.get("error") if isinstance(body, dict) else None
            # Reddit answers a wrong password with HTTP 200 and {"error": "invalid_grant"}.
            raise AuthError(f"reddit refused the app credentials: {str(error or 'no access token')[:80]}")
        self._token = str(body["access_token"])
        expires = _float(body.get("expires_in")) or 3600.0
        self._token_expires = now + timedelta(seconds=max(60.0, expires - 60.0))
        return self._token

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._ctx.http_client(timeout=self.options.timeout)
        return self._client


def _raise_listing_refusal(response: httpx.Response, path: str) -> None:
    """403/404 with a reason is a private, quarantined or banned subreddit: a config problem."""
    try:
        body = response.json()
    except ValueError:
        body = None
    reason = body.get("reason") if isinstance(body, dict) else None
    if reason or response.status_code == 404:
        raise NotConfiguredError(
            f"reddit {path}: HTTP {response.status_code} ({str(reason or 'not found')[:40]})"
        )


def listing_things(payload: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (kind, data) in a Listing, comment replies included, depth first."""
    if not isinstance(payload, dict):
        return
    data = payload.get("data")
    children = data.get("children") if isinstance(data, dict) else None
    for child in children or []:
        if not isinstance(child, dict) or not isinstance(child.get("data"), dict):
            continue
        kind, thing = str(child.get("kind")), child["data"]
        if kind in ("t1", "t3") and not thing.get("name"):
            continue
        yield kind, thing
        replies = thing.get("replies")
        if isinstance(replies, dict):
            yield from listing_things(replies)


def gone_reason(data: Mapping[str, Any]) -> str | None:
    """``deleted`` or ``removed`` when Reddit no longer shows the item's content, else None.

    Reddit's Data API Terms: content deleted from Reddit must not be kept. A deleted *account*
    (author ``[deleted]``) with its text still shown is not a deleted item.
    """
    name = str(data.get("name") or "")
    text = data.get("body") if name.startswith("t1_") else data.get("selftext")
    if isinstance(text, str) and text.strip() in _GONE_TEXT:
        return _GONE_TEXT[text.strip()]
    category = data.get("removed_by_category")
    if category:
        return "deleted" if category in _DELETED_BY_AUTHOR else "removed"
    return None


def _kept(things: list[dict[str, Any]], reasons: dict[str, int]) -> list[dict[str, Any]]:
    """The items still shown on Reddit; the others are counted by reason."""
    kept = []
    for thing in things:
        reason = gone_reason(thing)
        if reason is None:
            kept.append(thing)
        else:
            reasons[reason] = reasons.get(reason, 0) + 1
    return kept


def thing_to_mention(
    data: Mapping[str, Any], *, source_name: str | None = None, authors: Mapping[str, str] | None = None
) -> Mention:
    """A submission (t3) or comment (t1) as a mention."""
    name = str(data["name"])
    is_comment = name.startswith("t1_")
    author_name = data.get("author")
    author = (
        Author(
            handle=str(author_name),
            id=data.get("author_fullname"),
            url=f"https://www.reddit.com/user/{author_name}",
        )
        if author_name and author_name != "[deleted]"
        else Author()
    )
    title = None if is_comment else (data.get("title") or None)
    permalink = data.get("permalink")
    url = _permalink(data, name) if not permalink else f"https://www.reddit.com{permalink}"
    if is_comment:
        text = str(data.get("body") or "")
        handles = tuple(dict.fromkeys(_USER_REF.findall(text)))
    else:
        body = str(data.get("selftext") or "").strip()
        handles = tuple(dict.fromkeys(_USER_REF.findall(f"{title or ''}\n\n{body}")))
        # A link post's subject is its link: shown under the title, as on Reddit, so the team
        # sees where it points and `site:`/`url:` and domain keywords match it.
        text = "\n\n".join(p for p in (str(title or ""), _linked_url(data, url), body) if p)
    parent = str(data["parent_id"]) if is_comment and data.get("parent_id") else None
    in_reply_to = None
    if parent:
        in_reply_to = (authors or {}).get(parent) or (
            data.get("link_author") if parent.startswith("t3_") else None
        )
    return Mention(
        source="reddit",
        external_id=name,
        text=clip(text),
        created_at=_utc(data),
        url=url,
        author=author,
        title=title,
        parent_id=parent,
        thread_id=str(data.get("link_id") or name) if is_comment else name,
        in_reply_to=in_reply_to if in_reply_to and in_reply_to != "[deleted]" else None,
        mentioned_handles=handles,
        source_name=source_name,
        raw={
            k: data[k]
            for k in ("subreddit", "score", "num_comments", "permalink", "url", "over_18", "link_id")
            if k in data
        },
    )


def _linked_url(data: Mapping[str, Any], permalink: str) -> str | None:
    """The address a link post points to (its ``url``); None for a self post.

    A crosspost's ``url`` (the original post) may be a path relative to reddit.com.
    """
    if data.get("is_self") is True:
        return None
    link = data.get("url")
    if not isinstance(link, str) or not link.strip():
        return None
    link = link.strip()
    if link.startswith("/") and not link.startswith("//"):
        link = "https://www.reddit.com" + link
    if not _LINK.fullmatch(link) or link.rstrip("/") == permalink.rstrip("/"):
        return None
    return link


def _permalink(data: Mapping[str, Any], name: str) -> str:
    """The canonical link when the answer has no ``permalink`` (older comment listings)."""
    ident = name.split("_", 1)[1]
    link = str(data.get("link_id") or "").removeprefix("t3_")
    subreddit = data.get("subreddit")
    if name.startswith("t1_") and link and subreddit:
        return f"https://www.reddit.com/r/{subreddit}/comments/{link}/_/{ident}/"
    if name.startswith("t1_") and link:
        return f"https://www.reddit.com/comments/{link}/_/{ident}/"
    return f"https://www.reddit.com/comments/{ident}/"


def _newest(things: list[dict[str, Any]]) -> dict[str, Any]:
    """The newest item (listings are newest first; ties keep listing order)."""
    return max(things, key=lambda t: _float(t.get("created_utc")))


def _utc(data: Mapping[str, Any]) -> datetime:
    return datetime.fromtimestamp(_float(data.get("created_utc")), UTC)


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
