"""Throughput of the transformers path: an XLM-R-base-sized model with random weights, built locally.

    python bench/transformers_speed.py [--device auto] [--size base] [--n 200000]
                                       [--batch-sizes 64,256,1024] [--max-length 128] [--out FILE]

Nothing is downloaded. The script trains a Unigram tokenizer (the kind XLM-R uses) on the texts,
builds an ``XLMRobertaForSequenceClassification`` with XLM-R-base's shape (12 layers, hidden 768,
250,002-token embedding; ``--size small`` for a 4-layer, 256-wide smoke test on a laptop), saves
both to a temporary directory and loads them with ``load_classifier("transformers:<dir>")`` — the
code path a real fine-tuned model takes. Texts are the shared dev tweets (``--texts`` for others),
repeated to ``--n``; a synthetic tweet-length sample where the shared data is absent (the GPU
machine gets the repository only).

Per batch size it reports mentions/s for

* ``model``: tokenization (pipelined with the model in chunks) + the model + probabilities, the
  part the GPU accelerates: :meth:`TorchTextModel.run`;
* ``classify_hinted``: the whole ``classify()`` with language hints, as sources give them (X,
  Mastodon): adds building the scores;
* ``classify``: the whole ``classify()`` without hints (language identification on the CPU too).

The model has a complaint label besides the three sentiment labels, as a model fine-tuned for
repmon would; a sentiment-only model adds the lexicon's complaint cue model on the CPU (about
3,000 texts/s per core, see docs/benchmarks.md).

Results go to stdout as a Markdown table and, with ``--out``, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEV = ROOT.parent / "shared" / "data" / "eval"
DEV_FILES = ("sentiment_en_dev.jsonl", "sentiment_nl_dev.jsonl", "complaints_dev.jsonl")
SIZES: dict[str, dict[str, int]] = {
    "base": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    },
    "small": {
        "hidden_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
    },
}
XLMR_VOCAB = 250_002
LABELS = ("negative", "neutral", "positive", "complaint")


def load_texts(paths: list[Path]) -> list[str]:
    """Texts of the given JSONL files, or a synthetic tweet-length sample when there are none."""
    texts = [
        json.loads(line)["text"]
        for path in paths
        if path.exists()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    if texts:
        return texts
    rng = np.random.default_rng(0)
    words = ["de", "trein", "is", "weer", "te", "laat", "waarom", "geen", "reactie", "top", "bedankt",
             "@ns_online", "service", "thanks", "great", "bad", "order", "still", "not", "arrived",
             "love", "this", "app", "crashes", "again", "refund", "klantenservice"]  # fmt: skip
    lengths = rng.integers(3, 40, size=5000)  # tweets: a few to a few dozen words
    return [" ".join(rng.choice(words, size=int(k))) for k in lengths]


def build_model(directory: Path, texts: list[str], size: str, max_length: int) -> None:
    """Train a Unigram tokenizer on ``texts`` and save it with a random XLM-R-shaped classifier."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaTokenizerFast

    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=16_000, special_tokens=special, unk_token="<unk>")
    tok.train_from_iterator(texts, trainer=trainer)
    fast = XLMRobertaTokenizerFast(tokenizer_object=tok, model_max_length=max_length)
    fast.save_pretrained(directory)
    config = XLMRobertaConfig(
        vocab_size=XLMR_VOCAB,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=4,  # a model fine-tuned for both tasks: three sentiment labels and a complaint label
        id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)},
        problem_type="multi_label_classification",
        **SIZES[size],
    )
    torch.manual_seed(0)
    XLMRobertaForSequenceClassification(config).save_pretrained(directory)


def measure(
    clf: Any, texts: list[str], hints: list[str | None], model_only: bool, repeat: int
) -> dict[str, float]:
    """Mentions/s (best of ``repeat``) of the model path and of the whole classify(), hinted and not."""
    import torch

    cuda = clf.device.type == "cuda"
    calls = {
        "model": lambda: clf._probabilities(texts),
        "classify_hinted": lambda: clf.classify(texts, hints),
        "classify": lambda: clf.classify(texts, [None] * len(texts)),
    }
    result: dict[str, float] = {}
    for name, call in calls.items():
        if model_only and name != "model":
            continue
        best = 0.0
        for _ in range(repeat):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            call()
            if cuda:
                torch.cuda.synchronize()
            best = max(best, len(texts) / (time.perf_counter() - t0))
        result[name] = best
    return result


def main(argv: list[str]) -> int:
    """Build the model, measure each batch size, print a table (and JSON with ``--out``)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument(
        "--n", type=int, default=None, help="texts per measurement (default 200k GPU, 512 CPU)"
    )
    parser.add_argument(
        "--batch-sizes", default=None, help="comma-separated (default 64,256,1024 GPU; 32,128 CPU)"
    )
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--texts", type=Path, action="append", help="JSONL with 'text' (repeatable)")
    parser.add_argument("--skip-classify", action="store_true", help="measure the model path only")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best counts")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    import torch

    from classifiers.registry import load_classifier

    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    n = args.n or (200_000 if cuda else 512)
    sizes = [int(b) for b in (args.batch_sizes or ("64,256,1024" if cuda else "32,128")).split(",")]
    base = load_texts(args.texts or [DEV / name for name in DEV_FILES])
    texts = [base[i % len(base)] for i in range(n)]
    hints: list[str | None] = ["en" if i % 3 else "nl" for i in range(n)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_model(Path(tmp), base, args.size, args.max_length)
        build_s = time.perf_counter() - t0
        for bs in sizes:
            clf = load_classifier(
                f"transformers:{tmp}",
                device="cuda" if cuda else "cpu",
                batch_size=bs,
                max_length=args.max_length,
                dtype=args.dtype,
                threads=args.threads,
            )
            clf.classify(texts[: 4 * bs], hints[: 4 * bs])  # warm-up: kernels, allocator, caches
            mean_tokens = float(np.mean([len(x) for x in clf.runner.tokenize(base)]))
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            speeds = measure(clf, texts, hints, args.skip_classify, args.repeat)
            peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
            rows.append({"batch_size": bs, **speeds, "gpu_peak_gib": peak})
            del clf
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "size": args.size,
        "n": n,
        "max_length": args.max_length,
        "dtype": args.dtype,
        "mean_tokens": mean_tokens,
        "build_s": round(build_s, 1),
        "rows": rows,
    }
    print(
        f"# {info['date']} · {info['device']} · {info['cpu_count']} CPUs · torch {info['torch']} · "
        f"{args.size} · n={n} · max_length {args.max_length} · mean {info['mean_tokens']:.1f} tokens/text"
    )
    cols = ["batch_size", "model", "classify_hinted", "classify", "gpu_peak_gib"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---:|" * len(cols))
    for row in rows:
        cells = [row.get(c) for c in cols]
        print("| " + " | ".join("–" if v is None else f"{v:,.0f}" if isinstance(v, float) and v > 10 else
                                str(v if not isinstance(v, float) else round(v, 2)) for v in cells) + " |")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
