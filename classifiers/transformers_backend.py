"""Hugging Face models as repmon classifiers (``transformers:<id or dir>``).

Two ways in: a sequence-classification model whose own labels are the scores
(:class:`TransformersClassifier`), or any encoder whose mean-pooled embeddings feed heads trained
by ``repmon train --encoder transformers:<model>`` (:class:`TransformersEncoder`, used with the
``heads`` option). Both run through :class:`TorchTextModel`.

torch and transformers are imported only when such a classifier is built, so the rest of repmon
never loads them. Texts are sorted by token count and batched with dynamic padding (short tweets do
not pay for a long review in the same batch), and results are put back in input order. On a GPU the
model runs in bfloat16 (float16 where bf16 is unsupported); on the CPU in float32 with a bounded
number of threads.

The model's labels (``config.id2label``) are mapped onto negative/neutral/positive — by name
(``negative``, ``NEG``, ``2 stars`` …) or, for anonymous ``LABEL_0..2``, in that order — or by an
explicit ``label_map``. A label mapped to ``complaint`` gives the complaint probability; a model
without one gets the complaint probability of the lexicon baseline's cue model, so every
:class:`~classifiers.base.Scores` is complete.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.base import LABELS, ClassifierError, Scores, SentimentLabel
from classifiers.features import social_placeholders
from classifiers.langid import LanguageDetector
from classifiers.lexicon import (
    LexiconClassifier,
    replace_lone_surrogates,
    resolve_languages,
    validate_batch,
)

__all__ = [
    "CHUNK_TEXTS",
    "TorchTextModel",
    "TransformersClassifier",
    "TransformersEncoder",
    "infer_label_map",
]

log = logging.getLogger("repmon.classifiers.transformers")

_TARGETS = frozenset({*LABELS, "complaint", "ignore"})
#: Characters kept before tokenising: the tokenizer truncates to ``max_length`` tokens anyway, and
#: cutting first keeps a megabyte-long post from costing a megabyte of tokenisation.
_MAX_CHARS = 10_000
#: Texts tokenized per step of the tokenize/model pipeline (see :class:`TorchTextModel`).
CHUNK_TEXTS = 8192


def _name_to_target(name: str) -> str | None:
    low = name.strip().lower()
    stars = re.fullmatch(r"([1-5])\s*stars?", low)
    if stars:
        n = int(stars.group(1))
        return "negative" if n <= 2 else "neutral" if n == 3 else "positive"
    for prefix, target in (("neg", "negative"), ("neu", "neutral"), ("pos", "positive")):
        if low.startswith(prefix):
            return target
    if low in {"complaint", "complaints", "klacht"}:
        return "complaint"
    if low in {"not_complaint", "no_complaint", "non_complaint", "not complaint", "geen_klacht"}:
        return "ignore"
    return None


def infer_label_map(id2label: Mapping[int, str]) -> dict[str, str]:
    """Map a model's label names onto negative/neutral/positive/complaint/ignore.

    Named labels are recognised by name; three anonymous labels (``LABEL_0..2``) are taken to be
    negative, neutral, positive (the convention of the common three-way sentiment models). Anything
    else must be mapped explicitly: :class:`ClassifierError`.
    """
    names = [id2label[i] for i in sorted(id2label)]
    mapping = {name: _name_to_target(name) for name in names}
    if all(re.fullmatch(r"LABEL_\d+", n) for n in names) and len(names) == 3:
        return dict(zip(names, LABELS, strict=True))
    unknown = [n for n, t in mapping.items() if t is None]
    if unknown:
        raise ClassifierError(
            f"cannot tell what the model's labels {unknown} mean; pass label_map={{label: "
            "'negative'|'neutral'|'positive'|'complaint'|'ignore'}}"
        )
    return {n: t for n, t in mapping.items() if t is not None}


class TorchTextModel:
    """A tokenizer and a torch model on one device, run over texts in length-sorted padded batches.

    Shared by :class:`TransformersClassifier` (a sequence-classification model) and
    :class:`TransformersEncoder` (an encoder whose pooled embeddings feed repmon's own heads). A call
    tokenizes its texts in chunks of :data:`CHUNK_TEXTS`; while the model works through one chunk, a
    worker thread tokenizes the next (the fast tokenizers release the GIL, and GPU kernels run
    asynchronously), so on a GPU tokenization and the model overlap. Within a chunk texts are
    sorted by their token count and cut into batches of ``batch_size``, each padded only to its own
    longest text (to a multiple of 8 on a GPU, for the tensor cores); outputs stay on the device
    until the chunk is done and come back in input order.
    """

    def __init__(
        self,
        model: str,
        auto_class: str,
        *,
        device: str = "cpu",
        threads: int | None = None,
        batch_size: int = 32,
        max_length: int = 256,
        dtype: str = "auto",
        revision: str | None = None,
        local_files_only: bool | None = None,
        placeholders: bool = True,
    ) -> None:
        if batch_size < 1 or max_length < 8:
            raise ClassifierError("batch_size must be ≥ 1 and max_length ≥ 8")
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise ClassifierError(
                "the transformers backend needs 'torch' and 'transformers' installed"
            ) from exc
        self.torch = torch
        self.batch_size = batch_size
        self.max_length = max_length
        self.placeholders = placeholders
        self.device = self._pick_device(device)
        if self.device.type == "cpu":
            from classifiers.embedded import default_threads

            torch.set_num_threads(threads or default_threads())  # process-wide in torch
        is_local = Path(model).expanduser().is_dir()
        offline = local_files_only if local_files_only is not None else (
            is_local or os.environ.get("HF_HUB_OFFLINE", "") not in {"", "0"}
        )  # fmt: skip
        source = str(Path(model).expanduser()) if is_local else model
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                source, revision=revision, local_files_only=offline
            )
            net = getattr(transformers, auto_class).from_pretrained(
                source, revision=revision, local_files_only=offline
            )
        except (OSError, ValueError) as exc:
            raise ClassifierError(f"cannot load model {model!r}: {exc}") from exc
        self.dtype = self._pick_dtype(dtype)
        self.model = net.to(device=self.device, dtype=self.dtype).eval()
        self.config = net.config
        self.max_length = self._clamp_max_length(max_length, source)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else 0  # padded positions are masked out anyway
        self._pad_multiple = 8 if self.device.type == "cuda" else 1
        commit = getattr(self.config, "_commit_hash", None)
        self.name = Path(source).name if is_local else model
        self.version = (commit or revision or "local")[:12]

    def _clamp_max_length(self, max_length: int, source: str) -> int:
        """``max_length`` cut to the longest input the model takes (longer posts would crash it).

        The tokenizer's ``model_max_length`` counts when it is a real number (unset, it is a huge
        sentinel); ``max_position_embeddings`` bounds it too, less the two padding offsets that
        RoBERTa-style models count in it.
        """
        limits = []
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
            limits.append(tok_max)
        positions = getattr(self.config, "max_position_embeddings", None)
        if isinstance(positions, int) and positions > 0:
            model_type = str(getattr(self.config, "model_type", ""))
            offset = 2 if "roberta" in model_type or model_type == "camembert" else 0
            limits.append(positions - offset)
        limit = min(limits) if limits else None
        if limit is None or max_length <= limit:
            return max_length
        log.info("max_length %d is more than model %s takes; using %d tokens", max_length, source, limit)
        return limit

    def _pick_device(self, device: str) -> Any:
        torch = self.torch
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ClassifierError(f"unknown device {device!r}") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ClassifierError(f"device {device!r} requested but CUDA is not available")
        return dev

    def _pick_dtype(self, dtype: str) -> Any:
        torch = self.torch
        if dtype == "auto":
            if self.device.type == "cuda":
                return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.float32
        choices = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if dtype not in choices:
            raise ClassifierError(f"dtype must be auto, float32, bfloat16 or float16, not {dtype!r}")
        return choices[dtype]

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text (cut to :data:`_MAX_CHARS` characters, then to ``max_length`` tokens)."""
        cut = [t[:_MAX_CHARS] for t in texts]
        enc = self.tokenizer(
            [social_placeholders(t) for t in cut] if self.placeholders else cut,
            truncation=True,
            max_length=self.max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return list(enc["input_ids"])

    def run(self, texts: Sequence[str], head: Callable[[Any, Any], Any]) -> np.ndarray:
        """``head(model output, attention mask)`` → ``(batch, k)`` tensor, for every text, in input order."""
        if not texts:
            return np.zeros((0, 0))
        bounds = [(a, min(a + CHUNK_TEXTS, len(texts))) for a in range(0, len(texts), CHUNK_TEXTS)]
        parts: list[np.ndarray] = []
        with self.torch.inference_mode():
            if len(bounds) == 1:
                return self._run_chunk(self.tokenize(texts), head)
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") as pool:
                pending = pool.submit(self.tokenize, texts[bounds[0][0] : bounds[0][1]])
                for k in range(len(bounds)):
                    ids = pending.result()
                    if k + 1 < len(bounds):
                        a, b = bounds[k + 1]
                        pending = pool.submit(self.tokenize, texts[a:b])
                    parts.append(self._run_chunk(ids, head))
        return np.concatenate(parts, axis=0)

    def _run_chunk(self, ids: list[list[int]], head: Callable[[Any, Any], Any]) -> np.ndarray:
        torch = self.torch
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(lengths, kind="stable")
        on_gpu = self.device.type == "cuda"
        outputs = []
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            lens = lengths[idx]
            width = max(int(lens[-1]), 1)  # ascending order: the last is the longest
            m = self._pad_multiple
            width = min(-(-width // m) * m, max(width, self.max_length))
            # Fill the padded matrix in one vectorised step: row-major positions below each length.
            mask = np.arange(width)[None, :] < lens[:, None]
            input_ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            input_ids[mask] = np.fromiter(
                itertools.chain.from_iterable(ids[i] for i in idx), dtype=np.int64, count=int(lens.sum())
            )
            t_ids = torch.from_numpy(input_ids)
            t_mask = torch.from_numpy(mask.astype(np.int64))
            if on_gpu:
                t_ids = t_ids.pin_memory().to(self.device, non_blocking=True)
                t_mask = t_mask.pin_memory().to(self.device, non_blocking=True)
            outputs.append(head(self.model(input_ids=t_ids, attention_mask=t_mask), t_mask))
        result = torch.cat(outputs).float().cpu().numpy().astype(np.float64)  # one sync per chunk
        back = np.empty_like(result)
        back[order] = result
        return back


class TransformersEncoder:
    """A Hugging Face encoder as a repmon :class:`~classifiers.features.Encoder`: mean-pooled, L2-normalised.

    Heads trained on its embeddings (``repmon train --encoder transformers:<model>``) turn it into a
    classifier (``transformers:<model>`` with ``heads: <file>``); the head file records the
    encoder's name, so heads are never applied to another encoder's space.
    """

    def __init__(self, model: str, **options: Any) -> None:
        self.runner = TorchTextModel(model, "AutoModel", **options)
        self.name = f"hf:{self.runner.name}"
        self.dim = int(self.runner.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` → ``(n, dim)`` float32."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        torch = self.runner.torch

        def pool(out: Any, mask: Any) -> Any:
            hidden = out.last_hidden_state.float()
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            return torch.nn.functional.normalize(mean, dim=-1)

        try:
            return self.runner.run(texts, pool).astype(np.float32)
        except ClassifierError:
            raise
        except Exception as exc:  # CUDA OOM, tokenizer errors …
            raise ClassifierError(f"transformers encoding failed: {exc!r}") from exc


class TransformersClassifier:
    """A Hugging Face sequence-classification model from a hub id or a local directory."""

    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        threads: int | None = None,
        batch_size: int = 32,
        max_length: int = 256,
        label_map: Mapping[str, str] | None = None,
        dtype: str = "auto",
        revision: str | None = None,
        local_files_only: bool | None = None,
        placeholders: bool = True,
        detector: LanguageDetector | None = None,
    ) -> None:
        self.runner = TorchTextModel(
            model,
            "AutoModelForSequenceClassification",
            device=device,
            threads=threads,
            batch_size=batch_size,
            max_length=max_length,
            dtype=dtype,
            revision=revision,
            local_files_only=local_files_only,
            placeholders=placeholders,
        )
        self.device = self.runner.device
        config = self.runner.config
        self.multi_label = getattr(config, "problem_type", None) == "multi_label_classification"
        id2label = {int(k): str(v) for k, v in config.id2label.items()}
        mapping = dict(label_map) if label_map is not None else infer_label_map(id2label)
        bad = {v for v in mapping.values() if v not in _TARGETS}
        if bad:
            raise ClassifierError(f"label_map targets must be one of {sorted(_TARGETS)}, not {sorted(bad)}")
        missing = [name for name in id2label.values() if name not in mapping]
        if missing:
            raise ClassifierError(f"label_map does not say what {missing} mean")
        # column index lists per target
        self._columns: dict[str, list[int]] = {t: [] for t in _TARGETS}
        for idx, name in sorted(id2label.items()):
            self._columns[mapping[name]].append(idx)
        if not any(self._columns[label] for label in LABELS):
            raise ClassifierError("none of the model's labels is a sentiment label")
        self._fallback = None if self._columns["complaint"] else LexiconClassifier()
        self.detector = detector or LanguageDetector()
        self.model_id = f"hf:{self.runner.name}@{self.runner.version}"

    def _probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Model probabilities per label column for ``texts``, in input order."""
        torch = self.runner.torch

        def probabilities(out: Any, mask: Any) -> Any:
            logits = out.logits.float()
            return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)

        return self.runner.run(texts, probabilities)

    def classify(self, texts: Sequence[str], languages: Sequence[str | None]) -> list[Scores]:
        """Score ``texts``; one :class:`Scores` per text, same order."""
        validate_batch(texts, languages)
        if not texts:
            return []
        texts = replace_lone_surrogates(texts)
        try:
            probs = self._probabilities(texts)
            langs = resolve_languages(texts, languages, self.detector)
            complaint_cols = self._columns["complaint"]
            if complaint_cols:
                complaint = probs[:, complaint_cols].sum(axis=1)
                if not self.multi_label:  # share among the non-ignored labels
                    complaint = complaint / np.clip(probs.sum(axis=1), 1e-12, None)
            else:
                assert self._fallback is not None
                complaint = np.array([s.complaint for s in self._fallback.classify(texts, langs)])
            sent = np.stack([probs[:, self._columns[label]].sum(axis=1) for label in LABELS], axis=1)
            sent = sent / np.clip(sent.sum(axis=1, keepdims=True), 1e-12, None)
        except ClassifierError:
            raise
        except Exception as exc:  # CUDA OOM, tokenizer errors …: never a silent 'neutral'
            raise ClassifierError(f"transformers scoring failed: {exc!r}") from exc
        if not np.all(np.isfinite(sent)):
            raise ClassifierError("the model produced non-finite probabilities")
        results = []
        for i, lang in enumerate(langs):
            label: SentimentLabel = LABELS[int(np.argmax(sent[i]))]
            results.append(
                Scores(
                    sentiment=label,
                    p_negative=float(sent[i, 0]),
                    p_neutral=float(sent[i, 1]),
                    p_positive=float(sent[i, 2]),
                    complaint=float(np.clip(complaint[i], 0.0, 1.0)),
                    language=lang,
                    model=self.model_id,
                )
            )
        return results
