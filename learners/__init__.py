"""Pure computation for banditroute: features, policies, cost prediction, reward, evaluation.

Nothing here does I/O; everything is deterministic given a seed.
"""

from learners.base import Decision, Policy
from learners.cost import CostModel
from learners.features import FeatureExtractor, estimate_tokens
from learners.linear import LinearThompson, LinUCB
from learners.registry import ALGORITHMS, make_policy
from learners.reward import RewardWeights, compute_reward, merge_quality
from learners.river_compat import AsRiverPolicy
from learners.river_policy import RiverRewardPolicy
from learners.simple import EpsilonGreedy, Fixed, Uniform
from learners.state import StateFormatError, dumps, loads

__all__ = [
    "ALGORITHMS",
    "AsRiverPolicy",
    "CostModel",
    "Decision",
    "EpsilonGreedy",
    "FeatureExtractor",
    "Fixed",
    "LinUCB",
    "LinearThompson",
    "Policy",
    "RewardWeights",
    "RiverRewardPolicy",
    "StateFormatError",
    "Uniform",
    "compute_reward",
    "dumps",
    "estimate_tokens",
    "loads",
    "make_policy",
    "merge_quality",
]
