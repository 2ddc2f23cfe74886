"""Small trained heads on top of the frozen features: logistic regression in numpy, saved as ``.npz``.

Each head is two L2-regularised logistic regressions — one on the dense features (sentence
embedding + lexicon signals, standardised), one on the hashed n-grams — whose log-probabilities are
mixed with a fixed weight (a product of experts). A head may also read a small dense model's
log-probabilities as extra dense inputs (:class:`AuxInputs`: the complaint head reads sentiment).
Logistic regression because it is convex (training is deterministic and needs no tuning of learning
rates), calibrated enough to put thresholds on, and tiny to store and run; a hidden layer measured no
better on these data (docs/classifiers.md).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.base import ClassifierError
from classifiers.features import Features, SparseRows

__all__ = ["FORMAT_VERSION", "AuxInputs", "HeadSet", "LinearHead", "fit_logistic", "lbfgs"]

#: Bump when the layout of the ``.npz`` changes incompatibly.
FORMAT_VERSION = 1

Matrix = np.ndarray | SparseRows


def _matmul(x: Any, w: np.ndarray) -> np.ndarray:
    return x.matmul(w) if hasattr(x, "matmul") else np.asarray(x, dtype=np.float64) @ w


def _rmatmul(x: Any, g: np.ndarray) -> np.ndarray:
    return x.rmatmul(g) if hasattr(x, "rmatmul") else np.asarray(x, dtype=np.float64).T @ g


def _n_rows(x: Any) -> int:
    return int(x.n_rows) if hasattr(x, "n_rows") else int(x.shape[0])


def _n_cols(x: Any) -> int:
    return int(x.n_cols) if hasattr(x, "n_cols") else int(x.shape[1])


def lbfgs(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    max_iter: int = 300,
    history: int = 10,
    tol: float = 1e-6,
    on_iter: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Minimise a smooth convex ``fun`` (returning value and gradient) with L-BFGS and backtracking."""
    x = x0.astype(np.float64).copy()
    f, g = fun(x)
    s_hist: list[np.ndarray] = []
    y_hist: list[np.ndarray] = []
    for it in range(max_iter):
        if on_iter is not None:
            on_iter(it)
        # two-loop recursion → search direction
        q = g.copy()
        alphas = []
        for s, y in zip(reversed(s_hist), reversed(y_hist), strict=True):
            rho = 1.0 / float(y @ s)
            a = rho * float(s @ q)
            alphas.append((rho, a))
            q -= a * y
        if s_hist:
            q *= float(s_hist[-1] @ y_hist[-1]) / float(y_hist[-1] @ y_hist[-1])
        else:
            q /= max(1.0, float(np.linalg.norm(g)))
        for (s, y), (rho, a) in zip(zip(s_hist, y_hist, strict=True), reversed(alphas), strict=True):
            b = rho * float(y @ q)
            q += (a - b) * s
        d = -q
        slope = float(g @ d)
        if slope >= 0:  # not a descent direction (numerical trouble): restart from steepest descent
            s_hist.clear()
            y_hist.clear()
            d = -g
            slope = -float(g @ g)
        step = 1.0
        while True:
            x_new = x + step * d
            f_new, g_new = fun(x_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s_vec, y_vec = x_new - x, g_new - g
        if float(s_vec @ y_vec) > 1e-12:
            s_hist.append(s_vec)
            y_hist.append(y_vec)
            if len(s_hist) > history:
                s_hist.pop(0)
                y_hist.pop(0)
        converged = abs(f - f_new) <= tol * max(1.0, abs(f))
        x, f, g = x_new, f_new, g_new
        if converged or float(np.max(np.abs(g))) < tol:
            break
    return x


def fit_logistic(
    x: Matrix,
    y: np.ndarray,
    n_classes: int,
    c: float = 1.0,
    sample_weight: np.ndarray | None = None,
    max_iter: int = 300,
    on_iter: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """L2-regularised logistic regression (softmax for ``n_classes > 2``, sigmoid for 2).

    Minimises ``sum(w·CE)/sum(w) + |W|²/(2·C·sum(w))``, i.e. the same optimum as scikit-learn's
    ``LogisticRegression(C=c)``; the bias is not penalised. Returns ``(W (d, k), b (k,))`` with
    ``k = 1`` for binary problems. Deterministic: starts from zero.
    """
    n, d_full = _n_rows(x), _n_cols(x)
    if n == 0:
        raise ClassifierError("no training examples for a head")
    used: np.ndarray | None = None
    xm: Any = x
    if isinstance(x, SparseRows):
        # Solve over the columns that occur: an unused hashed bucket gets no gradient from the data
        # and none from the penalty at zero, so it stays exactly zero. Same optimum, and on tweets
        # ~2x smaller vectors for L-BFGS (118k of 262k buckets occur in the dev sets).
        used, inverse = np.unique(x.indices, return_inverse=True)
        xm = _CompactRows(x, inverse.astype(np.int64), len(used))
    d = _n_cols(xm)
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    wsum = float(w.sum())
    lam = 1.0 / (c * wsum)
    k = 1 if n_classes == 2 else n_classes
    y = np.asarray(y, dtype=np.int64)

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        weights = theta[: d * k].reshape(d, k)
        bias = theta[d * k :]
        z = _matmul(xm, weights) + bias
        if k == 1:
            zz = z[:, 0]
            loss_i = np.logaddexp(0.0, zz) - y * zz
            gz = ((1.0 / (1.0 + np.exp(-zz)) - y) * w / wsum)[:, None]
        else:
            zmax = z.max(axis=1, keepdims=True)
            lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
            loss_i = lse - z[np.arange(n), y]
            p = np.exp(z - lse[:, None])
            p[np.arange(n), y] -= 1.0
            gz = p * (w / wsum)[:, None]
        loss = float(loss_i @ w) / wsum + 0.5 * lam * float(np.sum(weights * weights))
        gw = _rmatmul(xm, gz) + lam * weights
        return loss, np.concatenate([gw.ravel(), gz.sum(axis=0)])

    theta = lbfgs(fun, np.zeros(d * k + k), max_iter=max_iter, on_iter=on_iter)
    weights = theta[: d * k].reshape(d, k)
    if used is not None:
        full = np.zeros((d_full, k))
        full[used] = weights
        weights = full
    return weights, theta[d * k :]


class _CompactRows:
    """A :class:`SparseRows` re-indexed onto the columns it uses, with the per-value row ids cached."""

    def __init__(self, rows: SparseRows, columns: np.ndarray, n_cols: int) -> None:
        self.n_rows = rows.n_rows
        self.n_cols = n_cols
        self._indptr = rows.indptr
        self._columns = columns
        self._data = rows.data.astype(np.float64)
        self._row_ids = rows.row_ids()
        self._nonempty = np.diff(rows.indptr) > 0

    def matmul(self, weights: np.ndarray) -> np.ndarray:
        out = np.zeros((self.n_rows, weights.shape[1]))
        if len(self._data):
            contrib = self._data[:, None] * weights[self._columns]
            out[self._nonempty] = np.add.reduceat(contrib, self._indptr[:-1][self._nonempty], axis=0)
        return out

    def rmatmul(self, grad_rows: np.ndarray) -> np.ndarray:
        k = grad_rows.shape[1]
        out = np.zeros((self.n_cols, k))
        for j in range(k):
            out[:, j] = np.bincount(
                self._columns, weights=self._data * grad_rows[self._row_ids, j], minlength=self.n_cols
            )
        return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


@dataclass
class AuxInputs:
    """A small dense-only softmax whose standardised log-probabilities are extra inputs of a head.

    The complaint head reads sentiment this way: a dense sentiment model (trained on the sentiment
    labels; out-of-fold for the complaint head's own training rows) adds ``log p(negative / neutral
    / positive)`` to the dense features.
    """

    w: np.ndarray  # (d, m) float32
    b: np.ndarray  # (m,)
    mean: np.ndarray  # (m,) standardisation of the log-probabilities
    scale: np.ndarray  # (m,)

    def log_proba(self, dense: np.ndarray) -> np.ndarray:
        """Raw log-probabilities ``(n, m)``."""
        z = dense.astype(np.float64) @ self.w.astype(np.float64) + self.b
        return np.log(np.clip(_softmax(z), 1e-12, None))

    def extend(self, dense: np.ndarray) -> np.ndarray:
        """``dense`` with the standardised log-probabilities appended as columns."""
        extra = (self.log_proba(dense) - self.mean) / self.scale
        return np.concatenate([dense.astype(np.float64), extra], axis=1)


@dataclass
class LinearHead:
    """A dense-feature and an n-gram logistic regression, mixed in log space with ``ngram_mix``."""

    dense_w: np.ndarray  # (d [+ aux outputs], k) float32
    dense_b: np.ndarray  # (k,)
    ngram_w: np.ndarray  # (buckets, k) float16
    ngram_b: np.ndarray  # (k,)
    ngram_mix: float
    aux: AuxInputs | None = None

    @property
    def binary(self) -> bool:
        """True for a sigmoid head (one output)."""
        return int(self.dense_w.shape[1]) == 1

    def logits(self, dense: np.ndarray, ngrams: SparseRows) -> np.ndarray:
        """Mixed logits (binary) or mixed log-probabilities (multiclass), ``(n, k)``."""
        if self.aux is not None:
            dense = self.aux.extend(dense)
        zd = dense.astype(np.float64) @ self.dense_w.astype(np.float64) + self.dense_b
        zs = ngrams.matmul(self.ngram_w.astype(np.float64)) + self.ngram_b
        if self.binary:
            return np.asarray((1.0 - self.ngram_mix) * zd + self.ngram_mix * zs)
        ld = np.log(np.clip(_softmax(zd), 1e-12, None))
        ls = np.log(np.clip(_softmax(zs), 1e-12, None))
        return np.asarray((1.0 - self.ngram_mix) * ld + self.ngram_mix * ls)

    def predict(self, dense: np.ndarray, ngrams: SparseRows) -> np.ndarray:
        """Probabilities: ``(n,)`` for a binary head, ``(n, k)`` rows summing to 1 otherwise."""
        z = self.logits(dense, ngrams)
        if self.binary:
            return np.asarray(1.0 / (1.0 + np.exp(-z[:, 0])))
        return _softmax(z)


@dataclass
class HeadSet:
    """Everything trained: feature standardisation, the heads, thresholds and provenance."""

    meta: dict[str, Any]
    dense_mean: np.ndarray
    dense_scale: np.ndarray
    heads: dict[str, LinearHead] = field(default_factory=dict)

    def standardise(self, features: Features) -> np.ndarray:
        """Dense features, centred and scaled as during training."""
        return np.asarray((features.dense - self.dense_mean) / self.dense_scale, dtype=np.float32)

    def predict(self, name: str, features: Features, dense: np.ndarray | None = None) -> np.ndarray:
        """Probabilities of head ``name`` (see :meth:`LinearHead.predict`)."""
        head = self.heads.get(name)
        if head is None:
            raise ClassifierError(f"the head file has no '{name}' head")
        return head.predict(self.standardise(features) if dense is None else dense, features.ngrams)

    @property
    def digest(self) -> str:
        """Short content hash of the weights: identifies this training in ``model_id``."""
        h = hashlib.sha256()
        for key, arr in sorted(self._arrays().items()):
            h.update(key.encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:8]

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {
            "dense_mean": self.dense_mean.astype(np.float32),
            "dense_scale": self.dense_scale.astype(np.float32),
        }
        for name, head in self.heads.items():
            arrays[f"{name}.dense_w"] = head.dense_w.astype(np.float32)
            arrays[f"{name}.dense_b"] = head.dense_b.astype(np.float32)
            arrays[f"{name}.ngram_w"] = head.ngram_w.astype(np.float16)
            arrays[f"{name}.ngram_b"] = head.ngram_b.astype(np.float32)
            arrays[f"{name}.ngram_mix"] = np.asarray([head.ngram_mix], dtype=np.float32)
            if head.aux is not None:
                arrays[f"{name}.aux_w"] = head.aux.w.astype(np.float32)
                arrays[f"{name}.aux_b"] = head.aux.b.astype(np.float32)
                arrays[f"{name}.aux_mean"] = head.aux.mean.astype(np.float32)
                arrays[f"{name}.aux_scale"] = head.aux.scale.astype(np.float32)
        return arrays

    def save(self, path: Path) -> None:
        """Write a compressed ``.npz`` (no pickles), atomically."""
        meta = dict(self.meta, format_version=FORMAT_VERSION, heads=sorted(self.heads))
        arrays = dict(self._arrays())
        arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
        buf = io.BytesIO()
        save: Any = np.savez_compressed  # its stub types **kwds too narrowly
        save(buf, **arrays)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path | io.BytesIO) -> HeadSet:
        """Read a head file written by :meth:`save`; :class:`ClassifierError` if it is unusable."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError) as exc:
            raise ClassifierError(f"cannot read head file {path}: {exc}") from exc
        try:
            meta = json.loads(bytes(arrays.pop("meta")).decode("utf-8"))
            if meta.get("format_version") != FORMAT_VERSION:
                raise ClassifierError(
                    f"head file {path} has format {meta.get('format_version')}, expected {FORMAT_VERSION}"
                )
            heads = {
                name: LinearHead(
                    dense_w=arrays[f"{name}.dense_w"],
                    dense_b=arrays[f"{name}.dense_b"],
                    ngram_w=arrays[f"{name}.ngram_w"],
                    ngram_b=arrays[f"{name}.ngram_b"],
                    ngram_mix=float(arrays[f"{name}.ngram_mix"][0]),
                    aux=_load_aux(arrays, name),
                )
                for name in meta["heads"]
            }
            return cls(meta, arrays["dense_mean"], arrays["dense_scale"], heads)
        except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise ClassifierError(f"head file {path} is incomplete or corrupt: {exc}") from exc

    def threshold(self, name: str, default: float) -> float:
        """A decision threshold stored at training time (``complaint``, ``praise``), else ``default``."""
        thresholds: Mapping[str, float] = self.meta.get("thresholds", {})
        return float(thresholds.get(name, default))

    def praise_thresholds_by_language(self) -> dict[str, float]:
        """Per-language praise thresholds chosen at training time (``{}`` in older files).

        Malformed entries (not a number in [0, 1], empty language) are refused, not guessed at.
        """
        raw = self.meta.get("praise_thresholds_by_language") or {}
        if not isinstance(raw, Mapping):
            raise ClassifierError("head file: the praise thresholds by language are not a mapping")
        out: dict[str, float] = {}
        for lang, value in raw.items():
            if not (isinstance(lang, str) and lang) or isinstance(value, bool):
                raise ClassifierError(f"head file: bad praise threshold entry {lang!r}: {value!r}")
            if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                raise ClassifierError(f"head file: bad praise threshold for {lang!r}: {value!r}")
            out[lang] = float(value)
        return out


def _load_aux(arrays: Mapping[str, np.ndarray], name: str) -> AuxInputs | None:
    """The optional auxiliary inputs of head ``name`` (absent in files without them)."""
    if f"{name}.aux_w" not in arrays:
        return None
    return AuxInputs(
        arrays[f"{name}.aux_w"],
        arrays[f"{name}.aux_b"],
        arrays[f"{name}.aux_mean"],
        arrays[f"{name}.aux_scale"],
    )
