"""Validation of what the Admin API stores: names, tenants, numbers, labels, JSON values and
hyperparameters (each refusal an :class:`~banditroute.service.errors.InvalidArgument` naming
the field). Used by :mod:`banditroute.service.core.admin`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from banditroute.learners.registry import ALGORITHMS, make_policy
from banditroute.service.errors import InvalidArgument

__all__ = [
    "check_hyperparameters",
    "check_label",
    "check_number",
    "check_tenant",
    "json_value",
    "validate_name",
]

_NAME = re.compile(r"^[A-Za-z0-9._:/@-]{1,200}$")
_TENANT = re.compile(r"^[A-Za-z0-9._:/@-]{0,200}$")
#: Feature dimension used to validate hyperparameters (any valid dim works for validation).
_VALIDATION_DIM = 8


def validate_name(kind: str, value: object) -> str:
    """Return ``value`` if it is a valid name of ``kind`` (route, policy, model id)."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidArgument(
            f"{kind} {value!r} must be 1-200 characters of letters, digits and ._-:/@"
        )
    return value


def check_tenant(value: object) -> str:
    """Return ``value`` if it is a valid tenant (may be empty: the shared tenant)."""
    if not isinstance(value, str) or not _TENANT.match(value):
        raise InvalidArgument(
            f"tenant {value!r} must be at most 200 characters of letters, digits and ._-:/@"
        )
    return value


def check_number(name: str, value: object, low: float = 0.0, high: float = math.inf) -> float:
    """``value`` as a float if it is a finite number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        upper = "" if high == math.inf else f" and <= {high:g}"
        raise InvalidArgument(f"{name} must be finite, >= {low:g}{upper}; got {value!r}")
    return number


def check_label(name: str, value: object, limit: int = 200) -> str:
    """Return ``value`` if it is printable text of at most ``limit`` characters."""
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise InvalidArgument(f"{name} must be printable text of at most {limit} characters")
    return value


def check_hyperparameters(algorithm: str, hyperparameters: Mapping[str, Any], seed: int) -> None:
    """Refuse an unknown ``algorithm`` or hyperparameters its policy class does not accept."""
    if algorithm not in ALGORITHMS:
        known = ", ".join(sorted(ALGORITHMS))
        raise InvalidArgument(f"unknown algorithm {algorithm!r}; known algorithms: {known}")
    arms = ["model-a", "model-b"]
    params = dict(hyperparameters)
    if (
        algorithm == "fixed"
        and isinstance(params.get("model"), str)
        and params["model"] not in arms
    ):
        arms.append(params["model"])
    try:
        make_policy(algorithm, arms, dim=_VALIDATION_DIM, seed=seed, **params)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"invalid hyperparameters for {algorithm}: {exc}") from None


def json_value(name: str, value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-storable data (integral floats as ints), at most 8 levels deep."""
    if depth > 8:
        raise InvalidArgument(f"{name} is nested too deeply")
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"{name} must be finite, got {value!r}")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, Mapping):
        return {str(k): json_value(f"{name}.{k}", v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(f"{name}[]", v, depth + 1) for v in value]
    raise InvalidArgument(f"{name} has an unsupported value of type {type(value).__name__}")
