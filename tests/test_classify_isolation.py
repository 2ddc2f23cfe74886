"""One text the classifier cannot score fails alone: the rest of its batch is scored."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select

from classifiers.base import ClassifierError, Scores
from classifiers.testing import FailingClassifier, StubClassifier
from monitor import models
from tests.pipeline_util import config_text, load, make_runtime, post, write_jsonl


class PoisonClassifier(StubClassifier):
    """Fails every batch that contains the word POISON (as a real model fails on one bad text)."""

    def classify(self, texts: Sequence[str], languages: Sequence[str | None]) -> list[Scores]:
        self.calls += 1
        if any("POISON" in t for t in texts):
            raise ClassifierError("cannot score this text (test)")
        self.calls -= 1  # counted once, by the stub
        return super().classify(texts, languages)


POSTS = [
    post(n, f"Acme Rail {'POISON ' if n == 7 else ''}update number {n}, thanks", minutes=n)
    for n in range(1, 13)
]


def _states(runtime) -> dict[str, tuple[str, int, str | None]]:  # type: ignore[no-untyped-def]
    with runtime.db.session() as session:
        rows = session.execute(
            select(
                models.Mention.external_id,
                models.Mention.classify_state,
                models.Mention.classify_attempts,
                models.Mention.classify_error,
            )
        ).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _score_count(runtime) -> int:  # type: ignore[no-untyped-def]
    with runtime.db.session() as session:
        return int(session.execute(select(func.count()).select_from(models.Score)).scalar_one())


async def test_a_bad_text_fails_alone_and_is_parked_alone(db_url: str, tmp_path: Path) -> None:
    replay = write_jsonl(tmp_path / "posts.jsonl", POSTS)
    runtime, _ = make_runtime(load(config_text(db_url, replay)), tmp_path, classifier=PoisonClassifier())
    try:
        summary = await runtime.run_once()
        assert summary.scored == 11
        assert _score_count(runtime) == 11
        states = _states(runtime)
        assert states["p7"][:2] == ("pending", 1) and "cannot score" in (states["p7"][2] or "")
        assert all(s == ("scored", 0, None) for k, s in states.items() if k != "p7")
        assert runtime.metrics.classify_errors.labels("ClassifierError")._value.get() == 1

        # Retried with the usual backoff until parked; never scored, never 'neutral'.
        for _ in range(runtime.classify.max_attempts - 1):
            runtime.clock.advance(3600)  # type: ignore[attr-defined]
            await runtime.process()
        states = _states(runtime)
        assert states["p7"][:2] == ("failed", runtime.classify.max_attempts)
        assert _score_count(runtime) == 11
        assert runtime.metrics.classify_errors.labels("ClassifierError")._value.get() == 5
    finally:
        await runtime.aclose()


async def test_a_classifier_that_fails_everything_fails_the_batch_once(db_url: str, tmp_path: Path) -> None:
    replay = write_jsonl(tmp_path / "posts.jsonl", POSTS)
    runtime, _ = make_runtime(load(config_text(db_url, replay)), tmp_path, classifier=FailingClassifier())
    try:
        summary = await runtime.run_once()
        assert summary.scored == 0 and _score_count(runtime) == 0
        states = _states(runtime)
        assert {s[:2] for s in states.values()} == {("pending", 1)}
        # counted as one failed batch, as before splitting
        assert runtime.metrics.classify_errors.labels("ClassifierError")._value.get() == 1
    finally:
        await runtime.aclose()
