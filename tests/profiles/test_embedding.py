"""The embedding reader on fixed labelled examples (it would fail if the classifier regressed), its determinism and
thread safety, and the cache: a second load reads the fitted weights instead of refitting."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from parallel_r1.profiles import embedding, read_profile
from parallel_r1.profiles.embedding import TARGETS, FittedClassifier, load_classifier, training_digest
from parallel_r1.profiles.messages import to_turns
from tests.profiles.examples import EF, EXAMPLES, LONG_EXPLANATION, RM, profile_of


def test_embedding_reader_reads_most_fixed_examples(embedding_reader):
    readings = [embedding_reader.read(to_turns(m)).profile for m, _ in EXAMPLES]
    exact = sum(set(r.traits) == set(profile_of(t).traits) for r, (_, t) in zip(readings, EXAMPLES, strict=True))
    kinds = sum(r.kind == profile_of(t).kind for r, (_, t) in zip(readings, EXAMPLES, strict=True))
    assert exact >= 23, f"{exact}/{len(EXAMPLES)} exact"
    assert kinds >= 24


def test_reading_gives_probabilities_and_the_classifiers_evidence(embedding_reader):
    reading = read_profile([{"role": "assistant", "content": LONG_EXPLANATION}, {"role": "user", "content": "hi"},
                            {"role": "assistant", "content": LONG_EXPLANATION},
                            {"role": "user", "content": "wait I lost track again, which step do I do first?"}])
    assert reading.method == "embedding" and EF in reading.traits
    assert set(reading.scores) == set(TARGETS) and all(0 <= p <= 1 for p in reading.scores.values())
    assert reading.scores[EF] > 0.5
    found = [e for e in reading.evidence if e.cue == "embedding classifier" and e.trait == EF]
    assert found and found[0].message == 3 and "lost track" in found[0].phrase
    assert reading.specialist == "neurodivergent"


def test_readings_are_the_same_from_many_threads(embedding_reader):
    messages = [m for m, _ in EXAMPLES[:12]]
    alone = [embedding_reader.read(to_turns(m)).scores for m in messages]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda m: embedding_reader.read(to_turns(m)).scores, messages * 2))
    for a, b in zip(alone * 2, together, strict=True):
        assert a == pytest.approx(b, abs=1e-5)


def test_second_load_reads_the_cache_instead_of_refitting(classifier, classifier_cache, monkeypatch):
    path = classifier_cache / "profiles" / f"classifier-{training_digest(embedding.TRAIN_FILE)[:24]}.npz"
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))  # written atomically, no temp file left

    def refit(*args, **kwargs):
        raise AssertionError("refitted although the cache holds this training file's classifier")

    monkeypatch.setattr(embedding, "fit_classifier", refit)
    again = load_classifier(cache=classifier_cache, reuse_loaded=False)
    assert again.source == "cache" and again.digest == classifier.digest
    for name in ("emb_coef", "emb_intercept", "stack_coef", "stack_intercept"):
        assert np.array_equal(getattr(again, name), getattr(classifier, name))
    assert load_classifier(cache=classifier_cache) is load_classifier(cache=classifier_cache)  # kept in memory


def test_a_damaged_cache_file_is_refitted_over(classifier, tmp_path, monkeypatch):
    path = tmp_path / "profiles" / f"classifier-{classifier.digest[:24]}.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz")
    monkeypatch.setattr(embedding, "fit_classifier", lambda *a, **k: classifier)
    assert load_classifier(cache=tmp_path, reuse_loaded=False) is classifier
    assert FittedClassifier.from_file(path).digest == classifier.digest


def test_the_digest_follows_the_training_file(tmp_path):
    copy = tmp_path / "train.jsonl"
    copy.write_bytes(embedding.TRAIN_FILE.read_bytes())
    assert training_digest(copy) == training_digest(embedding.TRAIN_FILE)
    copy.write_bytes(copy.read_bytes() + b'{"message": "one more line", "traits": []}\n')
    assert training_digest(copy) != training_digest(embedding.TRAIN_FILE)


def test_asking_for_an_analogy_is_not_rejecting_one(embedding_reader):
    asks = embedding_reader.read(to_turns(["could you explain recursion with an analogy? I like those"]))
    refuses = embedding_reader.read(to_turns(["please no analogies for recursion, they confuse me"]))
    assert asks.profile.traits == [] and RM in refuses.profile.traits
