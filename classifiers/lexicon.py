"""Lexicon baseline (``lexicon@1``): VADER for English, CLiPS Pattern + our supplement for Dutch.

It is the fallback when the embedded model cannot be used, and its signals (lexicon polarity,
complaint cue counts, punctuation) are also extra features for the embedded model's heads.
Everything it needs ships in the repository (``classifiers/data/``) or inside the vaderSentiment
wheel; nothing is downloaded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from classifiers.base import LABELS, ClassifierError, Scores, SentimentLabel
from classifiers.langid import LanguageDetector, language_hint

__all__ = [
    "FEATURE_NAMES",
    "MAX_CHARS",
    "DutchSentimentLexicon",
    "LexiconAnalyzer",
    "LexiconClassifier",
    "LexiconScore",
    "TextSignals",
    "complaint_cue_count",
    "replace_lone_surrogates",
    "validate_batch",
]

#: Texts are cut to this many characters before scoring: the opening of a very long post (a blog,
#: a news article) says enough, and a bounded cost per mention keeps the daemon's latency bounded.
MAX_CHARS = 2_000
#: Cap of the length feature (``log_chars``). The heads were trained on tweets: the longest text in
#: the training sets (``../shared/data/eval/*.jsonl``) has 307 characters, so beyond this the
#: feature is an extrapolation the heads never saw, and a long neutral article (or ``'x' * 20000``)
#: came out as a near-certain complaint on length alone. At or above 307, so the features of the
#: training data (and hence the trained heads) are unchanged.
LENGTH_FEATURE_CAP = 320

# ---------------------------------------------------------------------------------------------
# Dutch lexicon scoring (VADER-style rules over the Pattern polarity lexicon)
# ---------------------------------------------------------------------------------------------

#: Pattern polarities are in [-1, 1]; VADER valences in about [-4, 4]. We score in VADER units so
#: that Dutch and English compounds are comparable.
_NL_SCALE = 4.0
_NEGATION_SCALAR = -0.74  # VADER's empirically derived value
_NEGATION_WINDOW = 3
_EXCLAMATION_BOOST = 0.292  # per '!', at most 4, as in VADER
_NL_NEGATIONS = frozenset(
    {"niet", "geen", "nooit", "niks", "niets", "allerminst", "nergens", "noch", "zonder"}
)
_NL_BUT = frozenset({"maar", "echter", "alleen"})
#: Degree adverbs: they scale the next sentiment word and carry no polarity themselves
#: ("erg goed" is positive although "erg" alone is negative in Pattern).
_NL_BOOSTERS: Mapping[str, float] = {
    "heel": 1.3, "erg": 1.3, "zeer": 1.3, "echt": 1.2, "super": 1.4, "enorm": 1.4, "ontzettend": 1.4,
    "hartstikke": 1.4, "vreselijk": 1.4, "verschrikkelijk": 1.4, "bijzonder": 1.3, "extreem": 1.4,
    "uiterst": 1.4, "zo": 1.2, "zó": 1.3, "te": 1.1, "totaal": 1.3, "absoluut": 1.3, "ronduit": 1.3,
    "werkelijk": 1.2, "best": 1.1, "behoorlijk": 1.2, "nogal": 0.9, "redelijk": 0.8, "beetje": 0.7,
    "wat": 1.0, "iets": 0.8, "vrij": 0.9, "weinig": 0.7, "mega": 1.4, "keihard": 1.3, "bere": 1.4,
}  # fmt: skip
_TOKEN = re.compile(
    r"[^\W\d_]+(?:['’-][^\W\d_]+)*"  # words, with inner apostrophes/hyphens
    r"|[:;=8][-o^']?[)(\]\[dDpP/\\|*@]"  # western emoticons
    r"|<3"
    r"|[^\w\s]",  # any other single symbol (emoji and punctuation)
    re.UNICODE,
)
_VOWELS = frozenset("aeiou")


def _normalize(score: float, alpha: float = 15.0) -> float:
    """VADER's squashing of a valence sum into [-1, 1]."""
    return score / math.sqrt(score * score + alpha)


@dataclass(frozen=True, slots=True)
class LexiconScore:
    """Lexicon verdict on one text: VADER-style compound in [-1, 1] and positive/negative/neutral shares."""

    compound: float
    positive: float
    negative: float
    neutral: float
    hits: int


_EMPTY_SCORE = LexiconScore(0.0, 0.0, 0.0, 1.0, 0)


def _load_tsv(name: str) -> list[list[str]]:
    text = resources.files("classifiers").joinpath("data", name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


class DutchSentimentLexicon:
    """Scores Dutch text with the Pattern adjective lexicon, our webcare supplement and VADER's emoji."""

    def __init__(
        self,
        polarity: Mapping[str, float],
        symbol_valence: Callable[[str], float] | None = None,
    ) -> None:
        self._polarity = dict(polarity)
        self._symbol_valence = symbol_valence or (lambda _s: 0.0)
        self._lookup = lru_cache(maxsize=65_536)(self._lookup_uncached)

    @classmethod
    def bundled(cls, symbol_valence: Callable[[str], float] | None = None) -> DutchSentimentLexicon:
        """The lexicon shipped in ``classifiers/data`` (Pattern, overridden by ``nl_webcare_extra.txt``)."""
        try:
            polarity = {row[0]: float(row[1]) for row in _load_tsv("nl_sentiment.txt")}
            polarity.update({row[0]: float(row[1]) for row in _load_tsv("nl_webcare_extra.txt")})
        except (OSError, ValueError, IndexError) as exc:
            raise ClassifierError(f"cannot read the bundled Dutch lexicon: {exc}") from exc
        return cls(polarity, symbol_valence)

    def __len__(self) -> int:
        return len(self._polarity)

    @staticmethod
    def _candidates(word: str) -> list[str]:
        """Predicative forms an inflected Dutch adjective may come from (goede → goed, grote → groot)."""
        out = [word]
        for suffix in ("ste", "st", "ere", "er", "e", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                stem = word[: -len(suffix)]
                out.append(stem)
                if stem[-1] == stem[-2] and stem[-1] not in _VOWELS:  # slechtte→…, dikke → dik
                    out.append(stem[:-1])
                if stem[-1] in "vz":  # lieve → lief, boze → boos
                    stem = stem[:-1] + {"v": "f", "z": "s"}[stem[-1]]
                    out.append(stem)
                if (
                    len(stem) >= 3
                    and stem[-2] in _VOWELS
                    and stem[-3] not in _VOWELS
                    and stem[-1] not in _VOWELS
                ):
                    out.append(stem[:-1] + stem[-2] + stem[-1])  # grote → groot, bozer → boos
        return out

    def _lookup_uncached(self, word: str) -> float | None:
        for cand in self._candidates(word):
            pol = self._polarity.get(cand)
            if pol is not None:
                return pol
        return None

    def score(self, text: str) -> LexiconScore:
        """Score one (Dutch) text."""
        tokens = _TOKEN.findall(text[:MAX_CHARS].lower())
        valences: list[float] = []
        but_at: int | None = None
        negate_left = 0
        boost = 1.0
        for tok in tokens:
            if tok in _NL_NEGATIONS:
                negate_left = _NEGATION_WINDOW
                continue
            if tok in _NL_BUT:
                but_at = len(valences)
                continue
            if tok in _NL_BOOSTERS:
                boost *= _NL_BOOSTERS[tok]
                continue
            if tok[0].isalpha():
                pol = self._lookup(tok)
                val = 0.0 if pol is None else pol * _NL_SCALE
            else:
                val = self._symbol_valence(tok)
                if not val:
                    continue  # punctuation
            if val:
                val *= boost
                if negate_left:
                    val *= _NEGATION_SCALAR
                negate_left = 0
                boost = 1.0
            else:
                negate_left = max(0, negate_left - 1)
            valences.append(val)
        if but_at is not None:  # as in VADER: what follows 'maar' counts more than what precedes it
            valences = [v * (0.5 if i < but_at else 1.5) for i, v in enumerate(valences)]
        hits = sum(1 for v in valences if v)
        if not hits:
            return LexiconScore(0.0, 0.0, 0.0, 1.0, 0)
        total = sum(valences)
        bangs = min(text.count("!"), 4) * _EXCLAMATION_BOOST
        total += bangs if total > 0 else -bangs
        pos = sum(v + 1 for v in valences if v > 0)
        neg = sum(v - 1 for v in valences if v < 0)
        neu = sum(1 for v in valences if v == 0)
        denom = pos + abs(neg) + neu
        return LexiconScore(_normalize(total), pos / denom, abs(neg) / denom, neu / denom, hits)


# ---------------------------------------------------------------------------------------------
# Complaint cues (English and Dutch; the patterns do not collide, so both are always applied)
# ---------------------------------------------------------------------------------------------

_CUES_EN = (
    r"\bstill (?:not|no|waiting|haven'?t|hasn'?t|didn'?t|can'?t|cannot|nothing|unable|broken|no sign)\b",
    r"\b(?:been|keep|kept|am|i'?m|are|we'?re) waiting\b",
    r"\bwaiting (?:for|on|since)\b",
    r"\bnever (?:received|arrived|got|came|showed|turned up|delivered|heard)\b",
    r"\b(?:not|never|hasn'?t|haven'?t|wasn'?t|didn'?t|isn'?t|hadn'?t)\s+(?:been\s+|yet\s+)?(?:received|arrived|"
    r"delivered|working|work|fixed|resolved|refunded|responded|replied|answered|happy|impressed|turned up)\b",
    r"\b(?:doesn'?t|does not|won'?t|will not|can'?t|cannot|couldn'?t|unable to) (?:even )?(?:work|load|connect|"
    r"log ?in|sign ?in|open|get through|access|reach|use|download|update|pay|book|check ?in)\b",
    r"\b(?:no|zero|without) (?:reply|response|answer|help|service|signal|internet|wifi|connection|update|"
    r"refund|email|call ?back|power|heating|water)\b",
    r"\b(?:nobody|no one|noone)\b",
    r"\b(?:cancel+ed|delay(?:ed|s)?|late|lost|missing|broken|damaged|faulty|wrong|error|outage|overcharged|"
    r"charged twice|double charged|refund|scam+(?:ed|ers?)?|rip ?off|ripped off|unacceptable|ridiculous|"
    r"disgrace(?:ful)?|appall?ing|terrible|awful|horrible|worst|useless|pathetic|shocking|rude|disappoint\w*|"
    r"frustrat\w*|fed up|sort (?:it|this) out|fix (?:it|this)|complain\w*|#?fail(?:ed|ing|s|ure)?|"
    r"not good enough|joke|shambles|nightmare|incompetent|poor service|bad service|stuck|stranded)\b",
    r"\b(?:why|how come|what'?s going on|what is going on|where is my|where'?s my)\b[^?]*\?",
    r"\b(?:again|every time|yet again|for the \w+ time)\b",
    r"\b\d+\s*(?:hours?|hrs?|days?|weeks?|months?|minutes?|mins?)\b",
    r"\bon hold\b",
)
_CUES_NL = (
    r"\bnog (?:steeds|altijd) (?:niet|geen|niks|niets|aan het wachten|wachten|kapot|storing)\b",
    r"\b(?:wacht|wachten|gewacht|wachttijd|in de wacht)\b",
    r"\bniet (?:ontvangen|bezorgd|geleverd|gekomen|aangekomen|opgelost|bereikbaar|terugbetaald|teruggebeld|"
    r"gereageerd|geholpen|gestort|verwerkt)\b",
    r"\bgeen (?:reactie|antwoord|bericht|bereik|internet|verbinding|signaal|hulp|terugbetaling|stroom|"
    r"warm water|pakket|bevestiging)\b",
    r"\bwerkt (?:weer |nog steeds |al dagen )?niet\b",
    r"\b(?:storing|storingen|vertraging|vertragingen|vertraagd|uitgevallen|uitval|geannuleerd|kapot|defect|"
    r"klacht|klachten|klantenservice|geld terug|terugbetal\w*|belachelijk|schandalig|schande|slecht\w*|"
    r"teleurgesteld|teleurstelling|waardeloos|waardeloze|weer eens|alweer|probleem|problemen|fout|te laat|"
    r"kwijt|verkeerde?|boete|afgeschreven|dubbel betaald|onbereikbaar|oplichters?|opgelicht|ergerlijk|"
    r"irritant|drama|puinhoop|wanprestatie)\b",
    r"\b(?:waarom|hoezo|hoe kan het|wat is er aan de hand|waar blijft)\b[^?]*\?",
    r"\b\d+\s*(?:uur|dagen|dag|weken|week|maanden|minuten|min)\b",
)
_CUES = re.compile("|".join(f"(?:{p})" for p in (*_CUES_EN, *_CUES_NL)), re.IGNORECASE)
_WHY = re.compile(r"\b(?:why|how come|waarom|hoezo)\b", re.IGNORECASE)
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)@\w+")


def complaint_cue_count(text: str) -> int:
    """Number of complaint cues (English or Dutch phrases such as 'still waiting', 'nog steeds niet')."""
    return len(_CUES.findall(text[:MAX_CHARS]))


# ---------------------------------------------------------------------------------------------
# Signals and features shared by the lexicon baseline and the embedded heads
# ---------------------------------------------------------------------------------------------

#: Names of the columns of :meth:`LexiconAnalyzer.features`, in order.
FEATURE_NAMES: tuple[str, ...] = (
    "compound", "positive", "negative", "neutral", "has_hits", "en_compound", "nl_compound",
    "complaint_cues", "question", "why", "exclamations", "starts_with_handle", "handles", "url",
    "log_chars", "is_nl", "is_en",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TextSignals:
    """Everything the lexicon layer reads from one text."""

    language: str | None
    score: LexiconScore  # the verdict for the text's language
    en: LexiconScore
    nl: LexiconScore
    complaint_cues: int
    question: bool
    why: bool
    exclamations: int
    starts_with_handle: bool
    handles: int
    url: bool
    chars: int

    def vector(self) -> list[float]:
        """The signals as numbers, in :data:`FEATURE_NAMES` order."""
        s = self.score
        return [
            s.compound, s.positive, s.negative, s.neutral, float(s.hits > 0), self.en.compound,
            self.nl.compound, math.log1p(self.complaint_cues), float(self.question), float(self.why),
            math.log1p(self.exclamations), float(self.starts_with_handle), math.log1p(self.handles),
            float(self.url), math.log1p(min(self.chars, LENGTH_FEATURE_CAP)) / 8.0,
            float(self.language == "nl"),
            float(self.language == "en"),
        ]  # fmt: skip


def _vader_score(analyzer: Any, text: str) -> LexiconScore:
    raw = analyzer.polarity_scores(text)
    hits = 0 if raw["compound"] == 0.0 and raw["neu"] == 1.0 else 1
    return LexiconScore(raw["compound"], raw["pos"], raw["neg"], raw["neu"], hits)


class LexiconAnalyzer:
    """Computes :class:`TextSignals` (VADER for English, the Dutch lexicon for Dutch, cues for both)."""

    def __init__(self) -> None:
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ClassifierError("the lexicon classifier needs the 'vaderSentiment' package") from exc
        self._vader = SentimentIntensityAnalyzer()
        self._symbol_cache: dict[str, float] = {}
        self.dutch = DutchSentimentLexicon.bundled(self._symbol_valence)

    def _symbol_valence(self, symbol: str) -> float:
        """VADER valence of an emoticon or emoji (emoji through their CLDR descriptions)."""
        cached = self._symbol_cache.get(symbol)
        if cached is not None:
            return cached
        lexicon: Mapping[str, float] = self._vader.lexicon
        value = float(lexicon.get(symbol, 0.0))
        if not value and symbol in self._vader.emojis:
            words = self._vader.emojis[symbol].lower().split()
            value = max(-3.5, min(3.5, sum(float(lexicon.get(w, 0.0)) for w in words)))
        if len(self._symbol_cache) < 10_000:  # bounded: symbols are a small closed set
            self._symbol_cache[symbol] = value
        return value

    def signals(self, text: str, language: str | None) -> TextSignals:
        """Signals for one text; ``language`` picks which lexicon's verdict is the main one."""
        cut = text[:MAX_CHARS]
        en = _vader_score(self._vader, cut)
        nl = self.dutch.score(cut)
        if language == "nl":
            main = nl
        elif language == "en" or not nl.hits:
            main = en
        else:  # unknown or another language: trust the lexicon that found the stronger signal
            main = en if abs(en.compound) >= abs(nl.compound) else nl
        stripped = cut.lstrip()
        return TextSignals(
            language=language,
            score=main,
            en=en,
            nl=nl,
            complaint_cues=complaint_cue_count(cut),
            question="?" in cut,
            why=bool(_WHY.search(cut)),
            exclamations=cut.count("!"),
            starts_with_handle=stripped.startswith("@"),
            handles=len(_HANDLE.findall(cut)),
            url=bool(_URL.search(cut)),
            chars=len(text),
        )

    def features(self, texts: Sequence[str], languages: Sequence[str | None]) -> np.ndarray:
        """Matrix ``(len(texts), len(FEATURE_NAMES))`` of signals, float32."""
        rows = [self.signals(t, lang).vector() for t, lang in zip(texts, languages, strict=True)]
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(FEATURE_NAMES))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_lone_surrogates(texts: Sequence[str]) -> list[str]:
    """``texts`` with every surrogate code point (never valid on its own in a ``str``: e.g. bytes
    decoded with ``surrogateescape``) replaced by U+FFFD, so such a text scores like any other
    instead of making the tokenizers (and so the whole batch) fail. Call after :func:`validate_batch`."""
    return [_LONE_SURROGATE.sub("\ufffd", t) if _LONE_SURROGATE.search(t) else t for t in texts]


def validate_batch(texts: Sequence[str], languages: Sequence[str | None]) -> None:
    """Raise :class:`ClassifierError` unless ``texts`` and ``languages`` are a well-formed batch."""
    if isinstance(texts, str):
        raise ClassifierError("classify() takes a sequence of texts, not a single string")
    if len(texts) != len(languages):
        raise ClassifierError(f"got {len(texts)} texts but {len(languages)} language hints")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ClassifierError(f"text #{i} is {type(text).__name__}, not str")
    for i, lang in enumerate(languages):
        if lang is not None and not isinstance(lang, str):
            raise ClassifierError(f"language hint #{i} is {type(lang).__name__}, not str or None")


def resolve_languages(
    texts: Sequence[str], languages: Sequence[str | None], detector: LanguageDetector
) -> list[str | None]:
    """Language per text: the source's hint when given (normalised to ISO 639-1), else detected."""
    out: list[str | None] = []
    unknown: list[int] = []
    if len(texts) != len(languages):
        raise ValueError(f"{len(texts)} texts but {len(languages)} language hints")
    for i, hint in enumerate(languages):
        code = language_hint(hint)
        if code:
            out.append(code)
        else:
            out.append(None)
            unknown.append(i)
    if unknown:  # detected together: the detector scores a batch far faster than one text at a time
        for i, detected in zip(unknown, detector.detect_many([texts[i] for i in unknown]), strict=True):
            out[i] = detected
    return out


def sentiment_probabilities(compound: float, slope: float, neutral_band: float) -> tuple[float, float, float]:
    """(negative, neutral, positive) from a compound score: softmax of ±slope·(|c| − band) against 0."""
    z = np.array([slope * (-compound - neutral_band), 0.0, slope * (compound - neutral_band)])
    e = np.exp(z - z.max())
    p = e / e.sum()
    return float(p[0]), float(p[1]), float(p[2])


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class LexiconClassifier:
    """Rule/lexicon baseline: no model files beyond two small lexicons; about 2,000 mentions/s."""

    model_id = "lexicon@1"
    #: Sentiment calibration, fitted once on the English and Dutch dev tweets (see docs/classifiers.md).
    SLOPE = 3.0
    NEUTRAL_BAND = 0.3
    #: Complaint logit = bias + weights · (cues, negative share, compound<0, question, why, @-start),
    #: fitted once with logistic regression on complaints_dev.jsonl (see docs/classifiers.md).
    COMPLAINT_BIAS = -1.71
    COMPLAINT_WEIGHTS = (2.9, 0.25, 0.87, 0.54, 0.67, 0.43)

    def __init__(
        self,
        detector: LanguageDetector | None = None,
        analyzer: LexiconAnalyzer | None = None,
        *,
        device: str = "cpu",
        threads: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        # device/threads/batch_size are accepted so every classifier takes the same settings; the
        # lexicon runs on one CPU thread and has no use for batching.
        del device, threads, batch_size
        self.detector = detector or LanguageDetector()
        self.analyzer = analyzer or LexiconAnalyzer()

    def classify(self, texts: Sequence[str], languages: Sequence[str | None]) -> list[Scores]:
        """Score ``texts``; one :class:`Scores` per text, same order."""
        validate_batch(texts, languages)
        texts = replace_lone_surrogates(texts)
        try:
            langs = resolve_languages(texts, languages, self.detector)
            return [self._score(self.analyzer.signals(t, lang)) for t, lang in zip(texts, langs, strict=True)]
        except ClassifierError:
            raise
        except Exception as exc:  # a bug or bad input must not become a silent 'neutral'
            raise ClassifierError(f"lexicon scoring failed: {exc!r}") from exc

    def _score(self, sig: TextSignals) -> Scores:
        p_neg, p_neu, p_pos = sentiment_probabilities(sig.score.compound, self.SLOPE, self.NEUTRAL_BAND)
        label: SentimentLabel = LABELS[int(np.argmax([p_neg, p_neu, p_pos]))]
        cues = (
            math.log1p(sig.complaint_cues),
            sig.score.negative,
            float(sig.score.compound < -0.05),
            float(sig.question),
            float(sig.why),
            float(sig.starts_with_handle),
        )
        logit = self.COMPLAINT_BIAS + sum(w * x for w, x in zip(self.COMPLAINT_WEIGHTS, cues, strict=True))
        return Scores(
            sentiment=label,
            p_negative=p_neg,
            p_neutral=p_neu,
            p_positive=p_pos,
            complaint=_sigmoid(logit),
            language=sig.language,
            model=self.model_id,
        )
