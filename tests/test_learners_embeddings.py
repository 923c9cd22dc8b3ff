"""The offline WordLlama embedder: files from the wheel, no download, deterministic."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from banditroute.learners.embeddings import wordllama_embedder
from banditroute.learners.features import FeatureExtractor

wordllama = pytest.importorskip("wordllama")


def test_embeds_prompts_deterministically_with_the_requested_width() -> None:
    embed = wordllama_embedder(dim=64)
    cat, dog, code = (embed(p) for p in ("a small cat", "a small dog", "def f(x): return x"))
    assert cat.shape == (64,) and np.isfinite(cat).all()
    assert np.array_equal(cat, wordllama_embedder(dim=64)("a small cat"))
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cos(cat, dog) > cos(cat, code)  # semantic: cat is nearer dog than code
    assert not embed("").any()


def test_feeds_the_feature_extractors_embedding_block() -> None:
    fx = FeatureExtractor(dim=96, embedding_fn=wordllama_embedder(32), embedding_dim=32)
    v = fx.extract("What is the capital of France?")
    names = fx.feature_names
    block = v[names.index("embedding_0") : names.index("embedding_31") + 1]
    assert v.shape == (96,) and abs(float(np.linalg.norm(block)) - 1.0) < 1e-9


def test_a_wheel_without_its_model_files_is_an_error_not_a_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.SimpleNamespace(__file__=str(tmp_path / "__init__.py"))
    monkeypatch.setitem(__import__("sys").modules, "wordllama", fake)
    with pytest.raises(FileNotFoundError, match="wordllama model file missing"):
        wordllama_embedder()


def test_rejects_a_width_the_model_does_not_have() -> None:
    with pytest.raises(ValueError, match="dim"):
        wordllama_embedder(dim=300)
