"""``banditroute replay`` / ``evaluate``: loaders, online runner, baselines, reports, plots."""

from banditroute.service.replay.dataset import ReplayDataset
from banditroute.service.replay.loaders import DATASETS, load_dataset, load_generic

__all__ = ["DATASETS", "ReplayDataset", "load_dataset", "load_generic"]
