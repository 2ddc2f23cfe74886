"""The transformers backend, through exactly the loading path a real model takes (a tiny random BERT)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from classifiers.base import Classifier, ClassifierError  # noqa: E402
from classifiers.registry import load_classifier  # noqa: E402

WORDS = [
    "the",
    "a",
    "service",
    "is",
    "great",
    "bad",
    "slow",
    "thanks",
    "my",
    "order",
    "still",
    "not",
    "arrived",
    "de",
    "trein",
    "te",
    "laat",
    "top",
    "bedankt",
]


def _tiny_model(path: Path, id2label: dict[int, str], problem_type: str | None = None) -> Path:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "!", "?", ","]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        problem_type=problem_type,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_model(tmp_path_factory.mktemp("tiny"), {0: "negative", 1: "neutral", 2: "positive"})


TEXTS = [
    "the service is great thanks",
    "",
    "my order still not arrived " * 200,  # longer than max_position_embeddings: truncated
    "de trein te laat",
    "bad",
]


def test_loads_from_a_local_directory_and_scores(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clf = load_classifier(f"transformers:{model_dir}", batch_size=2, threads=1, max_length=32)
    assert isinstance(clf, Classifier)
    scores = clf.classify(TEXTS, ["en", None, "en", "nl", "en"])
    assert len(scores) == len(TEXTS)
    for s in scores:
        assert s.p_negative + s.p_neutral + s.p_positive == pytest.approx(1.0, abs=1e-6)
        assert 0.0 <= s.complaint <= 1.0
        assert s.model == clf.model_id and s.model.startswith("hf:")
    assert scores[3].language == "nl"
    # length sorting and batching must not change which score belongs to which text
    singles = [clf.classify([t], [None])[0] for t in TEXTS]
    assert [s.p_positive for s in scores] == pytest.approx([s.p_positive for s in singles], abs=1e-5)
    assert clf.classify([], []) == []


def test_anonymous_labels_and_explicit_label_map(tmp_path: Path) -> None:
    anon = _tiny_model(tmp_path / "anon", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    assert len(load_classifier(f"transformers:{anon}").classify(["great"], ["en"])) == 1
    four = _tiny_model(
        tmp_path / "four", {0: "angry", 1: "calm", 2: "happy", 3: "complaint"}, "multi_label_classification"
    )
    with pytest.raises(ClassifierError, match="label_map"):
        load_classifier(f"transformers:{four}")
    clf = load_classifier(
        f"transformers:{four}",
        label_map={"angry": "negative", "calm": "neutral", "happy": "positive", "complaint": "complaint"},
    )
    (s,) = clf.classify(["my order still not arrived"], ["en"])
    assert s.p_negative + s.p_neutral + s.p_positive == pytest.approx(1.0, abs=1e-6)
    stars = _tiny_model(tmp_path / "stars", {i: f"{i + 1} stars" for i in range(5)})
    assert load_classifier(f"transformers:{stars}").classify(["top"], ["nl"])[0].model.startswith("hf:stars")


def test_errors_are_classifier_errors(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ClassifierError):
        load_classifier(f"transformers:{tmp_path / 'nope'}", local_files_only=True)
    with pytest.raises(ClassifierError, match="CUDA"):
        if torch.cuda.is_available():
            raise ClassifierError("CUDA present: nothing to check here")
        load_classifier(f"transformers:{model_dir}", device="cuda")
    clf = load_classifier(f"transformers:{model_dir}")
    with pytest.raises(ClassifierError):
        clf.classify(["a"], [])
    with pytest.raises(ClassifierError, match="needs a model"):
        load_classifier("transformers:")
