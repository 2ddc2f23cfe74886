"""Benchmark: watchlist matching throughput (posts/s) with ~1,000 brands and ~10,000 terms.

    .venv/bin/python bench/query_matcher.py [--brands 1000] [--posts 50000] [--seed 7] [--check 2000]

Single process, single thread. Brands mix keywords, phrases, wildcards, hashtags, handles, NEAR,
boolean queries with NOT, field filters and exclusions; posts are synthetic tweet-length texts
(Dutch/English filler, some brand mentions, URLs, handles, hashtags, emoji, diacritics).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from pathlib import Path

from config.query import (
    And,
    BrandRule,
    Document,
    Near,
    Node,
    Not,
    Or,
    PreparedDocument,
    WatchlistMatcher,
    parse,
)

_COMMON_TEXT = (
    "de het een en van ik je is dat op te in niet met voor zijn maar ook er dan al nog wel bij "
    "om als zo naar wat heb kan was mijn nu weer geen hier door uit gaat over echt gewoon even "
    "moet wordt alleen toch waarom vandaag morgen gisteren trein bus pakket bestelling levering "
    "klant service app website storing vertraging klacht wachten uur minuten weer helemaal super "
    "slecht goed top bedankt dank snel traag kapot werkt niet bereikbaar telefoon mail chat "
    "the a and to of it is in my for on this that with you was not but have just so be at are "
    "today again still why order delivery customer support app down late waiting hours thanks "
    "great terrible love hate refund phone email chat train station platform ticket price"
)
COMMON = tuple(_COMMON_TEXT.split())
PRODUCTS = ("app", "pas", "abonnement", "bezorging", "winkel", "kaart", "account", "lening", "box", "pakket")
LANGS = ("nl", "nl", "nl", "en", "en", "de", "nl-BE")
SOURCES = ("x", "x", "x", "reddit", "mastodon", "trustpilot", "rss")  # `source:twitter` is x
EMOJI = ("😡", "🙏", "👍🏽", "😂", "🚆", "❤️", "🤬", "🇳🇱")
SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ze",
    "ro",
    "van",
    "ber",
    "dal",
    "tu",
    "vo",
    "rin",
    "sta",
    "pe",
    "qui",
    "xo",
    "nel",
    "dor",
    "fa",
    "gri",
    "hu",
    "jo",
    "wel",
    "cé",
    "ö",
)
FILLER_SYLLABLES = ("ba", "sen", "op", "ter", "ling", "mo", "ek", "tri", "as", "uur", "pol", "ge", "ni")


def pseudo_word(rng: random.Random, n: int, syllables: tuple[str, ...] = SYLLABLES) -> str:
    """A made-up word of n syllables."""
    return "".join(rng.choice(syllables) for _ in range(n))


def make_brands(rng: random.Random, count: int) -> list[BrandRule]:
    """Synthetic brand rules, ~10 terms each."""
    names: set[str] = set()
    while len(names) < count:
        names.add(pseudo_word(rng, rng.choice((2, 3, 3, 4))))
    rules = []
    for i, name in enumerate(sorted(names)):
        prod = f"{name}{rng.choice(PRODUCTS)}"
        kind = i % 6
        if kind == 0:
            query = f"({name} OR {prod}) AND (storing OR klacht* OR service) AND NOT vacature"
        elif kind == 1:
            query = f"{name} NEAR/3 (app OR website OR levering) NOT lang:de"
        elif kind == 2:
            query = f'"{name} {rng.choice(PRODUCTS)}" OR (#{name}* AND lang:nl)'
        elif kind == 3:
            query = f"site:{name}.nl OR (author:{name}_nl AND source:twitter) OR @{name}_care"
        elif kind == 4:
            query = f"{prod} ONEAR/2 {name} NOT source:reddit"
        else:
            query = f"({name}-{rng.choice(PRODUCTS)} OR {prod}*) AND NOT (giveaway OR winactie)"
        if i % 250 == 7:
            query = f"url:/{name}/ OR {query}"  # unindexable: checked on every post
        keywords = (name, f"{name} klantenservice", f"#{name}", f"@{name}_nl", f"{name}*")
        rules.append(
            BrandRule(
                name=name,
                keywords=keywords[: 3 + i % 3],
                query=query,
                exclude=(f'"{name} 2000"', f"author:spam{i}"),
                fold_diacritics=i % 10 != 3,
            )
        )
    return rules


def make_posts(rng: random.Random, rules: list[BrandRule], count: int) -> list[Document]:
    """Synthetic tweet-like posts; about a quarter mention a brand."""
    names = [r.name for r in rules]
    # long-tail vocabulary built from other syllables, so brand wildcards rarely fire by accident
    tail = [pseudo_word(rng, rng.choice((2, 3, 4)), FILLER_SYLLABLES) for _ in range(5000)]
    posts = []
    for _ in range(count):
        words = [
            rng.choice(COMMON) if rng.random() < 0.8 else rng.choice(tail) for _ in range(rng.randint(6, 28))
        ]
        if rng.random() < 0.25:
            name = rng.choice(names)
            mention = rng.choice(
                (
                    name,
                    name.upper(),
                    f"#{name}",
                    f"@{name}_nl",
                    f"{name}-{rng.choice(PRODUCTS)}",
                    f"{name}{rng.choice(PRODUCTS)}",
                    f"{name} klantenservice",
                )
            )
            words.insert(rng.randrange(len(words) + 1), mention)
        if rng.random() < 0.25:
            words.insert(0, "@" + rng.choice(tail))
        if rng.random() < 0.2:
            words.append("#" + rng.choice([*COMMON, *tail[:50]]))
        if rng.random() < 0.3:
            words.append(rng.choice(EMOJI))
        if rng.random() < 0.2:
            words.append(f"https://{rng.choice(names + tail[:100])}.nl/{rng.choice(tail)}")
        text = " ".join(words)
        if rng.random() < 0.5:
            text = text[0].upper() + text[1:] + rng.choice(("!", ".", "?", "!!", ""))
        posts.append(
            Document(
                text=text,
                lang=rng.choice(LANGS),
                source=rng.choice(SOURCES),
                author=rng.choice(tail) + "_" + str(rng.randrange(100)),
                url=f"https://x.com/i/{rng.randrange(10**9)}" if rng.random() < 0.5 else None,
            )
        )
    return posts


def count_terms(node: Node) -> int:
    """Leaf clauses (words, phrases, fields) of a parsed query."""
    if isinstance(node, And | Or):
        return sum(count_terms(c) for c in node.children)
    if isinstance(node, Not):
        return count_terms(node.child)
    if isinstance(node, Near):
        return count_terms(node.left) + count_terms(node.right)
    return 1


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo when available."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    """Build the watchlists, match the posts, print throughput and machine info."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--brands", type=int, default=1000)
    ap.add_argument("--posts", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes over the posts (best is reported)")
    ap.add_argument("--check", type=int, default=0, help="compare index vs. full evaluation on N posts")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    rules = make_brands(rng, args.brands)
    posts = make_posts(rng, rules, args.posts)
    terms = sum(
        len(r.keywords) + sum(count_terms(parse(q)) for q in (r.query or "", *r.exclude) if q) for r in rules
    )

    t0 = time.perf_counter()
    matcher = WatchlistMatcher(rules)
    compile_s = time.perf_counter() - t0

    rates = []
    cpu_rates = []
    matched = 0
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        matched = sum(1 for doc in posts if matcher.match(doc))
        rates.append(len(posts) / (time.perf_counter() - t0))
        cpu_rates.append(len(posts) / (time.process_time() - c0))

    t0 = time.perf_counter()
    for doc in posts:
        PreparedDocument(doc)
    tokenize_rate = len(posts) / (time.perf_counter() - t0)
    sample = posts[:5000]
    cands = [len(matcher.candidates(PreparedDocument(d))) for d in sample]

    print(f"machine:   {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"python:    {platform.python_implementation()} {platform.python_version()}")
    print(
        f"watchlist: {len(rules)} brands, {terms} terms, compiled in {compile_s:.2f} s, "
        f"{len(matcher.always_checked)} brands checked on every post"
    )
    print(
        f"posts:     {len(posts)} (mean {statistics.mean(len(d.text) for d in posts):.0f} chars), "
        f"{matched} matched at least one brand"
    )
    print(f"candidates per post: mean {statistics.mean(cands):.1f}, max {max(cands)}")
    print(f"tokenise only: {tokenize_rate:,.0f} posts/s")
    print(
        f"match:     {max(rates):,.0f} posts/s wall, {max(cpu_rates):,.0f} posts/s per CPU-second "
        f"(best of {args.repeat}; wall: " + ", ".join(f"{r:,.0f}" for r in rates) + ")"
    )
    print(
        f"load avg:  {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other processes slow the wall figure)"
    )

    if args.check:
        bad = sum(1 for d in posts[: args.check] if matcher.match(d) != matcher.match_all(d))
        print(f"check:     {bad} differences between index and full evaluation on {args.check} posts")
        if bad:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
