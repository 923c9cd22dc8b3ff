"""Online feature standardisation: a per-dimension running mean and variance (Welford).

It is part of a policy's learned state: :meth:`OnlineScaler.learn` is called by
``Policy.update`` (never by ``select``), it can freeze after ``freeze_after`` events, and the
standardised values are clipped to ``[-clip, clip]``. A dimension whose variance is still 0 is
only centred. ``mode="none"`` passes the raw vector through.

Examples
--------
>>> s = OnlineScaler(dim=1, mode="standard", clip=5.0, freeze_after=None)
>>> for v in (1.0, 3.0):
...     s.learn(np.array([v]))
>>> out = np.empty(1)
>>> s.transform_into(np.array([4.0]), out).tolist()  # mean 2, std 1
[2.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["OnlineScaler"]


class OnlineScaler:
    """Running standardisation of ``dim``-dimensional vectors (see the module doc)."""

    def __init__(self, dim: int, mode: str, clip: float, freeze_after: int | None) -> None:
        self.dim = dim
        self.mode = mode
        self.clip = clip
        self.freeze_after = freeze_after
        self.n = 0
        self.mean = np.zeros(dim)
        self.m2 = np.zeros(dim)
        self.inv_std = np.ones(dim)

    def learn(self, x: np.ndarray) -> None:
        """Count one event's raw vector (unless scaling is off or frozen)."""
        if self.mode == "none":
            return
        if self.freeze_after is not None and self.n >= self.freeze_after:
            return
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)
        self._refresh()

    def transform_into(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write the scaled ``x`` into ``out`` (length ``dim``) and return ``out``."""
        if self.mode == "none":
            out[...] = x
            return out
        np.subtract(x, self.mean, out=out)
        np.multiply(out, self.inv_std, out=out)
        np.minimum(out, self.clip, out=out)
        np.maximum(out, -self.clip, out=out)
        return out

    def _refresh(self) -> None:
        if self.n == 0:
            self.inv_std = np.ones(self.dim)
            return
        var = self.m2 / self.n
        with np.errstate(divide="ignore"):
            self.inv_std = np.where(var > 1e-12, 1.0 / np.sqrt(var), 1.0)

    def get_state(self) -> dict[str, Any]:
        """The scaler's part of a policy snapshot (keys ``scale_n``, ``scale_mean``,
        ``scale_m2``, as snapshots have always stored them)."""
        return {"scale_n": self.n, "scale_mean": self.mean.copy(), "scale_m2": self.m2.copy()}

    def set_state(self, n: int, mean: np.ndarray, m2: np.ndarray) -> None:
        """Restore what :meth:`get_state` returned (arrays already checked)."""
        self.n = int(n)
        self.mean = mean
        self.m2 = m2
        self._refresh()
