"""Benchmark: tokenising and matching crafted long posts that once took quadratic time.

    .venv/bin/python bench/hostile_text.py [--chars 20000] [--repeat 3]

Each case is a post of about ``--chars`` characters. "tokenize" times `config.query.tokenize`
(offsets, as `explain` uses), "prepare" the matcher's own hot path (`PreparedDocument`), and
"near" a `NEAR/3` query over a post with thousands of occurrences of both sides. A normal
tweet-length post takes well under a millisecond; every case here should grow linearly with
``--chars`` (double it, the time roughly doubles).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from config.query import Document, PreparedDocument, compile_query, tokenize


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """Fastest of `repeat` runs of `fn`, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    """Time each hostile case and print one line per case."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chars", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.chars
    cases = {
        "a-. repeated": "a-." * (n // 3),
        "a+ repeated": "a+" * (n // 2),
        "a.- repeated": "a.-" * (n // 3),
        "x@ repeated": "x@" * (n // 2),
        "@a. repeated": "@a." * (n // 3),
        "a& repeated": "a&" * (n // 2),
        "normal text": "De NS heeft weer een storing bij Utrecht, zie https://www.ns.nl/x 😡 " * (n // 70),
    }
    for name, text in cases.items():
        tok = best_of(args.repeat, lambda text=text: tokenize(text))
        prep = best_of(args.repeat, lambda text=text: PreparedDocument(Document(text)))
        print(
            f"{name:<14} {len(text):>7} chars  tokenize {tok * 1000:8.1f} ms  prepare {prep * 1000:8.1f} ms"
        )
    near = compile_query("ns NEAR/3 storing")
    doc = Document("ns storing " * (n // 11))
    t = best_of(args.repeat, lambda: near.matches(PreparedDocument(doc)))
    print(f"{'NEAR/3':<14} {len(doc.text):>7} chars  'ns storing ' repeated: match {t * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
