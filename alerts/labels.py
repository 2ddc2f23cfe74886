"""Display names shared by every rendering (Slack, console, digests)."""

from __future__ import annotations

__all__ = ["source_label"]

SOURCE_LABELS = {
    "x": "X",
    "twitter": "X",
    "reddit": "Reddit",
    "bluesky": "Bluesky",
    "mastodon": "Mastodon",
    "trustpilot": "Trustpilot",
    "appstore": "App Store",
    "app_store": "App Store",
    "googleplay": "Google Play",
    "google_play": "Google Play",
    "kiyoh": "Kiyoh",
    "rss": "RSS",
    "replay": "Replay",
}


def source_label(source: str) -> str:
    """A source's display name (``googleplay`` → ``Google Play``)."""
    return SOURCE_LABELS.get(source.lower(), source.replace("_", " ").title())
