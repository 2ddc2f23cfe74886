"""``repmon eval`` and ``repmon train``: mounted by the main CLI (monitor/cli.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from classifiers.base import ClassifierError

__all__ = ["eval_app", "train_command", "train_main"]

eval_app = typer.Typer(no_args_is_help=True, add_completion=False)

_ClassifierOpt = Annotated[
    str, typer.Option("--classifier", "-c", help='"default", "lexicon" or "transformers:<hub id or dir>".')
]
_JsonOpt = Annotated[bool, typer.Option("--json", help="Print the metrics as JSON on stdout.")]
_BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Texts per classify() call.")]
_FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Labelled JSONL.")]
_HeadsOpt = Annotated[
    Path | None,
    typer.Option(
        "--heads",
        exists=True,
        dir_okay=False,
        help=(
            "Head file from repmon train --out FILE: for the default classifier (retrained heads) "
            "or a transformers: encoder (repmon train --encoder ...)."
        ),
    ),
]
_DeviceOpt = Annotated[str, typer.Option("--device", help='"cpu", "cuda", "auto" (transformers only).')]


def _load(spec: str, batch_size: int, heads: Path | None = None, device: str = "cpu") -> Any:
    from classifiers.registry import load_classifier

    kind = spec.split(":", 1)[0].strip().lower()
    options: dict[str, Any] = {}
    if kind in {"default", "embedded", "transformers"}:
        options["batch_size"] = batch_size
    if kind == "transformers":
        options["device"] = device
        if heads is not None:
            options["heads"] = heads
    elif heads is not None and kind in {"default", "embedded"}:
        options["heads_path"] = heads
    elif heads is not None:
        raise ClassifierError("--heads goes with --classifier default or transformers:<encoder>")
    return load_classifier(spec, **options)


def _fail(exc: Exception) -> typer.Exit:
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/red] {exc}")
    return typer.Exit(1)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


@eval_app.command("sentiment")
def eval_sentiment(
    file: _FileArg,
    as_json: _JsonOpt = False,
    classifier: _ClassifierOpt = "default",
    batch_size: _BatchOpt = 256,
    heads: _HeadsOpt = None,
    device: _DeviceOpt = "cpu",
) -> None:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix on FILE."""
    from classifiers.evaluate import evaluate_sentiment

    try:
        result = evaluate_sentiment(_load(classifier, batch_size, heads, device), file, batch_size=batch_size)
    except ClassifierError as exc:
        raise _fail(exc) from exc
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{file.name}[/bold] · {result['model']} · n={result['n']} · "
        f"accuracy {result['accuracy']:.3f} · macro-F1 [bold]{result['macro_f1']:.3f}[/bold]"
    )
    per_class = Table(title="per class")
    for col in ("label", "precision", "recall", "F1", "support"):
        per_class.add_column(col, justify="left" if col == "label" else "right")
    for label, m in result["per_class"].items():
        per_class.add_row(label, _pct(m["precision"]), _pct(m["recall"]), _pct(m["f1"]), str(m["support"]))
    console.print(per_class)
    confusion = Table(title="confusion (rows: true, columns: predicted)")
    confusion.add_column("")
    for label in result["labels"]:
        confusion.add_column(label, justify="right")
    for label, row in zip(result["labels"], result["confusion"], strict=True):
        confusion.add_row(label, *(str(v) for v in row))
    console.print(confusion)
    if "praise" in result:
        p = result["praise"]
        by_language = p.get("thresholds_by_language") or {"": p["threshold"]}
        at = ", ".join(
            f"{lang or 'other'} {t:.3f}" if len(by_language) > 1 else f"{t:.3f}"
            for lang, t in by_language.items()
        )
        console.print(f"praise (p_positive ≥ {at}): precision {p['precision']:.3f}, recall {p['recall']:.3f}")


@eval_app.command("complaints")
def eval_complaints(
    file: _FileArg,
    as_json: _JsonOpt = False,
    classifier: _ClassifierOpt = "default",
    batch_size: _BatchOpt = 256,
    threshold: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Decision threshold (default: the model's).")
    ] = None,
    heads: _HeadsOpt = None,
    device: _DeviceOpt = "cpu",
) -> None:
    """Complaint precision, recall, F1 (at the model's threshold) and ROC AUC on FILE."""
    from classifiers.evaluate import evaluate_complaints

    try:
        result = evaluate_complaints(
            _load(classifier, batch_size, heads, device), file, threshold=threshold, batch_size=batch_size
        )
    except ClassifierError as exc:
        raise _fail(exc) from exc
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{file.name} · {result['model']}")
    for col in ("n", "complaints", "threshold", "precision", "recall", "F1", "AUC"):
        table.add_column(col, justify="right")
    table.add_row(
        str(result["n"]), str(result["positives"]), f"{result['threshold']:.3f}", _pct(result["precision"]),
        _pct(result["recall"]), _pct(result["f1"]), _pct(result["auc"]),
    )  # fmt: skip
    console = Console()
    console.print(table)
    if "severity" in result:
        s = result["severity"]
        console.print(f"severity over {s['n']} complaints: accuracy {s['accuracy']:.3f}, MAE {s['mae']:.3f}")


def train_command(
    sentiment: Annotated[
        list[Path] | None,
        typer.Option(
            "--sentiment", help="JSONL with text + label (repeatable).", exists=True, dir_okay=False
        ),
    ] = None,
    complaints: Annotated[
        list[Path] | None,
        typer.Option(
            "--complaints",
            help="JSONL with text + complaint (+ severity) (repeatable).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    feedback: Annotated[
        list[Path] | None,
        typer.Option(
            "--feedback", help="Feedback JSONL from `repmon feedback-export` (repeatable).", dir_okay=False
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the folds that choose the thresholds.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the heads (.npz); default: the packaged model.")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Encoder threads (≤ cores).")] = None,
    encoder: Annotated[
        str,
        typer.Option(
            help='"default" (the embedded USE encoder) or "transformers:<hub id or dir>" (then give --out).'
        ),
    ] = "default",
    device: _DeviceOpt = "cpu",
) -> None:
    """Train the sentiment, complaint and severity heads on an encoder; write them as .npz."""
    from rich.console import Console

    from classifiers.train import train_heads

    console = Console(stderr=True)
    missing = [p for p in feedback or [] if not p.exists()]
    if missing:  # a feedback export may legitimately not exist yet: say so, train without it
        console.print(f"[yellow]feedback file(s) not found, skipped:[/yellow] {', '.join(map(str, missing))}")
    try:
        extractor = _extractor(encoder, out, threads, device)
        if out is None:
            _check_packaged_writable()
        heads = train_heads(
            sentiment or [],
            complaints or [],
            [p for p in feedback or [] if p.exists()],
            seed=seed,
            out=out,
            threads=threads,
            extractor=extractor,
        )
    except ClassifierError as exc:
        raise _fail(exc) from exc
    from classifiers.embedded import DEFAULT_HEADS_PATH

    target = out or DEFAULT_HEADS_PATH
    t = heads.meta["thresholds"]
    console.print(
        f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB, weights {heads.digest}); "
        f"examples {heads.meta['examples']}; praise threshold {t['praise']}, complaint threshold {t['complaint']}"
    )
    if out is not None:
        model = "default" if extractor is None else encoder
        console.print(
            f"use them with classifier: {{model: {model}, heads: {out}}} (then reload the daemon: SIGHUP), "
            f"or try them first: repmon eval sentiment FILE --classifier {model} --heads {out}"
        )


def _check_packaged_writable() -> None:
    """Fail before hours of training when the packaged head file cannot be replaced (an installed
    package, a container): retrained heads then belong in a file of their own."""
    import os

    from classifiers.embedded import DEFAULT_HEADS_PATH

    folder = DEFAULT_HEADS_PATH.parent
    if not os.access(folder, os.W_OK) or (
        DEFAULT_HEADS_PATH.exists() and not os.access(DEFAULT_HEADS_PATH, os.W_OK)
    ):
        raise ClassifierError(
            f"cannot replace the packaged heads in {folder} (not writable): give --out FILE and set "
            "classifier.heads: FILE in the configuration"
        )


def _extractor(encoder: str, out: Path | None, threads: int | None, device: str) -> Any:
    """The feature extractor for ``--encoder``; None for the embedded default."""
    kind, _, model = encoder.strip().partition(":")
    if kind.lower() in {"default", "embedded"} and not model:
        return None
    if kind.lower() != "transformers" or not model:
        raise ClassifierError(f"--encoder must be default or transformers:<hub id or dir>, not {encoder!r}")
    if out is None:  # the packaged file belongs to the embedded encoder
        raise ClassifierError("--encoder transformers:... needs --out FILE for its heads")
    from classifiers.features import NGRAM_BUCKETS, FeatureExtractor
    from classifiers.lexicon import LexiconAnalyzer
    from classifiers.transformers_backend import TransformersEncoder

    enc = TransformersEncoder(model, device=device, threads=threads)
    return FeatureExtractor(enc, LexiconAnalyzer(), NGRAM_BUCKETS)


def train_main(argv: list[str]) -> int:
    """Run :func:`train_command` as a stand-alone program (``python -m classifiers.train``)."""
    app = typer.Typer(add_completion=False)
    app.command()(train_command)
    try:
        app(argv, standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    return 0
