"""Classifiers: sentiment, complaint and language scoring."""

from classifiers.registry import load_classifier

__all__ = ["load_classifier"]
