"""Prompt features: fixed width, pure, and responsive to the signals they claim to capture."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from banditroute.learners import FeatureExtractor, estimate_tokens
from banditroute.learners.features import DENSE_FEATURES

FX = FeatureExtractor(dim=64)


def dense(text: str) -> dict[str, float]:
    v = FX.extract(text)
    return {name: float(v[i]) for i, name in enumerate(DENSE_FEATURES)}


@pytest.mark.parametrize("dim", [32, 64, 128, 1024])
def test_extract_returns_configured_width(dim: int) -> None:
    fx = FeatureExtractor(dim=dim)
    v = fx.extract("Summarise this article in three bullet points.", {"n": 3.0}, {"t": "x"})
    assert v.shape == (dim,) == (fx.dim,)
    assert len(fx.feature_names) == dim
    assert v.dtype == np.float64


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(max_size=400),
    numeric=st.dictionaries(st.text(max_size=5), st.floats(-1e12, 1e12), max_size=3),
    categorical=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
def test_extract_is_pure_finite_and_bounded(
    text: str, numeric: dict[str, float], categorical: dict[str, str]
) -> None:
    v = FX.extract(text, numeric, categorical)
    assert np.isfinite(v).all()
    assert np.array_equal(v, FeatureExtractor(dim=64).extract(text, numeric, categorical))
    # log-scaled: a context value of 1e12 maps to ~28; at most 3 numeric names share a slot
    assert np.abs(v).max() <= 3 * 28.0


def test_dense_signals_respond_to_prompt_content() -> None:
    code = dense("```python\ndef f(x):\n    return {x: [1, 2]}\n```")
    prose = dense("Tell me a short story about a lighthouse keeper")
    assert code["log_code_markers"] > prose["log_code_markers"]
    assert code["code_punctuation_share"] > prose["code_punctuation_share"]
    assert dense("What is 12 * 7 = ?")["log_math_markers"] > prose["log_math_markers"]
    assert dense("Why is the sky blue?")["ends_with_question"] == 1.0
    assert dense("Why is the sky blue?")["starts_with_question_word"] == 1.0
    assert prose["ends_with_question"] == 0.0
    assert dense("请把这段话翻译成英文")["cjk_share"] > 0.9
    assert dense("Переведи этот текст")["non_latin_share"] > 0.5
    assert prose["non_latin_share"] == 0.0
    assert dense("a" * 5000)["log_chars"] > dense("a" * 50)["log_chars"]
    assert dense("<div><p>hi</p></div>")["log_markup_markers"] > 0


def test_context_changes_only_its_own_block() -> None:
    base = FX.extract("hello")
    with_num = FX.extract("hello", numeric={"max_tokens": 512})
    with_cat = FX.extract("hello", categorical={"tenant": "acme"})
    names = FX.feature_names
    num_slots = [i for i, n in enumerate(names) if n.startswith("numeric_hash_")]
    cat_slots = [i for i, n in enumerate(names) if n.startswith("categorical_hash_")]
    changed_num = np.flatnonzero(with_num != base)
    changed_cat = np.flatnonzero(with_cat != base)
    assert len(changed_num) and set(changed_num) <= set(num_slots)
    assert len(changed_cat) and set(changed_cat) <= set(cat_slots)
    assert not np.array_equal(
        with_cat, FX.extract("hello", categorical={"tenant": "globex"})
    )


def test_hashed_text_block_is_unit_norm_and_separates_topics() -> None:
    names = FX.feature_names
    text_slots = [i for i, n in enumerate(names) if n.startswith("text_hash_")]
    a = FX.extract("translate the following sentence into French")[text_slots]
    b = FX.extract("translate the following paragraph into French")[text_slots]
    c = FX.extract("prove that the square root of two is irrational")[text_slots]
    assert np.linalg.norm(a) == pytest.approx(1.0)
    assert a @ b > a @ c


def test_embedding_hook_fills_its_block() -> None:
    calls: list[str] = []

    def embed(text: str) -> list[float]:
        calls.append(text)
        return [float(len(text)), 1.0, -2.0, 0.5, 3.0]

    fx = FeatureExtractor(dim=64, embedding_fn=embed, embedding_dim=8)
    v = fx.extract("some prompt")
    slots = [i for i, n in enumerate(fx.feature_names) if n.startswith("embedding_")]
    assert len(slots) == 8
    assert calls == ["some prompt"]
    assert np.linalg.norm(v[slots]) == pytest.approx(1.0)
    assert np.array_equal(v, fx.extract("some prompt"))
    same_width = FeatureExtractor(dim=64, embedding_fn=lambda s: np.arange(8.0), embedding_dim=8)
    emb = same_width.extract("x")[slots]
    np.testing.assert_allclose(emb, np.arange(8.0) / np.linalg.norm(np.arange(8.0)))


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("", 0), ("abcd", 1), ("abcde", 2), ("x" * 400, 100), ("日本語", 3)],
)
def test_estimate_tokens(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


def test_hashed_text_sees_the_tail_of_long_prompts() -> None:
    """Few-shot prompts share a long head; the question at the end must still show."""
    fx = FeatureExtractor(dim=64, max_ngram_chars=256)
    slots = [i for i, n in enumerate(fx.feature_names) if n.startswith("text_hash_")]
    shots = "Question: which gas do plants absorb? Answer: carbon dioxide.\n" * 40
    a = fx.extract(shots + "Question: what is the boiling point of water at sea level?")[slots]
    b = fx.extract(shots + "Question: who wrote the novel War and Peace?")[slots]
    a2 = fx.extract(shots + "Question: what is the boiling point of water at sea level?!")[slots]
    assert not np.allclose(a, b)
    assert a @ a2 > a @ b
    # the middle of a long prompt is skipped: only head and tail windows count
    middle = fx.extract("x" * 256 + " zebra quagga " * 50 + "y" * 256)[slots]
    assert np.array_equal(middle, fx.extract("x" * 256 + " okapi " * 90 + "y" * 256)[slots])


def test_hashed_text_words_and_trigrams_are_case_insensitive_and_stable() -> None:
    slots = [i for i, n in enumerate(FX.feature_names) if n.startswith("text_hash_")]
    a = FX.extract("Héllo Wörld_x 日本語 😀")[slots]
    assert np.array_equal(a, FX.extract("héllo wörld_x 日本語 😀")[slots])
    empty = FeatureExtractor(dim=64, max_ngram_chars=0).extract("hello")[slots]
    assert np.count_nonzero(empty) == 0
    assert not np.array_equal(a, FeatureExtractor(dim=64, seed=1).extract("Héllo Wörld_x")[slots])


def test_features_match_the_recorded_digest() -> None:
    """Replay results and logged decision features depend on the exact vectors: a speed-up of
    ``extract`` must not change them. The digest is of the features rounded to 9 decimals:
    the text block's norm is BLAS's ``ddot``, whose last bit depends on the CPU's kernel (an
    Intel and an AMD EPYC machine differ by 1e-16); every summation order gives this digest.
    (Unrounded, on the first kind of machine, the 2026-11-27 version gave 71aa03a2a027...)"""
    import hashlib

    prompts = [
        "How do I reverse a list in Python?",
        "def f(x):\n    return x ** 2  # `square`\n",
        "请把这段话翻译成英文 — why? 🙂",
        "</div> **bold** [a](b)\n# Title\n- item\n1. first $x^2 + \\frac{1}{2}$ ≤ π",
        "Example: " + "word_" * 300 + "\nQuestion: what is 2+2?",
    ]
    digest = hashlib.sha256()
    for dim in (32, 64, 256):
        fx = FeatureExtractor(dim=dim, max_ngram_chars=128)
        for p in prompts:
            features = fx.extract(p, {"max_tokens": 256}, {"tenant": "acme"})
            digest.update(np.round(features, 9).tobytes())
    assert digest.hexdigest() == "b217ff79fcf8ab80002ed1addb4475f2f32cfe568aff5aa2063e2009598d0151"
