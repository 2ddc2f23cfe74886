"""A mock Slack Web API (plus incoming webhook and Socket Mode) on 127.0.0.1, and sample alerts for tests.

Use it through slack_sdk's ``base_url``::

    async with MockSlack() as slack:
        client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)

Failure modes: :meth:`MockSlack.rate_limit`, :meth:`MockSlack.outage`, :meth:`MockSlack.fail_auth`.
Everything it receives is recorded (``calls``, ``messages``, ``updates``, ``uploads``, ``webhook_posts``,
``acks``) so tests assert on what actually went over the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import WSMsgType, web

from alerts.model import AlertItem, IncidentView, MentionView, Notification, ScoreView

BOT_TOKEN = "xoxb-test"
APP_TOKEN = "xapp-test"
WEBHOOK_PATH = "/services/T0REPMON/B0HOOK/s3cr3tW3bh00kT0k3n"

# Hostile payloads: each must render without pinging, linking, formatting or breaking anything.
HOSTILE_PAYLOADS: list[str] = [
    "<!channel> refund now",
    "<!here|here> hello",
    "<!everyone>",
    "hey <@U123> and <@U123|boss>",
    "<#C123|general> look",
    "<!subteam^S0123|@webcare> wake up",
    "<http://evil.example|click here for your refund>",
    "<https://evil.example>",
    "@channel @here @everyone @webcare-team",
    "*bold* _italic_ ~strike~ `code` ```block```",
    "``` close your code block",
    "&lt;!channel&gt; already escaped",
    "a & b < c > d",
    "\u202eevil override\u202c reversed",
    "zero\u200bwidth\u2060joiner\ufeff",
    "null\x00byte and \x1b[31mANSI\x1b[0m escape",
    "emoji 👨\u200d👩\u200d👧 ok 🇳🇱",
    "x" * 10_000,
    "<" * 3000,
    "&" * 3000,
    "line1\r\nline2\rline3\u2028line4",
    "> quote\n>>> block quote",
    "[bold red]rich markup[/] {0} %s",
    "<script>alert(1)</script>",
    "\ud800 lone surrogate",
]


def _ts_factory() -> Any:
    counter = itertools.count(1)
    base = int(time.time())

    def next_ts() -> str:
        return f"{base}.{next(counter):06d}"

    return next_ts


@dataclass
class _Mode:
    remaining: int | None  # None: until cleared
    status: int
    retry_after: float | None = None
    error: str | None = None
    methods: frozenset[str] | None = None


@dataclass
class MockSlack:
    """In-process mock of the Slack APIs repmon uses (Web API, file upload, webhook, Socket Mode)."""

    bot_token: str = BOT_TOKEN
    app_token: str = APP_TOKEN
    channels: dict[str, str] = field(
        default_factory=lambda: {"C0WEBCARE1": "webcare", "C0CRISIS01": "crisis"}
    )
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)
    uploads: list[dict[str, Any]] = field(default_factory=list)
    upload_bytes: dict[str, bytes] = field(default_factory=dict)
    webhook_posts: list[dict[str, Any]] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    raw_requests: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._modes: list[_Mode] = []
        self._next_ts = _ts_factory()
        self._file_ids = itertools.count(1)
        self._envelopes = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_connected = asyncio.Event()
        self._ack_events: dict[str, asyncio.Event] = {}
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> MockSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/services/{rest:.*}", self._webhook)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)  # its log is "Slack's", not ours
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close sockets and stop listening."""
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What to pass as slack_sdk's ``base_url``."""
        return f"{self.base_url}/api/"

    @property
    def webhook_url(self) -> str:
        """An incoming-webhook URL served by this mock (its path is the secret)."""
        return f"{self.base_url}{WEBHOOK_PATH}"

    # ------------------------------------------------------------------ failure modes

    def rate_limit(self, n: int = 1, retry_after: float = 1, methods: set[str] | None = None) -> None:
        """The next ``n`` calls answer HTTP 429 with ``Retry-After``."""
        self._modes.append(_Mode(n, 429, retry_after, "ratelimited", frozenset(methods) if methods else None))

    def outage(self, n: int | None = None, status: int = 503, methods: set[str] | None = None) -> None:
        """The next ``n`` calls (all, if None, until :meth:`heal`) answer a 5xx HTML page."""
        self._modes.append(_Mode(n, status, None, None, frozenset(methods) if methods else None))

    def fail_auth(self, error: str = "invalid_auth") -> None:
        """Every call answers ``{"ok": false, "error": error}`` until :meth:`heal`."""
        self._modes.append(_Mode(None, 200, None, error))

    def fail_next(self, method: str, error: str, n: int = 1) -> None:
        """The next ``n`` calls of ``method`` answer ``{"ok": false, "error": error}``."""
        self._modes.append(_Mode(n, 200, None, error, frozenset({method})))

    def heal(self) -> None:
        """Clear all failure modes."""
        self._modes.clear()

    def _take_mode(self, method: str) -> _Mode | None:
        for mode in self._modes:
            if mode.methods is not None and method not in mode.methods:
                continue
            if mode.remaining is not None:
                mode.remaining -= 1
                if mode.remaining <= 0:
                    self._modes.remove(mode)
            return mode
        return None

    def _mode_response(self, mode: _Mode, *, webhook: bool = False) -> web.Response:
        if mode.status == 429:
            headers = {"Retry-After": f"{mode.retry_after:g}"}
            if webhook:
                return web.Response(status=429, text="rate_limited", headers=headers)
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers=headers)
        if mode.status >= 500:
            return web.Response(
                status=mode.status,
                text="<html><body>Service Unavailable</body></html>",
                content_type="text/html",
            )
        if webhook:
            status = 404 if mode.error == "no_service" else 403
            return web.Response(status=status, text=mode.error or "invalid_token")
        return web.json_response({"ok": False, "error": mode.error})

    # ------------------------------------------------------------------ helpers for tests

    def all_messages(self) -> list[dict[str, Any]]:
        """Every message posted (roots and thread replies), in order."""
        return [m for msgs in self.messages.values() for m in msgs]

    def roots(self, channel: str) -> list[dict[str, Any]]:
        """Top-level messages of a channel (by id or name)."""
        msgs = self.messages.get(self._channel_id(channel) or "", [])
        return [m for m in msgs if m.get("thread_ts", m["ts"]) == m["ts"]]

    def replies(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """Thread replies under ``ts`` (excluding the parent)."""
        msgs = self.messages.get(self._channel_id(channel) or "", [])
        return [m for m in msgs if m.get("thread_ts") == ts and m["ts"] != ts]

    def inject(self, channel_id: str, count: int = 1, text: str = "noise") -> None:
        """Put ``count`` messages from someone else into a channel (history paging tests)."""
        for _ in range(count):
            msg = {"type": "message", "ts": self._next_ts(), "user": "U0OTHER", "text": text}
            self.messages.setdefault(channel_id, []).append(msg)

    def method_calls(self, method: str) -> list[dict[str, Any]]:
        """Parameters of every call to ``method``."""
        return [params for name, params in self.calls if name == method]

    def wire_text(self) -> str:
        """Everything received over HTTP, decoded (for "this never appears unescaped" assertions)."""
        return "\n".join(b.decode("utf-8", "replace") for b in self.raw_requests)

    def _channel_id(self, channel: str) -> str | None:
        if channel in self.channels:
            return channel
        name = channel.lstrip("#")
        for cid, cname in self.channels.items():
            if cname == name:
                return cid
        return None

    def _find(self, channel_id: str, ts: str) -> dict[str, Any] | None:
        for msg in self.messages.get(channel_id, []):
            if msg["ts"] == ts:
                return msg
        return None

    # ------------------------------------------------------------------ Web API

    async def _params(self, request: web.Request) -> dict[str, Any]:
        body = await request.read()
        self.raw_requests.append(body)
        params: dict[str, Any] = dict(request.query)
        if body:
            if request.content_type == "application/json":
                params.update(json.loads(body))
            elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                params.update(dict(await request.post()))
        for key in ("blocks", "metadata", "files", "attachments"):
            if isinstance(params.get(key), str):
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(params[key])
        return params

    def _auth_error(self, request: web.Request, method: str) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return "not_authed"
        token = header.removeprefix("Bearer ")
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        return None if token == expected else "invalid_auth"

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append((method, params))
        mode = self._take_mode(method)
        if mode is not None:
            return self._mode_response(mode)
        error = self._auth_error(request, method)
        if error:
            return web.json_response({"ok": False, "error": error})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: dict[str, Any] = handler(params)
        return web.json_response(result)

    def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://repmon-test.slack.com/",
            "team": "Repmon Test",
            "user": "repmon",
            "team_id": "T0REPMON",
            "user_id": "U0REPMON",
            "bot_id": "B0REPMON",
        }

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._channel_id(str(params.get("channel", "")))
        if channel_id is None:
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        thread_ts = params.get("thread_ts")
        if thread_ts and self._find(channel_id, thread_ts) is None:
            return {"ok": False, "error": "thread_not_found"}
        msg = {
            "type": "message",
            "ts": self._next_ts(),
            "user": "U0REPMON",
            "bot_id": "B0REPMON",
            "text": params.get("text", ""),
            "blocks": params.get("blocks") or [],
            "metadata": params.get("metadata"),
            "channel": channel_id,
            "unfurl_links": params.get("unfurl_links"),
            "unfurl_media": params.get("unfurl_media"),
        }
        if thread_ts:
            msg["thread_ts"] = thread_ts
            parent = self._find(channel_id, thread_ts)
            assert parent is not None
            parent["thread_ts"] = thread_ts
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            parent["is_parent"] = True
        self.messages.setdefault(channel_id, []).append(msg)
        return {"ok": True, "channel": channel_id, "ts": msg["ts"], "message": _public(msg, True)}

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = str(params.get("channel", ""))
        if channel_id not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        msg = self._find(channel_id, str(params.get("ts", "")))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if "text" in params:
            msg["text"] = params["text"]
        if "blocks" in params:
            msg["blocks"] = params["blocks"]
        if params.get("metadata"):
            msg["metadata"] = params["metadata"]
        msg["edited"] = {"user": "U0REPMON", "ts": self._next_ts()}
        self.updates.append({"channel": channel_id, **params})
        return {"ok": True, "channel": channel_id, "ts": msg["ts"], "text": msg["text"]}

    def _page(self, items: list[dict[str, Any]], params: dict[str, Any], key: str) -> dict[str, Any]:
        limit = int(params.get("limit") or 100)
        start = int(params.get("cursor") or 0)
        page = items[start : start + limit]
        more = start + limit < len(items)
        return {
            "ok": True,
            key: page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _in_window(self, msg: dict[str, Any], params: dict[str, Any]) -> bool:
        ts = float(msg["ts"])
        oldest, latest = params.get("oldest"), params.get("latest")
        return (oldest is None or ts >= float(oldest)) and (latest is None or ts <= float(latest))

    def _m_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = str(params.get("channel", ""))
        if channel_id not in self.channels:  # like Slack: IDs only
            return {"ok": False, "error": "channel_not_found"}
        with_meta = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        msgs = [
            _public(m, with_meta)
            for m in reversed(self.messages.get(channel_id, []))
            if (not m.get("thread_ts") or m["thread_ts"] == m["ts"]) and self._in_window(m, params)
        ]
        return self._page(msgs, params, "messages")

    def _m_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = str(params.get("channel", ""))
        if channel_id not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        ts = str(params.get("ts", ""))
        parent = self._find(channel_id, ts)
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        with_meta = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        thread = [parent] + [
            m
            for m in self.messages[channel_id]
            if m.get("thread_ts") == ts and m["ts"] != ts and self._in_window(m, params)
        ]
        return self._page([_public(m, with_meta) for m in thread], params, "messages")

    def _m_conversations_list(self, params: dict[str, Any]) -> dict[str, Any]:
        chans = [{"id": cid, "name": name, "is_channel": True} for cid, name in self.channels.items()]
        return self._page(chans, params, "channels")

    def _m_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("filename") or not params.get("length"):
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._file_ids):08d}"
        self.uploads.append(
            {"file_id": file_id, "filename": params["filename"], "length": int(params["length"])}
        )
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files") or []
        out = []
        for f in files:
            record = next((u for u in self.uploads if u["file_id"] == f["id"]), None)
            if record is None or f["id"] not in self.upload_bytes:
                return {"ok": False, "error": "file_not_found"}
            channel_id = params.get("channel_id")
            if channel_id and channel_id not in self.channels:
                return {"ok": False, "error": "channel_not_found"}
            record.update(
                title=f.get("title"),
                channel_id=channel_id,
                initial_comment=params.get("initial_comment"),
                thread_ts=params.get("thread_ts"),
                completed=True,
            )
            out.append({"id": f["id"], "title": f.get("title"), "name": record["filename"]})
        return {"ok": True, "files": out}

    def _m_apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket?ticket=mock-ticket"}

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        mode = self._take_mode("upload")
        if mode is not None:
            return self._mode_response(mode, webhook=True)
        self.upload_bytes[file_id] = await request.read()
        return web.Response(text=f"OK - {len(self.upload_bytes[file_id])}", content_type="text/plain")

    # ------------------------------------------------------------------ incoming webhook

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.raw_requests.append(body)
        mode = self._take_mode("webhook")
        if mode is not None:
            return self._mode_response(mode, webhook=True)
        if request.path != WEBHOOK_PATH:
            return web.Response(status=404, text="no_service")
        payload = json.loads(body)
        if not payload.get("text") and not payload.get("blocks"):
            return web.Response(status=400, text="no_text")
        self.webhook_posts.append(payload)
        return web.Response(text="ok", content_type="text/html")

    # ------------------------------------------------------------------ Socket Mode

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1, "debug_info": {"host": "mock"}})
        self._socket_connected.set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    self.acks.append(data)
                    event = self._ack_events.get(str(data.get("envelope_id")))
                    if event is not None:
                        event.set()
        finally:
            self._sockets.remove(ws)
        return ws

    async def wait_socket(self, timeout: float = 5) -> None:
        """Wait until a Socket Mode client is connected."""
        await asyncio.wait_for(self._socket_connected.wait(), timeout)

    async def push_interactive(self, payload: dict[str, Any]) -> str:
        """Send an ``interactive`` envelope (e.g. block_actions) to the client; returns its id."""
        await self.wait_socket()
        envelope_id = f"env-{next(self._envelopes)}"
        self._ack_events[envelope_id] = asyncio.Event()
        envelope = {
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": False,
            "payload": payload,
        }
        await self._sockets[-1].send_json(envelope)
        return envelope_id

    async def wait_ack(self, envelope_id: str, timeout: float = 5) -> None:
        """Wait for the client's acknowledgement of an envelope."""
        await asyncio.wait_for(self._ack_events[envelope_id].wait(), timeout)


def _public(msg: dict[str, Any], with_metadata: bool) -> dict[str, Any]:
    out = {k: v for k, v in msg.items() if k not in ("metadata", "channel", "unfurl_links", "unfurl_media")}
    if with_metadata and msg.get("metadata"):
        out["metadata"] = msg["metadata"]
    return out


def block_actions_payload(
    alert_id: int,
    action: str,
    *,
    user_id: str = "U0ALICE",
    user_name: str = "alice",
    channel: str = "C0WEBCARE1",
    message_ts: str = "1700000000.000100",
    action_ts: str = "1700000123.456789",
) -> dict[str, Any]:
    """A realistic ``block_actions`` payload for a click on one of our buttons."""
    return {
        "type": "block_actions",
        "team": {"id": "T0REPMON", "domain": "repmon-test"},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": "T0REPMON"},
        "api_app_id": "A0REPMON",
        "token": "verification-token-unused",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": "123.456.abc",
        "channel": {"id": channel, "name": "webcare"},
        "message": {"type": "message", "ts": message_ts, "text": "alert", "blocks": []},
        "response_url": "https://hooks.slack.com/actions/T0REPMON/1/abc",
        "actions": [
            {
                "type": "button",
                "action_id": f"repmon:{action}",
                "block_id": f"repmon:{alert_id}:actions",
                "text": {"type": "plain_text", "text": action, "emoji": True},
                "value": str(alert_id),
                "action_ts": action_ts,
            }
        ],
    }


# ---------------------------------------------------------------------- sample alerts

T0 = datetime(2024, 5, 1, 14, 3, tzinfo=UTC)


def mention(text: str = "Loving the new app from @acme, super fast delivery!", **kw: Any) -> MentionView:
    """A sample post."""
    base = MentionView(
        source="x",
        text=text,
        created_at=T0,
        url="https://x.com/jdoe/status/1790000000000000001",
        author_handle="jdoe",
        author_name="Jane Doe",
        followers=12_345,
        language="en",
    )
    return replace(base, **kw)


def scores(**kw: Any) -> ScoreView:
    """Sample classifier scores (positive)."""
    base = ScoreView("positive", 0.02, 0.05, 0.93, 0.04, "vader-3.3.2")
    return replace(base, **kw)


def mention_item(alert_id: int = 1, kind: str = "praise", text: str | None = None, **kw: Any) -> AlertItem:
    """A per-mention alert (praise or complaint)."""
    m = mention(text) if text is not None else mention()
    base = AlertItem(
        alert_id=alert_id,
        key=f"{kind}:x:{alert_id}",
        kind=kind,  # type: ignore[arg-type]
        event="mention",
        severity="info" if kind == "praise" else "warning",
        title="Untagged praise" if kind == "praise" else "Complaint that needs care",
        reason="positive 0.93 ≥ 0.85 and the post does not tag @acme",
        brand="Acme",
        mention=m,
        scores=scores()
        if kind == "praise"
        else scores(sentiment="negative", p_negative=0.9, p_positive=0.02),
    )
    return replace(base, **kw)


def incident(status: str = "open", level: int = 1, count: float = 48, **kw: Any) -> IncidentView:
    """A sample crisis spike."""
    base = IncidentView(
        incident_id=7,
        brand="Acme",
        metric="negative",
        status=status,  # type: ignore[arg-type]
        started_at=T0,
        count=count,
        expected=6.0,
        peak_count=count,
        level=level,
        resolved_at=T0 + timedelta(hours=2, minutes=15) if status == "resolved" else None,
        samples=(
            mention("App is down again, where is my refund?!", author_handle="angry1", followers=230),
            mention("@acme outage? cannot log in", author_handle="bob", followers=5_100_000),
            mention("<!channel> everyone boycott acme", author_handle="troll", followers=3),
        ),
        top_terms=("outage", "refund", "login"),
    )
    return replace(base, **kw)


def spike_item(event: str = "raise", alert_id: int = 100, **kw: Any) -> AlertItem:
    """An incident alert item for ``event`` (raise/escalate/resolve/repeat)."""
    status = "resolved" if event == "resolve" else "open"
    level = {"raise": 1, "escalate": 2, "repeat": 2, "resolve": 2}[event]
    inc = kw.pop("incident", None) or incident(status, level, count=48 if level == 1 else 130)
    base = AlertItem(
        alert_id=alert_id,
        key=f"spike:acme:negative:7:{event}:{level}",
        kind="spike",
        event=event,  # type: ignore[arg-type]
        severity="critical",
        title="Crisis: negative mentions spiking for Acme",
        reason="48 negative mentions in 5 min vs 6 expected (z=6.1)",
        brand="Acme",
        incident=inc,
    )
    return replace(base, **kw)


def ops_item(alert_id: int = 900, **kw: Any) -> AlertItem:
    """An ops alert (a source lost its credentials)."""
    base = AlertItem(
        alert_id=alert_id,
        key=f"ops:source-auth:x:{alert_id}",
        kind="ops",
        event="ops",
        severity="critical",
        title="Source x disabled: authentication failed",
        reason="HTTP 401 from the X API; polling stopped until new credentials are configured",
        labels={"source": "x", "error": "auth"},
    )
    return replace(base, **kw)


def notification(*items: AlertItem, channel: str = "#webcare", **kw: Any) -> Notification:
    """A notification of the given items (default: one praise alert)."""
    items = items or (mention_item(),)
    return Notification(
        channel=channel, group_key=kw.pop("group_key", f"g:{items[0].key}"), items=items, **kw
    )
