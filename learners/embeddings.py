"""Optional semantic prompt embeddings that work offline, for ``FeatureExtractor(embedding_fn=)``.

:func:`wordllama_embedder` uses the static token embeddings that the ``wordllama`` wheel ships
inside itself (``l2_supercat``, 256 dimensions, Matryoshka-trained so a prefix of the
dimensions is itself an embedding): a prompt's embedding is the mean of its tokens' vectors.
Nothing is downloaded: the files are read from the installed package, and a missing file is an
error rather than a download. It costs about 20-60 us per prompt (``python
benchmarks/features.py`` prints the measured figure).

Measured on the shared routing data it does **not** beat the default hashed features (see
docs/replay.md, "What was tried"), so it is off by default; measure it on your own
traffic with ``FeatureExtractor(embedding_fn=wordllama_embedder(64), embedding_dim=64,
dim=128)``.

Examples
--------
>>> from banditroute.learners.features import FeatureExtractor
>>> embed = wordllama_embedder(dim=32)  # doctest: +SKIP
>>> fx = FeatureExtractor(dim=96, embedding_fn=embed, embedding_dim=32)  # doctest: +SKIP
>>> fx.extract("What is the capital of France?").shape  # doctest: +SKIP
(96,)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from banditroute.learners._validation import check_int

__all__ = ["wordllama_embedder"]

_WEIGHTS = "weights/l2_supercat_256.safetensors"
_TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
#: Characters of a prompt that are embedded (its head); bounds the cost on long prompts.
MAX_CHARS = 2000


def wordllama_embedder(dim: int = 256) -> Callable[[str], np.ndarray]:
    """A ``str -> float32 array`` embedder from the ``wordllama`` wheel's own files.

    Parameters
    ----------
    dim
        Leading dimensions kept (1 to 256; the model is Matryoshka-trained, so 64 or 128 are
        embeddings in their own right).

    Raises
    ------
    ImportError
        ``wordllama`` (and its ``tokenizers`` and ``safetensors``) are not installed.
    FileNotFoundError
        The installed wheel lacks its model files.
    """
    dim = check_int("dim", dim, low=1, high=256)
    try:
        import wordllama
        from safetensors import safe_open
        from tokenizers import Tokenizer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the wordllama embedder needs the 'wordllama' package: pip install wordllama"
        ) from exc
    root = Path(wordllama.__file__).parent
    weights, tokenizer_file = root / _WEIGHTS, root / _TOKENIZER
    for path in (weights, tokenizer_file):
        if not path.is_file():
            raise FileNotFoundError(f"wordllama model file missing: {path}")
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    with safe_open(str(weights), framework="np") as fh:
        table = np.ascontiguousarray(fh.get_tensor("embedding.weight")[:, :dim], dtype=np.float32)
    zero = np.zeros(dim, dtype=np.float32)

    def embed(prompt: str) -> np.ndarray:
        ids = tokenizer.encode(prompt[:MAX_CHARS], add_special_tokens=False).ids
        if not ids:
            return zero
        return np.asarray(table[ids].mean(axis=0))

    return embed
