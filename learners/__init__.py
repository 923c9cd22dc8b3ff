"""Pure computation for banditroute: features, policies, cost prediction, reward, evaluation.

Nothing here does I/O; everything is deterministic given a seed.
"""

from banditroute.learners.base import Decision, Policy
from banditroute.learners.cost import CostModel
from banditroute.learners.features import FeatureExtractor, estimate_tokens
from banditroute.learners.linear import LinearThompson, LinUCB
from banditroute.learners.pacing import BudgetPacer
from banditroute.learners.registry import ALGORITHMS, make_policy
from banditroute.learners.reward import RewardWeights, compute_reward, merge_quality
from banditroute.learners.river_compat import AsRiverPolicy
from banditroute.learners.river_policy import RiverRewardPolicy
from banditroute.learners.simple import EpsilonGreedy, Fixed, Uniform
from banditroute.learners.state import StateFormatError, dumps, loads

__all__ = [
    "ALGORITHMS",
    "AsRiverPolicy",
    "BudgetPacer",
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
