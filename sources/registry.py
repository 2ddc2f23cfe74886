"""The one place every source type is registered: ``type:`` in the YAML names a key here."""

from __future__ import annotations

from typing import ClassVar, Protocol

from pydantic import BaseModel

from sources.appstore import AppStoreSource
from sources.base import Source, SourceContext
from sources.bluesky import BlueskySource
from sources.googleplay import GooglePlaySource
from sources.kiyoh import KiyohSource
from sources.mastodon import MastodonSource
from sources.reddit import RedditSource
from sources.replay import ReplaySource
from sources.rss import FeedSource
from sources.trustpilot import TrustpilotSource
from sources.x import XSource

__all__ = ["SOURCE_TYPES", "SourceType", "build_source"]


class SourceType(Protocol):
    """A source class: its kind, its options model, and a constructor."""

    kind: ClassVar[str]
    Options: ClassVar[type[BaseModel]]

    def __call__(self, name: str, options: BaseModel, ctx: SourceContext) -> Source:
        """Build the source."""
        ...


#: Source ``type`` in the configuration → class. Adding a source adds one line here.
SOURCE_TYPES: dict[str, type] = {
    "rss": FeedSource,
    "replay": ReplaySource,
    "x": XSource,
    "reddit": RedditSource,
    "mastodon": MastodonSource,
    "bluesky": BlueskySource,
    "appstore": AppStoreSource,
    "kiyoh": KiyohSource,
    "trustpilot": TrustpilotSource,
    "googleplay": GooglePlaySource,
}


def build_source(type_name: str, name: str, options: BaseModel, ctx: SourceContext) -> Source:
    """Instantiate the source registered as ``type_name``."""
    cls = SOURCE_TYPES[type_name]
    source: Source = cls(name, options, ctx)
    return source
