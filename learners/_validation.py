"""Argument checks shared by the learners (private).

Every check raises ``TypeError`` for a value of the wrong type and ``ValueError`` naming the
parameter and the accepted range for a bad value.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "check_arm_name",
    "check_arms",
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "check_reward",
    "check_rng",
    "check_vector",
]

_FLOAT64 = np.dtype(np.float64)


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float within ``[low, high]`` (bounds optionally open).

    Examples
    --------
    >>> check_float("alpha", 2, low=0.0)
    2.0
    >>> check_float("alpha", -1.0, low=0.0)
    Traceback (most recent call last):
    ...
    ValueError: alpha must be >= 0.0, got -1.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out!r}")
    if low is not None and (out <= low if low_open else out < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {out!r}")
    if high is not None and (out >= high if high_open else out > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {out!r}")
    return out


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int within ``[low, high]``.

    Examples
    --------
    >>> check_int("dim", 8, low=1)
    8
    >>> check_int("dim", 2.5)
    Traceback (most recent call last):
    ...
    TypeError: dim must be an integer, got float
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    out = int(value)
    if low is not None and out < low:
        raise ValueError(f"{name} must be >= {low}, got {out}")
    if high is not None and out > high:
        raise ValueError(f"{name} must be <= {high}, got {out}")
    return out


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool, else raise ``TypeError``."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``.

    Examples
    --------
    >>> check_choice("exploration", "greedy", ["softmax", "epsilon"])
    Traceback (most recent call last):
    ...
    ValueError: exploration must be one of 'softmax', 'epsilon', got 'greedy'
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {valid}, got {value!r}")
    return value


def check_arm_name(value: Any) -> str:
    """Return ``value`` if it is a usable arm name (a non-empty str)."""
    if not isinstance(value, str):
        raise TypeError(f"arm names must be str, got {type(value).__name__}")
    if not value:
        raise ValueError("arm names must be non-empty strings")
    return value


def check_group(value: Any) -> str:
    """Return ``value`` if it is a usable group label (a str)."""
    if not isinstance(value, str):
        raise TypeError(f"group must be a str, got {type(value).__name__}")
    return value


def check_arms(arms: Any) -> list[str]:
    """Return ``arms`` as a list of distinct non-empty strings (at least one).

    Examples
    --------
    >>> check_arms(("a", "b"))
    ['a', 'b']
    >>> check_arms(["a", "a"])
    Traceback (most recent call last):
    ...
    ValueError: arms must be distinct, 'a' appears more than once
    """
    if isinstance(arms, str) or not isinstance(arms, Iterable):
        raise TypeError(f"arms must be a sequence of str, got {type(arms).__name__}")
    out = [check_arm_name(a) for a in arms]
    if not out:
        raise ValueError("arms must contain at least one arm")
    seen: set[str] = set()
    for a in out:
        if a in seen:
            raise ValueError(f"arms must be distinct, {a!r} appears more than once")
        seen.add(a)
    return out


def check_vector(x: Any, dim: int, name: str = "x") -> np.ndarray:
    """Return ``x`` as a finite float64 vector of shape ``(dim,)``.

    Examples
    --------
    >>> check_vector([1, 2], 2)
    array([1., 2.])
    >>> check_vector([1.0, float("nan")], 2)
    Traceback (most recent call last):
    ...
    ValueError: x must be finite, got a non-finite value at index 1
    """
    # Fast path (the hot path passes extractor output): an exact float64 ndarray of the right
    # shape needs only the finite check; anything else (or a non-finite x) takes the full one.
    if type(x) is np.ndarray and x.dtype is _FLOAT64 and x.shape == (dim,) and np.isfinite(x).all():
        return x
    if isinstance(x, np.ndarray) and x.dtype == np.float64:
        arr = x
    else:
        if isinstance(x, str | bytes | dict):
            raise TypeError(f"{name} must be a sequence of numbers, got {type(x).__name__}")
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a sequence of numbers: {exc}") from None
    if arr.shape != (dim,):
        raise ValueError(f"{name} must have shape ({dim},), got {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name} must be finite, got a non-finite value at index {bad}")
    return arr


def check_reward(value: Any, name: str = "reward") -> float:
    """Return ``value`` as a finite float.

    Examples
    --------
    >>> check_reward(1)
    1.0
    >>> check_reward(float("inf"))
    Traceback (most recent call last):
    ...
    ValueError: reward must be finite, got inf
    """
    return check_float(name, value)


def check_rng(rng: Any) -> np.random.Generator | None:
    """Return ``rng`` if it is ``None`` or a ``numpy.random.Generator``."""
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    return rng
