"""Replay: reads mentions from a JSONL file (demos, backfills, load tests).

Credentials: none. Each line is one JSON object with at least ``id`` and ``text``; optional
``source`` (the kind to record, default ``replay``), ``created_at`` (ISO 8601), ``url``,
``author`` (``{"handle", "name", "followers"}``), ``lang``, ``rating``, ``in_reply_to``,
``mentions`` (handles), ``repost_of``, ``title``. The cursor is the number of lines consumed, so a
restart resumes exactly where the last committed batch ended.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from sources.base import Author, Cursor, Mention, PollResult, SourceContext, SourceError
from sources.text import clip, parse_timestamp, scrub_mention

__all__ = ["ReplayOptions", "ReplaySource", "mention_from_record"]


class ReplayOptions(BaseModel):
    """Settings of a replay source."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="JSONL file with one mention per line.")
    batch_size: int = Field(500, ge=1, le=100_000, description="Lines read per poll.")


class ReplaySource:
    """Feeds mentions from a JSONL file in batches, resuming from the stored line number."""

    kind: ClassVar[str] = "replay"
    Options: ClassVar[type[ReplayOptions]] = ReplayOptions

    def __init__(self, name: str, options: ReplayOptions, ctx: SourceContext) -> None:
        self.name = name
        self.options = options
        self._ctx = ctx

    async def poll(self, cursor: Cursor) -> PollResult:
        """Read the next batch of lines after the cursor's line number."""
        start = int(cursor.get("line", "0"))
        return await asyncio.to_thread(self._read, start)

    def _read(self, start: int) -> PollResult:
        try:
            handle = self.options.path.open(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise SourceError(
                f"replay {self.name}: cannot open {self.options.path}: {exc.strerror}"
            ) from None
        mentions: list[Mention] = []
        reasons: dict[str, int] = {}
        line_no = 0
        with handle:
            for line_no, line in enumerate(handle, start=1):
                if line_no <= start:
                    continue
                if line_no > start + self.options.batch_size:
                    line_no -= 1
                    more = True
                    break
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    mentions.append(mention_from_record(record, source_name=self.name))
                except (ValueError, TypeError, KeyError) as exc:
                    reason = "bad_json" if isinstance(exc, json.JSONDecodeError) else "bad_record"
                    reasons[reason] = reasons.get(reason, 0) + 1
            else:
                more = False
        end = max(start, line_no)
        return PollResult(
            mentions, {"line": str(end)}, skipped=sum(reasons.values()), skip_reasons=reasons, more=more
        )

    async def aclose(self) -> None:
        """Nothing to release."""


def mention_from_record(record: dict[str, Any], *, source_name: str | None = None) -> Mention:
    """Build a mention from one replay record; raises KeyError/ValueError/TypeError when unusable."""
    if not isinstance(record, dict):
        raise TypeError("record is not an object")
    external_id = str(record["id"])
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("record has no text")
    created = parse_timestamp(record.get("created_at"))
    if created is None:
        raise ValueError("record has no valid created_at")
    author_raw = record.get("author") or {}
    if isinstance(author_raw, str):
        author_raw = {"handle": author_raw}
    followers = author_raw.get("followers")
    # JSON allows lone surrogates ("\ud83d" of a cut emoji): U+FFFD instead, or storing would fail.
    return scrub_mention(
        Mention(
            source=str(record.get("source") or "replay"),
            external_id=external_id,
            text=clip(text),
            created_at=created,
            url=record.get("url"),
            author=Author(
                handle=author_raw.get("handle"),
                name=author_raw.get("name"),
                followers=int(followers) if followers is not None else None,
            ),
            title=record.get("title"),
            language=record.get("lang"),
            rating=float(record["rating"]) if record.get("rating") is not None else None,
            rating_max=float(record["rating_max"]) if record.get("rating_max") is not None else None,
            in_reply_to=record.get("in_reply_to"),
            mentioned_handles=tuple(record.get("mentions") or ()),
            repost_of=record.get("repost_of"),
            source_name=source_name,
            raw=record,
        )
    )
