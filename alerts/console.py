"""Receivers without Slack: the console (embedded default) and an append-only JSONL audit log.

Both show exactly what Slack would: the console walks the Block Kit blocks from
:func:`alerts.render.render_blocks`; the JSONL log stores the blocks and fallback text verbatim.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from alerts.model import DeliveryError, DeliveryReceipt, Notification
from alerts.render import alert_metadata, metadata_matches, render_blocks, render_text

__all__ = ["ConsoleNotifier", "JsonlNotifier", "blocks_to_rich", "mrkdwn_to_text"]

KIND_STYLES = {"praise": "green", "complaint": "yellow", "spike": "red", "ops": "magenta", "resolved": "cyan"}

# Our own markup in rendered mrkdwn (untrusted text is escaped, so these never come from a post).
_TOKEN_RE = re.compile(
    r"<!date\^\d+\^[^|>]*\|(?P<date>[^>]*)>"
    r"|<(?P<url>https?://[^|>]+)\|(?P<label>[^>]*)>"
    r"|<(?P<bare>https?://[^|>]+)>"
    r"|\*(?P<bold>[^*\n]+)\*"
    r"|`(?P<code>[^`\n]+)`"
)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _inline(text: str, style: str = "") -> Text:
    out = Text(style=style)
    pos = 0
    for m in _TOKEN_RE.finditer(text):
        out.append(_unescape(text[pos : m.start()]))
        if m.group("date") is not None:
            out.append(_unescape(m.group("date")))
        elif m.group("url") is not None:
            out.append(_unescape(m.group("label")), style="underline")
            out.append(f" ({_unescape(m.group('url'))})", style="dim")
        elif m.group("bare") is not None:
            out.append(_unescape(m.group("bare")), style="underline")
        elif m.group("bold") is not None:
            out.append(_unescape(m.group("bold")), style="bold")
        else:
            out.append(_unescape(m.group("code")), style="reverse")
        pos = m.end()
    out.append(_unescape(text[pos:]))
    return out


def mrkdwn_to_text(mrkdwn: str, style: str = "") -> Text:
    """Our rendered mrkdwn as rich Text: bold, links as ``label (url)``, quotes as ``│``."""
    out = Text(style=style)
    for i, line in enumerate(mrkdwn.split("\n")):
        if i:
            out.append("\n")
        if line.startswith(">"):
            out.append("│ ", style="dim")
            out.append_text(_inline(line[1:], "italic"))
        else:
            out.append_text(_inline(line))
    return out


def _fields(fields: list[dict[str, Any]]) -> Table:
    grid = Table.grid(padding=(0, 3))
    grid.add_column()
    grid.add_column()
    cells = []
    for f in fields:
        label, _, value = f.get("text", "").partition("\n")
        cell = mrkdwn_to_text(label, "bold")
        cell.append(": ")
        cell.append_text(mrkdwn_to_text(value))
        cells.append(cell)
    for i in range(0, len(cells), 2):
        grid.add_row(*cells[i : i + 2])
    return grid


def blocks_to_rich(blocks: list[dict[str, Any]]) -> tuple[str | None, list[RenderableType]]:
    """Walk Block Kit blocks: the header text (if any) and one renderable per block."""
    title: str | None = None
    parts: list[RenderableType] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = str(block["text"]["text"])
        elif kind == "section":
            if "text" in block:
                parts.append(mrkdwn_to_text(block["text"]["text"]))
            if block.get("fields"):
                parts.append(_fields(block["fields"]))
        elif kind == "context":
            line = Text(style="dim")
            for j, el in enumerate(block.get("elements", [])):
                if j:
                    line.append("  ·  ")
                line.append_text(mrkdwn_to_text(el.get("text", "")))
            parts.append(line)
        elif kind == "actions":
            line = Text(style="dim")
            for el in block.get("elements", []):
                line.append(f"[{el['text']['text']}] ")
            parts.append(line)
        elif kind == "divider":
            parts.append(Text("─" * 40, style="dim"))
    return title, parts


# Errors that another attempt may not hit (disk full, quota, interrupted, broken pipe to a restarting pager).
_TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EINTR, errno.EAGAIN, errno.EIO, errno.EPIPE})


def _write_error(receiver: str, exc: Exception) -> DeliveryError:
    """A DeliveryError for a failed write: retryable for transient OS errors, final otherwise."""
    if isinstance(exc, OSError):
        retryable = exc.errno in _TRANSIENT_ERRNOS
        reason = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        return DeliveryError(f"{receiver}: write failed ({reason})", retryable=retryable)
    return DeliveryError(f"{receiver}: write failed ({type(exc).__name__})", retryable=False)


def _style(n: Notification) -> str:
    first = n.items[0] if n.items else None
    if first is None:
        return "white"
    if first.incident is not None and first.incident.status == "resolved":
        return KIND_STYLES["resolved"]
    return KIND_STYLES.get(first.kind, "white")


class _Console(Console):
    """rich's Console, except a broken pipe is an error to report, not a reason to exit the process."""

    def on_broken_pipe(self) -> None:
        """Raise instead of rich's default (redirect stdout to /dev/null and ``SystemExit``)."""
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


class ConsoleNotifier:
    """Prints each notification as Slack would show it (same blocks), coloured per kind (offline default)."""

    name = "console"
    #: find_delivered() cannot tell, so a send interrupted by a crash is not repeated (at most once).
    reconciles = False

    def __init__(
        self, stream: IO[str] | None = None, *, color: bool | None = None, width: int | None = None
    ) -> None:
        self._stream = stream
        self._color = color
        self._width = width

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """Render the notification's blocks to the stream (default: stdout at send time)."""
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            color = self._color if self._color is not None else stream.isatty()
        except ValueError:  # closed stream
            color = False
        console = _Console(
            file=stream,
            width=self._width or (None if color else 100),
            force_terminal=color,
            no_color=not color,
            highlight=False,
            markup=False,
            emoji=False,
        )
        title, parts = blocks_to_rich(render_blocks(notification))
        where = f"→ {notification.channel}" + (" (thread update)" if notification.thread_ts else "")
        panel = Panel(
            Group(*parts),
            title=Text(title or "repmon", style="bold"),
            subtitle=Text(where, style="dim"),
            border_style=_style(notification),
            expand=True,
        )
        try:
            console.print(panel)
            stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: the stream is closed
            raise _write_error(self.name, exc) from None
        return DeliveryReceipt(self.name, message_ts=None, channel=notification.channel)

    async def find_delivered(self, notification: Notification, since: datetime) -> DeliveryReceipt | None:
        """Always None: the console cannot be read back."""
        return None

    async def aclose(self) -> None:
        """Flush the stream."""
        stream = self._stream if self._stream is not None else sys.stdout
        stream.flush()


class JsonlNotifier:
    """Appends one fsynced JSON object per notification; exactly once across crashes."""

    name = "jsonl"
    #: find_delivered() can tell whether a notification arrived, so an unconfirmed one is re-sent.
    reconciles = True

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._lock = asyncio.Lock()
        self._last_ts = 0.0

    def _next_ts(self) -> str:
        # Slack-style "seconds.micros", strictly increasing within this process.
        now = max(time.time(), self._last_ts + 1e-6)
        self._last_ts = now
        return f"{now:.6f}"

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a torn line from a crash mid-write: terminate it (readers skip it)
                    f.write(b"\n")
            f.write(line.encode("utf-8", "backslashreplace") + b"\n")
            f.flush()
            if self._fsync:
                os.fsync(f.fileno())

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """Append the notification (alert keys, channel, text, blocks, metadata) and fsync."""
        n = notification
        ts = self._next_ts()
        record = {
            "ts": ts,
            "sent_at": datetime.now(UTC).isoformat(),
            "channel": n.channel,
            "group_key": n.group_key,
            "thread_ts": n.thread_ts,
            "alert_keys": [i.key for i in n.items],
            "alert_ids": [i.alert_id for i in n.items],
            "events": [i.event for i in n.items],
            "message_ts": n.thread_ts or ts,
            "metadata": alert_metadata(n),
            "text": render_text(n),
            "blocks": render_blocks(n),
        }
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, line)
            except OSError as exc:
                raise _write_error(self.name, exc) from None
        return DeliveryReceipt(self.name, message_ts=str(record["message_ts"]), channel=n.channel)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every complete, valid record in the file (torn or corrupt lines are skipped)."""
        try:
            f = open(self.path, encoding="utf-8", errors="replace")  # noqa: SIM115 - generator owns it
        except FileNotFoundError:
            return
        with f:
            for line in f:
                if not line.endswith("\n"):
                    continue  # torn last line: never reported as delivered
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record

    def _find(self, n: Notification, since: datetime) -> DeliveryReceipt | None:
        since = since if since.tzinfo is not None else since.replace(tzinfo=UTC)  # naive means UTC
        oldest = (since - timedelta(seconds=1)).timestamp()
        for record in self.records():
            try:
                recent = float(record.get("ts", 0)) >= oldest
            except (TypeError, ValueError):
                continue
            if recent and metadata_matches(record.get("metadata"), n):
                return DeliveryReceipt(self.name, message_ts=str(record.get("message_ts")), channel=n.channel)
        return None

    async def find_delivered(self, notification: Notification, since: datetime) -> DeliveryReceipt | None:
        """Scan the file for a record of this notification's alert keys written since ``since``."""
        async with self._lock:
            return await asyncio.to_thread(self._find, notification, since)

    async def aclose(self) -> None:
        """Nothing to release (the file is opened per append)."""
