"""Classifiers: sentiment, complaint and language scoring."""
