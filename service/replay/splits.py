"""Which part of a dataset a prompt belongs to: ``train``, ``test`` or ``all``.

Datasets without a split of their own (RouteLLM's caches, generic files without a ``split``
column) are cut by a stable hash of the prompt, so the same prompt always lands in the same
part, in any process.
"""

from __future__ import annotations

import hashlib

__all__ = ["SPLITS", "TRAIN_FRACTION", "check_split", "hash_split"]

SPLITS = ("train", "test", "all")
#: Share of prompts :func:`hash_split` puts in ``train``.
TRAIN_FRACTION = 0.5


def hash_split(text: str, train_fraction: float = TRAIN_FRACTION) -> str:
    """Stable ``"train"``/``"test"`` assignment from the SHA-256 of ``text``.

    Examples
    --------
    >>> hash_split("What is 2+2?") in ("train", "test")
    True
    >>> hash_split("x") == hash_split("x")
    True
    """
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return "train" if u < train_fraction else "test"


def check_split(split: str) -> None:
    """Raise ``ValueError`` unless ``split`` is one of :data:`SPLITS`."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
