"""Rebuild ``classifiers/data/nl_sentiment.txt`` from the CLiPS Pattern Dutch lexicon.

The Pattern lexicon (``nl-sentiment.xml``, © University of Antwerp, BSD-3 / PDDL) tags Dutch
adjectives per *sense*. At run time we only need one (polarity, subjectivity, intensity) per word
form, so — exactly like Pattern itself does — senses of the same form are averaged. The result is a
~70 kB TSV that ships with repmon, so nothing outside the repository is read at run time.

Usage::

    python -m classifiers.build_lexicon [../shared/data/lexicons/nl-sentiment.xml] [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

__all__ = ["DEFAULT_SOURCE", "DEFAULT_TARGET", "build_lexicon", "main"]

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "lexicons" / "nl-sentiment.xml"
DEFAULT_TARGET = Path(__file__).resolve().parent / "data" / "nl_sentiment.txt"

_HEADER = (
    "# Dutch adjective sentiment lexicon, senses averaged per lower-cased word form.\n"
    "# Derived by classifiers/build_lexicon.py from CLiPS Pattern nl-sentiment.xml v{version}\n"
    "# (Tom De Smedt, Walter Daelemans; (c) 2011-2013 University of Antwerp; BSD-3, see LICENSE-pattern.txt).\n"
    "# columns: form, polarity (-1..1), subjectivity (0..1), intensity (multiplier)\n"
)


def build_lexicon(source: Path, target: Path) -> int:
    """Convert the Pattern XML at ``source`` into the compact TSV at ``target``; return the word count."""
    root = ET.parse(source).getroot()  # a local, trusted lexicon file
    senses: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for word in root.iter("word"):
        form = (word.get("form") or "").strip().lower()
        if not form:
            continue
        senses[form].append(
            (
                float(word.get("polarity") or 0.0),
                float(word.get("subjectivity") or 0.0),
                float(word.get("intensity") or 1.0),
            )
        )
    lines = [_HEADER.format(version=root.get("version", "?"))]
    for form in sorted(senses):
        vals = senses[form]
        n = len(vals)
        pol, subj, inten = (sum(v[i] for v in vals) / n for i in range(3))
        lines.append(f"{form}\t{pol:.3f}\t{subj:.3f}\t{inten:.3f}\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(lines), encoding="utf-8")
    return len(senses)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_TARGET)
    args = parser.parse_args(argv)
    if not args.source.exists():
        sys.stderr.write(f"lexicon not found: {args.source}\n")
        return 2
    n = build_lexicon(args.source, args.out)
    sys.stderr.write(f"wrote {n} word forms to {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
