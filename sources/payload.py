"""Defensive access to decoded JSON: API answers are data from outside, never trusted shapes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["SkipCounter", "as_dict", "as_list"]


def as_dict(value: object) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty dict."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    """``value`` when it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


class SkipCounter:
    """Counts items a poll leaves out because they cannot be normalised, by reason."""

    def __init__(self) -> None:
        self.reasons: dict[str, int] = {}

    def keep(
        self, items: Iterable[Any], usable: Callable[[Any], bool], reason: str = "malformed"
    ) -> list[Any]:
        """The usable items; the others are counted under ``reason``."""
        kept = []
        for item in items:
            if usable(item):
                kept.append(item)
            else:
                self.reasons[reason] = self.reasons.get(reason, 0) + 1
        return kept

    @property
    def total(self) -> int:
        """How many items were left out."""
        return sum(self.reasons.values())
