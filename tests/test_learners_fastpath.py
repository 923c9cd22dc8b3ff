"""Hot-path shortcuts (features, vector validation, cost predictions) change no output."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from banditroute.learners import FeatureExtractor, LinUCB
from banditroute.learners._validation import check_vector
from banditroute.learners.cost import CostModel


def test_text_hashing_edge_cases_match_the_recorded_digest() -> None:
    """Single characters, NULs, astral code points, lower-casing that lengthens the window
    (``İ``), windows cut at ``max_ngram_chars``, a text block whose size is not a power of two.

    The digest is of the features rounded to 9 decimals: the text block's norm goes through
    BLAS's ``ddot``, whose kernel (and so its last bit) depends on the CPU (an Intel and an
    AMD EPYC machine differ by 1e-16), while a change to the hashing moves whole slots. The
    digest of the unrounded features recorded with the 2026-11-27 implementation on the first
    kind of machine, before the hot-path rewrite, was 4b5d31559ba1...; rounded, every
    summation order (ddot, pairwise, fsum, einsum) gives the one asserted here."""
    prompts = [
        "a", "?", "ab", "a b", "_", "\0x\0", "x" * 2000, "İstanbul " * 150, "😀𝔘" * 40,
        "ÀÉÎÕÜ ñ ß ſ ﬃ Σας", "mixed 中文 and English_words 123 😀 end",
        "\n\t  \u2028 spaces   only  ", "tail? " * 200 + "final question here?",
    ]  # fmt: skip
    digest = hashlib.sha256()
    for dim, h in ((32, 512), (64, 3), (200, 40), (64, 1)):
        fx = FeatureExtractor(dim=dim, max_ngram_chars=h)
        for p in prompts:
            digest.update(np.round(fx.extract(p), 9).tobytes())
    assert digest.hexdigest() == "fa21141a1e5a33fe977eb1860845b5f0f23184c8aaecf095c4fc35412e354762"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_check_vector_fast_path_still_rejects_non_finite_arrays(bad: float) -> None:
    x = np.zeros(8)
    x[5] = bad
    with pytest.raises(ValueError, match="non-finite value at index 5"):
        check_vector(x, 8)
    policy = LinUCB(["a", "b"], dim=8)
    with pytest.raises(ValueError, match="x must be finite"):
        policy.select(x)
    with pytest.raises(ValueError, match="x must be finite"):
        CostModel(dim=8).predict_output_tokens_many(["a"], x)


def test_check_vector_returns_float64_arrays_as_is() -> None:
    x = np.full(4, 1e200)  # huge but finite: accepted, no copy
    assert check_vector(x, 4) is x
    strided = np.arange(8.0)[::2]
    assert check_vector(strided, 4) is strided
    with pytest.raises(ValueError, match="shape"):
        check_vector(np.zeros(3), 4)
    assert check_vector(np.arange(4, dtype=np.float32), 4).dtype == np.float64


def test_cost_predictions_many_match_one_by_one() -> None:
    cm = CostModel(dim=3, default_output_tokens=50.0)
    rng = np.random.default_rng(0)
    for _ in range(30):
        cm.learn("m1", rng.standard_normal(3), output_tokens=float(rng.integers(1, 500)))
        cm.learn("m2", rng.standard_normal(3), latency_ms=100.0)  # no output-token data
    x = rng.standard_normal(3)
    many = cm.predict_output_tokens_many(["m1", "m2", "unknown"], x)
    assert many == {m: cm.predict_output_tokens(m, x) for m in ("m1", "m2", "unknown")}
    assert many["m2"] == many["unknown"] == 50.0
