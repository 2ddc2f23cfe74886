"""The transformers backend, through exactly the loading path a real model takes (a tiny random BERT)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from classifiers.base import Classifier, ClassifierError  # noqa: E402
from classifiers.embedded import DEFAULT_HEADS_PATH  # noqa: E402
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


def _tiny_bert(path: Path, model_class: str, seed: int = 0, **config: object) -> Path:
    """A random two-layer BERT of ``model_class`` with its tokenizer, saved like a hub model."""
    import transformers
    from transformers import BertConfig, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    # vocab= (not vocab_file=): transformers 5 reads only the special tokens from a vocab file here,
    # which would turn every word into [UNK].
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "!", "?", ","]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)
    assert tokenizer("great trein")["input_ids"][1:3] == [words.index("great"), words.index("trein")]
    bert = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        **config,
    )
    torch.manual_seed(seed)
    getattr(transformers, model_class)(bert).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _tiny_model(path: Path, id2label: dict[int, str], problem_type: str | None = None) -> Path:
    return _tiny_bert(
        path,
        "BertForSequenceClassification",
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        problem_type=problem_type,
    )


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


def _tiny_encoder(path: Path) -> Path:
    """A random BERT *encoder* (no classification head)."""
    return _tiny_bert(path, "BertModel", seed=1)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_encoder(tmp_path_factory.mktemp("encoder"))


def _toy_training_files(tmp: Path) -> tuple[Path, Path]:
    pos = ["the service is great thanks", "great thanks", "top bedankt", "thanks the service is top"]
    neg = ["bad slow service", "my order still not arrived", "de trein te laat", "slow and bad"]
    neu = ["the order", "a trein", "my service is", "de order"]
    sentiment = tmp / "sentiment.jsonl"
    rows = [
        {"text": t, "label": lab}
        for lab, ts in (("positive", pos), ("negative", neg), ("neutral", neu))
        for t in ts
    ]
    sentiment.write_text("".join(json.dumps(r) + "\n" for r in rows * 3))
    complaints = tmp / "complaints.jsonl"
    crows = []
    for dom in ("rail", "shop", "telecom"):
        crows += [{"text": f"{t} {dom}", "complaint": 1, "severity": 2, "domain": dom} for t in neg]
        crows += [{"text": f"{t} {dom}", "complaint": 0, "severity": 0, "domain": dom} for t in pos + neu]
    complaints.write_text("".join(json.dumps(r) + "\n" for r in crows))
    return sentiment, complaints


def test_chunked_pipeline_keeps_input_order(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from classifiers import transformers_backend

    clf = load_classifier(f"transformers:{model_dir}", batch_size=2, threads=1, max_length=32)
    texts = [" ".join(WORDS[i % 7 : i % 7 + 1 + i % 5]) for i in range(23)] + TEXTS
    whole = clf.classify(texts, [None] * len(texts))
    monkeypatch.setattr(transformers_backend, "CHUNK_TEXTS", 4)  # 7 chunks, tokenized ahead in a thread
    chunked = clf.classify(texts, [None] * len(texts))
    assert [s.p_positive for s in chunked] == pytest.approx([s.p_positive for s in whole], abs=1e-6)
    singles = [clf.classify([t], [None])[0].p_negative for t in texts[:8]]
    assert [s.p_negative for s in chunked[:8]] == pytest.approx(singles, abs=1e-5)


def test_encoder_embeddings_are_pooled_over_real_tokens_only(encoder_dir: Path) -> None:
    from classifiers.transformers_backend import TransformersEncoder

    enc = TransformersEncoder(str(encoder_dir), batch_size=4, threads=1, max_length=32)
    assert enc.name == f"hf:{encoder_dir.name}" and enc.dim == 32
    texts = ["great", "my order still not arrived " * 3, "", "de trein te laat"]
    emb = enc.encode(texts)
    assert emb.shape == (4, 32) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # padding next to a long text must not change a short text's embedding (mask-weighted mean)
    np.testing.assert_allclose(emb[0], enc.encode(["great"])[0], atol=1e-5)
    assert not np.allclose(emb[0], emb[3])
    assert enc.encode([]).shape == (0, 32)


def test_encoder_with_trained_heads_end_to_end(encoder_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from monitor.cli import app

    sentiment, complaints = _toy_training_files(tmp_path)
    heads = tmp_path / "heads-tiny.npz"
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["train", "--sentiment", str(sentiment), "--complaints", str(complaints), "--out", str(heads),
         "--encoder", f"transformers:{encoder_dir}", "--threads", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _head_meta(heads)["encoder"] == f"hf:{encoder_dir.name}"
    clf = load_classifier(f"transformers:{encoder_dir}", heads=str(heads), threads=1)
    assert clf.model_id.startswith(f"embedded-hf:{encoder_dir.name}@")
    scores = clf.classify(["the service is great thanks", "my order still not arrived"], ["en", "en"])
    assert scores[0].p_positive > scores[1].p_positive
    assert scores[1].complaint > scores[0].complaint
    result = runner.invoke(
        app,
        ["eval", "sentiment", str(sentiment), "--json", "--classifier", f"transformers:{encoder_dir}",
         "--heads", str(heads)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 36 and report["macro_f1"] > 0.6  # fitted on these very rows
    # heads never run on an encoder they were not trained on: not on the default's either
    with pytest.raises(ClassifierError, match="trained on encoder"):
        load_classifier(f"transformers:{encoder_dir}", heads=str(DEFAULT_HEADS_PATH))
    result = runner.invoke(app, ["eval", "sentiment", str(sentiment), "--heads", str(heads)])
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "was trained on encoder 'hf:" in said
    result = runner.invoke(
        app, ["train", "--sentiment", str(sentiment), "--encoder", f"transformers:{encoder_dir}"]
    )
    assert result.exit_code == 1 and "--out" in result.output


def _head_meta(path: Path) -> dict[str, object]:
    from classifiers.heads import HeadSet

    return dict(HeadSet.load(path).meta)


def test_yaml_settings_reach_the_transformers_classifier(tmp_path: Path) -> None:
    from config.settings import ClassifierSettings

    four = _tiny_model(
        tmp_path / "four", {0: "angry", 1: "calm", 2: "happy", 3: "klacht"}, "multi_label_classification"
    )
    settings = ClassifierSettings(
        model=f"transformers:{four}",
        label_map={"angry": "negative", "calm": "neutral", "happy": "positive", "klacht": "complaint"},
        max_length=16,
        dtype="float32",
        batch_size=3,
        threads=1,
    )
    clf = load_classifier(settings.model, **settings.load_options())
    assert clf.runner.max_length == 16 and clf.runner.batch_size == 3
    assert clf.runner.tokenize(["my order still not arrived " * 10])[0].__len__() == 16
    (s,) = clf.classify(["my order still not arrived"], ["en"])
    assert 0.0 < s.complaint < 1.0  # from the model's own 'klacht' label, not the lexicon fallback
    assert clf._fallback is None


def test_links_and_handles_reach_the_model_as_placeholders(model_dir: Path) -> None:
    """Words in a link's path or a handle carry no tone: the model sees 'http' and '@user' instead."""
    from config.settings import ClassifierSettings

    posted = "great service https://news.example/bad-not-arrived?x=1 thanks @bad_trein"
    same = "great service http thanks @user"
    clf = load_classifier(f"transformers:{model_dir}", batch_size=2, threads=1, max_length=32)
    assert clf.runner.tokenize([posted]) == clf.runner.tokenize([same])
    a, b = clf.classify([posted, same], ["en", "en"])
    assert a.p_negative == pytest.approx(b.p_negative, abs=1e-6)

    raw_settings = ClassifierSettings(model=f"transformers:{model_dir}", placeholders=False, threads=1)
    raw = load_classifier(raw_settings.model, **raw_settings.load_options())
    assert raw.runner.tokenize([posted]) != raw.runner.tokenize([same])
    c, d = raw.classify([posted, same], ["en", "en"])
    assert c.p_negative != pytest.approx(d.p_negative, abs=1e-6)
    with pytest.raises(ValueError, match="placeholders"):
        ClassifierSettings(model="default", placeholders=False)


def test_max_length_beyond_the_model_is_clamped(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="repmon.classifiers.transformers"):
        clf = load_classifier(f"transformers:{model_dir}", max_length=256)
    post = ("my order still not arrived " * 80)[:2000]  # far more than 64 tokens
    (s,) = clf.classify([post], ["en"])
    assert s.p_negative + s.p_neutral + s.p_positive == pytest.approx(1.0, abs=1e-6)
    assert clf.runner.max_length == 64  # max_position_embeddings of the tiny BERT
    assert "max_length 256" in caplog.text
    assert load_classifier(f"transformers:{model_dir}", max_length=32).runner.max_length == 32


def test_lone_surrogates_score(model_dir: Path) -> None:
    clf = load_classifier(f"transformers:{model_dir}")
    bad = b"great trein \xff".decode("utf-8", "surrogateescape")
    scores = clf.classify(["thanks", bad, "\ud800"], [None, None, None])
    assert len(scores) == 3
