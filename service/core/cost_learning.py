"""The cost model learns from the outcomes of the event log, like the policies.

Every process learns the same outcomes in log order, so its output-token and latency predictions
(used by Route to price candidates) converge with the other processes'. The River regressors cost
about 0.2 ms per outcome, too much for every event at high rates: only outcomes whose event id is
a multiple of ``learn_every`` are learned (a deterministic subsample, the same in every process).
The model is snapshotted with the policies (see :mod:`banditroute.service.core.snapshots`).
"""

from __future__ import annotations

import contextlib

from banditroute.learners.cost import CostModel
from banditroute.service.core.policies import DecisionEvents
from banditroute.service.storage.events import LearningEvent

__all__ = ["CostLearner"]


class CostLearner:
    """A :class:`~banditroute.learners.cost.CostModel` and the log position it includes.

    Parameters
    ----------
    dim
        Feature dimension.
    learn_every
        Outcomes whose event id is a multiple of this are learned.
    """

    def __init__(self, dim: int, learn_every: int = 4) -> None:
        self.model = CostModel(dim=dim)
        self.learn_every = max(1, learn_every)
        #: Outcomes up to this event id are part of :attr:`model` (from its snapshot).
        self.last_event_id = 0

    def restore(self, state: bytes, last_event_id: int) -> None:
        """Replace the model by a snapshot that includes the log up to ``last_event_id``."""
        self.model = CostModel.loads(state)
        self.last_event_id = last_event_id

    def learn(self, item: DecisionEvents, event: LearningEvent) -> None:
        """Learn from an outcome event of decision ``item`` (other events are ignored)."""
        if event.kind != "outcome" or event.event_id % self.learn_every:
            return
        if event.event_id <= self.last_event_id:
            return
        latency = None if event.latency_ms is None else float(event.latency_ms)
        if event.output_tokens is None and latency is None:
            return
        with contextlib.suppress(TypeError, ValueError):
            self.model.learn(
                item.model,
                item.features,
                output_tokens=None if event.output_tokens is None else float(event.output_tokens),
                latency_ms=latency,
            )
