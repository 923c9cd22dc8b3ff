"""Pure computation for banditroute: features, policies, cost prediction, reward, evaluation."""
