"""The one place that turns a classifier spec from the configuration into a classifier.

``default`` (or ``embedded``): the offline embedded model; ``lexicon``: the lexicon baseline;
``transformers:<hub id or local dir>``: any Hugging Face sequence-classification model, or with
``heads=<file>`` any encoder under heads trained on it by ``repmon train --encoder`` (needs torch
and transformers); ``stub``: the keyword fake from :mod:`classifiers.testing`.
"""

from __future__ import annotations

from typing import Any

from classifiers.base import Classifier, ClassifierError

__all__ = ["SPECS", "load_classifier"]

SPECS = ("default", "embedded", "lexicon", "stub", "transformers:<model>")


def load_classifier(spec: str = "default", **options: Any) -> Classifier:
    """Build the classifier named by ``spec``; ``options`` go to its constructor.

    Raises :class:`ClassifierError` for an unknown spec or a classifier that cannot be loaded.
    """
    name, _, arg = spec.strip().partition(":")
    name = name.lower()
    if name in {"default", "embedded"} and not arg:
        from classifiers.embedded import EmbeddedClassifier

        return EmbeddedClassifier(**options)
    if name == "lexicon" and not arg:
        from classifiers.lexicon import LexiconClassifier

        return LexiconClassifier(**options)
    if name == "stub" and not arg:
        from classifiers.testing import StubClassifier

        return StubClassifier()
    if name == "transformers":
        if not arg:
            raise ClassifierError("'transformers:' needs a model: transformers:<hub id or local directory>")
        heads = options.pop("heads", None)
        if heads is None:
            from classifiers.transformers_backend import TransformersClassifier

            return TransformersClassifier(arg, **options)
        return _encoder_with_heads(arg, heads, options)
    raise ClassifierError(f"unknown classifier {spec!r}; expected one of: {', '.join(SPECS)}")


def _encoder_with_heads(model: str, heads: Any, options: dict[str, Any]) -> Classifier:
    """A Hugging Face encoder under repmon's heads: the embedded classifier with another encoder."""
    from classifiers.embedded import EmbeddedClassifier
    from classifiers.transformers_backend import TransformersEncoder

    batch_size = options.get("batch_size", 256)
    detector = options.pop("detector", None)
    encoder = TransformersEncoder(model, **options)
    return EmbeddedClassifier(heads, batch_size=batch_size, encoder=encoder, detector=detector)
