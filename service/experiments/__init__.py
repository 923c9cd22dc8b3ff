"""A/B rollouts of routing policies: sticky assignment, shadow variants, statistics, guardrails."""
