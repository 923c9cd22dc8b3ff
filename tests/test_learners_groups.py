"""Group effects of the ridge policies: exact, transferable, bounded, and off without a group."""

from __future__ import annotations

import numpy as np
import pytest

from banditroute.learners import LinearThompson, LinUCB, make_policy
from banditroute.learners.state import dumps, loads

ARMS = ["a", "b"]


def _events(seed: int, n: int = 40) -> list[tuple[np.ndarray, str, float, str]]:
    rng = np.random.default_rng(seed)
    groups = ["g1", "g2", "g3"]
    return [(rng.normal(size=2) * 0.5, ARMS[int(rng.integers(2))], float(rng.uniform(-1, 1)),
             groups[int(rng.integers(3))]) for _ in range(n)]


def _brute_force(events: list[tuple[np.ndarray, str, float, str]], arm: str, x: np.ndarray,
                 group: str, ridge: float, context_ridge: float, group_ridge: float,
                 intercept_prior: float) -> tuple[float, float]:
    """Posterior mean and variance of one arm from the full (p + G) ridge system."""
    groups = sorted({g for *_, g in events} | {group})
    p = len(x) + 1

    def row(x: np.ndarray, g: str) -> np.ndarray:
        onehot = np.array([1.0 if g == h else 0.0 for h in groups])
        return np.concatenate([x, [1.0], onehot])

    prior = np.concatenate([np.full(len(x), context_ridge), [ridge],
                            np.full(len(groups), group_ridge)])
    a = np.diag(prior)
    b = np.zeros(p + len(groups))
    b[p - 1] = ridge * intercept_prior
    for xe, arm_e, r, g in events:
        if arm_e == arm:
            z = row(xe, g)
            a += np.outer(z, z)
            b += r * z
    z = row(x, group)
    a_inv = np.linalg.inv(a)
    return float(z @ a_inv @ b), float(z @ a_inv @ z)


@pytest.mark.parametrize("query_group", ["g1", "g3", "never-seen"])
def test_group_scores_equal_the_joint_ridge_solution(query_group: str) -> None:
    events = _events(0)
    kw = dict(dim=2, scaling="none", ridge=1.0, context_ridge=2.0, group_ridge=0.5, explore=0.0)
    mean_only = LinUCB(ARMS, alpha=0.0, **kw)  # type: ignore[arg-type]
    with_bonus = LinUCB(ARMS, alpha=1.0, **kw)  # type: ignore[arg-type]
    for x, arm, r, g in events:
        mean_only.update(x, arm, r, group=g)
        with_bonus.update(x, arm, r, group=g)
    prior_mean = float(np.mean([r for _, _, r, _ in events]))
    x = np.array([0.3, -0.2])
    means = mean_only.select(x, group=query_group).scores
    ucbs = with_bonus.select(x, group=query_group).scores
    for arm in ARMS:
        mean, var = _brute_force(events, arm, x, query_group, 1.0, 2.0, 0.5, prior_mean)
        assert means[arm] == pytest.approx(mean, abs=1e-9)
        assert ucbs[arm] - means[arm] == pytest.approx(np.sqrt(var), abs=1e-6)


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_correct_in_a_group_is_exact(cls: type) -> None:
    events = _events(1)
    first = cls(ARMS, dim=2, scaling="none", seed=3)
    second = cls(ARMS, dim=2, scaling="none", seed=3)
    for j, (x, arm, r, g) in enumerate(events):
        first.update(x, arm, 0.0 if j == 5 else r, group=g)
        second.update(x, arm, r, group=g)
    x, arm, r, g = events[5]
    first.correct(x, arm, 0.0, r, group=g)
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    a = first.select([0.1, 0.2], rng=rng_a, group="g1").scores
    b = second.select([0.1, 0.2], rng=rng_b, group="g1").scores
    assert a == pytest.approx(b, abs=1e-12)


def test_each_group_learns_its_own_winner_on_identical_prompts() -> None:
    """The same features, two kinds of request with opposite winners: only the group
    separates them, and the policy routes each kind to its winner."""
    policy = make_policy("linucb", ARMS, dim=2, seed=0)
    x = np.array([1.0, 0.5])
    for _ in range(30):
        policy.update(x, "a", 1.0, group="maths").update(x, "b", 0.0, group="maths")
        policy.update(x, "a", 0.0, group="french").update(x, "b", 1.0, group="french")
    assert policy.select(x, group="maths").ranking[0] == "a"
    assert policy.select(x, group="french").ranking[0] == "b"
    assert policy.groups == 2
    plain = make_policy("linucb", ARMS, dim=2, seed=0)
    for _ in range(30):
        plain.update(x, "a", 1.0).update(x, "b", 0.0).update(x, "a", 0.0).update(x, "b", 1.0)
    scores = plain.select(x).scores
    assert scores["a"] == pytest.approx(scores["b"], abs=1e-9)  # without groups: a coin toss


def test_what_a_model_earns_everywhere_carries_to_a_new_group() -> None:
    policy = make_policy("linucb", ARMS, dim=2, seed=0)
    rng = np.random.default_rng(2)
    for j in range(60):
        x = rng.normal(size=2)
        group = f"kind-{j % 3}"
        policy.update(x, "a", 0.9, group=group).update(x, "b", 0.1, group=group)
    decision = policy.select(rng.normal(size=2), group="a-kind-never-seen")
    assert decision.ranking[0] == "a"
    assert decision.scores["a"] - decision.scores["b"] > 0.3


def test_snapshot_keeps_groups_bit_identical() -> None:
    policy = LinUCB(ARMS, dim=2, seed=4)
    for x, arm, r, g in _events(2):
        policy.update(x, arm, r, group=g)
    data = dumps(policy)
    restored = loads(data)
    assert dumps(restored) == data
    x = np.array([0.2, 0.1])
    assert restored.select(x, group="g2") == policy.select(x, group="g2")
    restored.update(x, "a", 0.5, group="g9")
    policy.update(x, "a", 0.5, group="g9")
    assert dumps(restored) == dumps(policy)


def test_without_groups_nothing_changes() -> None:
    """``group=None`` is the old model, and a full group table treats new groups as none."""
    events = _events(3)
    plain = LinUCB(ARMS, dim=2, seed=1)
    full = LinUCB(ARMS, dim=2, seed=1, max_groups=0)
    for x, arm, r, g in events:
        plain.update(x, arm, r)
        full.update(x, arm, r, group=g)
    for x in (np.array([0.4, -0.3]), np.array([-1.0, 2.0])):
        assert plain.select(x, rng=np.random.default_rng(0)) == full.select(
            x, rng=np.random.default_rng(0), group="g1")


def test_policies_without_group_effects_ignore_the_group() -> None:
    policy = make_policy("epsilon_greedy", ARMS, dim=2, seed=0)
    x = np.array([0.1, 0.2])
    policy.update(x, "a", 1.0, group="g1")
    assert policy.groups == 0
    assert policy.select(x, rng=np.random.default_rng(1), group="g1") == policy.select(
        x, rng=np.random.default_rng(1))


def test_a_group_that_is_not_a_str_is_rejected() -> None:
    policy = LinUCB(ARMS, dim=2)
    with pytest.raises(TypeError, match="group must be a str"):
        policy.select([0.0, 0.0], group=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="group must be a str"):
        make_policy("uniform", ARMS, dim=2).update([0.0, 0.0], "a", 1.0, group=b"g")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_groups"):
        LinUCB(ARMS, dim=2, max_groups=-1)


def test_only_the_first_max_groups_groups_get_effects_and_many_survive_a_snapshot() -> None:
    rng = np.random.default_rng(5)
    capped = LinUCB(ARMS, dim=2, seed=1, max_groups=2)
    many = LinUCB(ARMS, dim=2, seed=1)
    for j in range(40):
        x, r = rng.normal(size=2), float(rng.uniform(-1, 1))
        capped.update(x, ARMS[j % 2], r, group=f"g{j % 20}")
        many.update(x, ARMS[j % 2], r, group=f"g{j % 20}")
    assert list(capped._groups.rows) == ["g0", "g1"]
    assert len(many._groups.rows) == 20
    restored = loads(dumps(many))
    assert dumps(restored) == dumps(many)
    x = np.array([0.3, 0.3])
    for group in ("g0", "g19", "g-new"):
        assert restored.select(x, group=group).scores == many.select(x, group=group).scores


def test_changing_the_group_prior_equals_learning_with_it() -> None:
    """``GroupEffects.set_prior`` moves the ridge state exactly where learning every event
    with the new prior puts it, so the prior can be re-estimated without replaying events."""
    events = _events(5, n=120)
    strong = LinUCB(ARMS, dim=2, seed=0, group_ridge=16.0, fit_group_ridge=False)
    weak = LinUCB(ARMS, dim=2, seed=0, group_ridge=2.0, fit_group_ridge=False)
    for x, arm, r, g in events:
        strong.update(x, arm, r, group=g)
        weak.update(x, arm, r, group=g)
    strong._groups.set_prior(strong._ridge, 2.0)
    x = np.array([0.3, -0.4])
    for group in ("g1", "g2", "never-seen"):
        a = strong.select(x, rng=np.random.default_rng(0), group=group).scores
        b = weak.select(x, rng=np.random.default_rng(0), group=group).scores
        assert a == pytest.approx(b, abs=1e-12)


def _team_events(
    effect: float, seed: int, n: int = 1200
) -> list[tuple[np.ndarray, str, float, str]]:
    """Ten teams, three arms; in each team one arm earns ``effect`` more (0/1 rewards)."""
    rng = np.random.default_rng(seed)
    arms = ["a", "b", "c"]
    out = []
    for _ in range(n):
        team = int(rng.integers(10))
        arm = arms[int(rng.integers(3))]
        p = 0.4 + (effect if arm == arms[team % 3] else 0.0)
        out.append((rng.normal(size=2), arm, float(rng.random() < p), f"team-{team}"))
    return out


def test_fit_group_ridge_estimates_weak_priors_for_large_effects_and_strong_for_none() -> None:
    fitted = {}
    for effect in (0.0, 0.4):
        policy = LinUCB(["a", "b", "c"], dim=2, seed=0, fit_group_ridge_halfway=0.0)
        for x, arm, r, g in _team_events(effect, seed=1):
            policy.update(x, arm, r, group=g)
        fitted[effect] = policy.group_prior
    assert fitted[0.0] >= 64.0  # no effects: shrink them hard (the start is 16)
    # effects of +0.26 / -0.14 around each arm's mean, noise sd ~0.49: sigma^2/tau^2 ~ 6.7
    assert 3.0 <= fitted[0.4] <= 12.0
    assert LinUCB(["a"], dim=2, fit_group_ridge=False).group_prior == 16.0


def test_few_cells_keep_the_fitted_prior_near_its_start() -> None:
    """``fit_group_ridge_halfway``: the estimate moves from ``group_ridge`` towards the raw
    one on a log scale, halfway once that many (group, model) cells have two events."""
    policy = LinUCB(["a", "b", "c"], dim=2, seed=0, fit_group_ridge=False)
    for x, arm, r, g in _team_events(0.4, seed=1):
        policy.update(x, arm, r, group=g)
    groups, ridge = policy._groups, policy._ridge
    raw = groups.estimate_prior(ridge, 1.0, 256.0)
    shrunk = groups.estimate_prior(ridge, 1.0, 256.0, start=16.0, halfway=30.0)
    assert raw is not None and shrunk is not None and raw < 12.0
    w = 30 / (30 + 30.0)  # 10 teams x 3 arms, every cell with many events
    assert shrunk == pytest.approx(16.0 ** (1 - w) * raw**w, rel=1e-12)


def test_fit_group_ridge_survives_a_snapshot_and_rebuilds_identically() -> None:
    events = _team_events(0.4, seed=2, n=300)
    policy = LinUCB(["a", "b", "c"], dim=2, seed=3, fit_group_ridge=True)
    rebuilt = LinUCB(["a", "b", "c"], dim=2, seed=3, fit_group_ridge=True)
    for x, arm, r, g in events:
        policy.update(x, arm, r, group=g)
        rebuilt.update(x, arm, r, group=g)
    assert policy.group_prior != 16.0
    assert dumps(rebuilt) == dumps(policy)
    restored = loads(dumps(policy))
    assert restored.group_prior == policy.group_prior
    for x, arm, r, g in _team_events(0.4, seed=9, n=300):  # crosses the next re-estimate
        policy.update(x, arm, r, group=g)
        restored.update(x, arm, r, group=g)
    assert dumps(restored) == dumps(policy)


def test_fit_group_ridge_finds_each_teams_dear_winner_within_thirty_decisions() -> None:
    """Twenty teams send the same kind of prompt and each has its own winner (quality 1.0
    against 0.2, minus the model's cost). A fixed prior of 16 shrinks a team's effects until
    it has a few dozen outcomes, so a team whose winner is a dear model may never try it in
    30 decisions (160-199 of decisions 401-600 over 10 seeds); the fitted prior (the
    default) learns that teams differ and tries it."""
    arms = ["a", "b", "c", "d", "e"]
    cost = {"a": 0.02, "b": 0.001, "c": 0.025, "d": 0.002, "e": 0.001}
    teams = [f"team-{j}" for j in range(20)]
    winner = {team: arms[j % 5] for j, team in enumerate(teams)}
    for seed in range(6):
        rng = np.random.default_rng(seed)
        policy = LinUCB(arms, dim=8, seed=seed)  # fit_group_ridge is the default
        hits = []
        for i in range(600):
            team = teams[i % 20]
            x = rng.normal(size=8) * 0.3
            arm = policy.select(x, rng=rng, group=team).arm
            policy.update(x, arm, (1.0 if arm == winner[team] else 0.2) - cost[arm], group=team)
            hits.append(arm == winner[team])
        assert sum(hits[400:]) >= 190, (seed, sum(hits[400:]))
