"""Per-model online prediction of output tokens and latency, hence of a request's cost.

For every model two River ``LinearRegression`` (AdaGrad) learn ``log1p(output_tokens)`` and
``log1p(latency_ms)`` from the prompt features, one outcome at a time. Their intercepts start at
the priors (``default_output_tokens``, ``default_latency_ms``), so an unseen model predicts the
prior. Predictions are the hot path (every candidate on every request), so each regressor's
weights are mirrored into a numpy matrix (a row per model) after each ``learn``: a prediction is
one dot product, and :meth:`CostModel.predict_output_tokens_many` predicts every candidate of a
request with one matrix-vector product.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from river import linear_model, optim

from banditroute.learners._river_codec import decode, encode
from banditroute.learners._validation import check_arm_name, check_float, check_int, check_vector

__all__ = ["CostModel"]

_TARGETS = ("output_tokens", "latency_ms")


class CostModel:
    """Online predictors of output tokens and latency per model, from prompt features.

    Parameters
    ----------
    dim
        Length of the feature vectors.
    default_output_tokens
        Prior prediction of output tokens for a model without data (>= 0).
    default_latency_ms
        Prior prediction of latency for a model without data (>= 0).
    learning_rate
        AdaGrad learning rate of the regressors (> 0).
    max_output_tokens, max_latency_ms
        Predictions are clipped to ``[0, max]``.

    Examples
    --------
    >>> cm = CostModel(dim=2, default_output_tokens=100)
    >>> round(cm.predict_output_tokens("m", [1.0, 0.0]))
    100
    >>> for _ in range(300):
    ...     _ = cm.learn("m", [1.0, 0.0], output_tokens=400, latency_ms=900.0)
    >>> 300 < cm.predict_output_tokens("m", [1.0, 0.0]) < 500
    True
    >>> usd = cm.estimate_cost_usd("m", [1.0, 0.0], input_tokens=1000,
    ...                            input_usd_per_mtok=1.0, output_usd_per_mtok=10.0)
    >>> 0.004 < usd < 0.006
    True
    """

    def __init__(
        self,
        dim: int,
        *,
        default_output_tokens: float = 256.0,
        default_latency_ms: float = 1000.0,
        learning_rate: float = 0.1,
        max_output_tokens: float = 1e6,
        max_latency_ms: float = 3.6e6,
    ) -> None:
        self._dim = check_int("dim", dim, low=1)
        self.default_output_tokens = check_float(
            "default_output_tokens", default_output_tokens, low=0.0
        )
        self.default_latency_ms = check_float("default_latency_ms", default_latency_ms, low=0.0)
        self.learning_rate = check_float("learning_rate", learning_rate, low=0.0, low_open=True)
        self.max_output_tokens = check_float("max_output_tokens", max_output_tokens, low=0.0)
        self.max_latency_ms = check_float("max_latency_ms", max_latency_ms, low=0.0)
        self._regressors: dict[str, dict[str, Any]] = {}
        self._counts: dict[str, dict[str, int]] = {}
        # numpy mirror of the regressors: one row per model, per target
        self._rows: dict[str, int] = {}
        self._w = {t: np.zeros((0, self._dim)) for t in _TARGETS}
        self._b = {t: np.zeros(0) for t in _TARGETS}
        self._has: dict[str, list[bool]] = {t: [] for t in _TARGETS}  # lists: cheap to index

    @property
    def dim(self) -> int:
        """Length of the feature vectors."""
        return self._dim

    @property
    def models(self) -> list[str]:
        """Models that learned at least one outcome."""
        return list(self._regressors)

    def _prior(self, target: str) -> float:
        return self.default_output_tokens if target == "output_tokens" else self.default_latency_ms

    def _cap(self, target: str) -> float:
        return self.max_output_tokens if target == "output_tokens" else self.max_latency_ms

    def _new_regressor(self, target: str) -> Any:
        return linear_model.LinearRegression(
            optimizer=optim.AdaGrad(self.learning_rate),
            intercept_init=math.log1p(self._prior(target)),
            intercept_lr=self.learning_rate,
        )

    def _predict(self, model: str, x: Any, target: str) -> float:
        xv = check_vector(x, self._dim)
        row = self._rows.get(model)
        if row is None or not self._has[target][row]:
            return self._prior(target)
        y = math.expm1(float(self._w[target][row] @ xv) + float(self._b[target][row]))
        return min(max(y, 0.0), self._cap(target))

    def _predict_many(self, models: Iterable[str], x: Any, target: str) -> dict[str, float]:
        xv = check_vector(x, self._dim)
        prior, cap = self._prior(target), self._cap(target)
        has = self._has[target]
        logs = self._w[target] @ xv
        logs += self._b[target]  # in place: the same sums as ``w @ x + b``
        log_list = logs.tolist()
        rows = self._rows
        expm1 = math.expm1
        out: dict[str, float] = {}
        for model in models:
            row = rows.get(model)
            if row is None or not has[row]:
                out[model] = prior
            else:  # min(max(y, 0.0), cap) without the calls (same result, NaN included)
                y = expm1(log_list[row])
                out[model] = cap if y > cap else (0.0 if y < 0.0 else y)
        return out

    def predict_output_tokens_many(self, models: Iterable[str], x: Any) -> dict[str, float]:
        """:meth:`predict_output_tokens` for several models at once (one matrix product).

        Examples
        --------
        >>> cm = CostModel(dim=2, default_output_tokens=50)
        >>> cm.predict_output_tokens_many(["a", "b"], [0.0, 1.0])
        {'a': 50.0, 'b': 50.0}
        """
        return self._predict_many(models, x, "output_tokens")

    def predict_latency_ms_many(self, models: Iterable[str], x: Any) -> dict[str, float]:
        """:meth:`predict_latency_ms` for several models at once (one matrix product)."""
        return self._predict_many(models, x, "latency_ms")

    def predict_output_tokens(self, model: str, x: Any) -> float:
        """Predicted output tokens of ``model`` for features ``x`` (the prior before data)."""
        return self._predict(model, x, "output_tokens")

    def predict_latency_ms(self, model: str, x: Any) -> float:
        """Predicted latency in ms of ``model`` for features ``x`` (the prior before data)."""
        return self._predict(model, x, "latency_ms")

    def estimate_cost_usd(
        self,
        model: str,
        x: Any,
        input_tokens: int,
        input_usd_per_mtok: float,
        output_usd_per_mtok: float,
    ) -> float:
        """Estimated US dollars of sending the prompt (``input_tokens``) to ``model``."""
        n_in = check_int("input_tokens", input_tokens, low=0)
        p_in = check_float("input_usd_per_mtok", input_usd_per_mtok, low=0.0)
        p_out = check_float("output_usd_per_mtok", output_usd_per_mtok, low=0.0)
        n_out = self.predict_output_tokens(model, x)
        return (n_in * p_in + n_out * p_out) / 1e6

    def learn(
        self,
        model: str,
        x: Any,
        *,
        output_tokens: float | None = None,
        latency_ms: float | None = None,
    ) -> CostModel:
        """Learn one observed outcome of ``model`` (either target may be missing)."""
        name = check_arm_name(model)
        xv = check_vector(x, self._dim)
        observed = {}
        if output_tokens is not None:
            observed["output_tokens"] = check_float("output_tokens", output_tokens, low=0.0)
        if latency_ms is not None:
            observed["latency_ms"] = check_float("latency_ms", latency_ms, low=0.0)
        if not observed:
            return self
        features = dict(enumerate(xv.tolist()))
        regs = self._regressors.setdefault(name, {})
        counts = self._counts.setdefault(name, {})
        for target, value in observed.items():
            reg = regs.get(target)
            if reg is None:
                reg = regs[target] = self._new_regressor(target)
            reg.learn_one(features, math.log1p(value))
            counts[target] = counts.get(target, 0) + 1
            self._mirror(name, target)
        return self

    def _mirror(self, model: str, target: str) -> None:
        """Copy one regressor's weights into the numpy mirror used by predictions."""
        row = self._rows.get(model)
        if row is None:
            row = self._rows[model] = len(self._rows)
            for t in _TARGETS:
                self._w[t] = np.vstack([self._w[t], np.zeros((1, self._dim))])
                self._b[t] = np.append(self._b[t], 0.0)
                self._has[t].append(False)
        reg = self._regressors[model][target]
        weights = reg._weights
        self._w[target][row] = np.fromiter(
            (weights.get(i, 0.0) for i in range(self._dim)), np.float64, self._dim
        )
        self._b[target][row] = float(reg.intercept)
        self._has[target][row] = True

    def summary(self) -> dict[str, dict[str, int]]:
        """Number of outcomes learned per model and target."""
        return {m: dict(c) for m, c in self._counts.items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible, exact representation (see :meth:`from_dict`)."""
        return {
            "dim": self._dim,
            "default_output_tokens": self.default_output_tokens,
            "default_latency_ms": self.default_latency_ms,
            "learning_rate": self.learning_rate,
            "max_output_tokens": self.max_output_tokens,
            "max_latency_ms": self.max_latency_ms,
            "counts": [[m, sorted(c.items())] for m, c in self._counts.items()],
            "regressors": encode(self._regressors),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CostModel:
        """Rebuild a :class:`CostModel` from :meth:`to_dict` output."""
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict, got {type(data).__name__}")
        params = {
            k: data[k]
            for k in (
                "default_output_tokens",
                "default_latency_ms",
                "learning_rate",
                "max_output_tokens",
                "max_latency_ms",
            )
        }
        out = cls(data["dim"], **params)
        out._counts = {m: dict(c) for m, c in data["counts"]}
        regressors = decode(data["regressors"])
        if not isinstance(regressors, dict):
            raise ValueError("corrupt cost model state")
        out._regressors = regressors
        for model, regs in regressors.items():
            for target in sorted(regs):
                if target not in _TARGETS:
                    raise ValueError(f"corrupt cost model state: unknown target {target!r}")
                out._mirror(model, target)
        return out

    def dumps(self) -> bytes:
        """Serialise to bytes in the versioned container of :mod:`banditroute.learners.state`."""
        from banditroute.learners.state import pack

        return pack({"kind": "cost_model", "values": self.to_dict()}, {})

    @classmethod
    def loads(cls, data: bytes) -> CostModel:
        """Rebuild from :meth:`dumps` output (raises ``StateFormatError`` on bad data)."""
        from banditroute.learners.state import StateFormatError, unpack

        header, _ = unpack(data, "cost_model")
        try:
            return cls.from_dict(header["values"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFormatError(f"corrupt cost model snapshot: {exc}") from None
