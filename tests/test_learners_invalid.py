"""Invalid arguments to every learners entry point fail with a clear TypeError/ValueError."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import pytest

from banditroute.learners import (
    ALGORITHMS,
    CostModel,
    FeatureExtractor,
    LinUCB,
    RewardWeights,
    StateFormatError,
    compute_reward,
    dumps,
    loads,
    make_policy,
    merge_quality,
)
from banditroute.learners.state import FORMAT_VERSION


def base_params(algorithm: str) -> dict[str, Any]:
    return {"model": "a"} if algorithm == "fixed" else {}


@pytest.mark.parametrize(
    ("algorithm", "params", "error", "match"),
    [
        ("linucb", {"alpha": -1.0}, ValueError, "alpha must be >= 0.0"),
        ("linucb", {"alpha": "big"}, TypeError, "alpha must be a real number"),
        ("linucb", {"alpha": True}, TypeError, "alpha must be a real number"),
        ("linucb", {"ridge": 0.0}, ValueError, "ridge must be > 0.0"),
        ("linucb", {"explore": 1.5}, ValueError, "explore must be <= 1.0"),
        ("linucb", {"alpha": math.nan}, ValueError, "alpha must be finite"),
        ("linucb", {"refresh_every": 0}, ValueError, "refresh_every must be >= 1"),
        ("thompson", {"v": 0.0}, ValueError, "v must be > 0.0"),
        ("thompson", {"propensity_draws": 0}, ValueError, "propensity_draws must be >= 1"),
        ("thompson", {"propensity_draws": 2.5}, TypeError, "propensity_draws must be an integer"),
        ("epsilon_greedy", {"epsilon": -0.1}, ValueError, "epsilon must be >= 0.0"),
        ("epsilon_greedy", {"estimator": "tree"}, ValueError, "estimator must be one of"),
        ("river", {"regressor": "knn"}, ValueError, "regressor must be one of 'linear'"),
        ("river", {"exploration": "ucb"}, ValueError, "exploration must be one of"),
        ("river", {"temperature": 0}, ValueError, "temperature must be > 0.0"),
        ("river", {"grace_period": 0}, ValueError, "grace_period must be >= 1"),
        ("fixed", {"model": "zzz"}, ValueError, "model must be one of the arms"),
        ("fixed", {"model": 3}, TypeError, "model must be a str"),
        ("uniform", {"scaling": "minmax"}, ValueError, "scaling must be one of"),
        ("linucb", {"scale_clip": 0.0}, ValueError, "scale_clip must be > 0.0"),
        ("linucb", {"scale_freeze_after": 0}, ValueError, "scale_freeze_after must be >= 1"),
    ],
)
def test_invalid_hyperparameter_rejected(
    algorithm: str, params: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make_policy(algorithm, ["a", "b"], 3, **{**base_params(algorithm), **params})


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_unknown_hyperparameter_named_with_valid_ones(algorithm: str) -> None:
    with pytest.raises(ValueError, match=r"unknown hyperparameter 'gamma'.*valid hyperparameters"):
        make_policy(algorithm, ["a"], 2, gamma=1.0, **base_params(algorithm))


def test_unknown_hyperparameter_rejected_by_class_constructor_too() -> None:
    with pytest.raises(ValueError, match="unknown hyperparameter 'gamma' for linucb"):
        LinUCB(["a"], 2, gamma=1.0)


def test_unknown_algorithm_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'ucb2'; valid algorithms: linucb"):
        make_policy("ucb2", ["a"], 2)
    with pytest.raises(TypeError, match="algorithm must be a str"):
        make_policy(None, ["a"], 2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arms", "dim", "seed", "error", "match"),
    [
        ([], 2, 0, ValueError, "at least one arm"),
        (["a", "a"], 2, 0, ValueError, "'a' appears more than once"),
        (["a", ""], 2, 0, ValueError, "non-empty"),
        (["a", 1], 2, 0, TypeError, "arm names must be str"),
        ("ab", 2, 0, TypeError, "arms must be a sequence"),
        (["a"], 0, 0, ValueError, "dim must be >= 1"),
        (["a"], 2.0, 0, TypeError, "dim must be an integer"),
        (["a"], 2, -1, ValueError, "seed must be >= 0"),
        (["a"], 2, None, TypeError, "seed must be an integer"),
    ],
)
def test_invalid_arms_dim_seed_rejected(
    arms: Any, dim: Any, seed: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make_policy("linucb", arms, dim, seed=seed)


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        ([1.0, math.nan, 0.0], ValueError, "x must be finite"),
        ([1.0, math.inf, 0.0], ValueError, "x must be finite"),
        ([1.0, 2.0], ValueError, r"x must have shape \(3,\)"),
        ("abc", TypeError, "x must be a sequence of numbers"),
        ([["a"], [1.0], [2.0]], TypeError, "x must be a sequence of numbers"),
    ],
)
def test_non_finite_or_malformed_context_rejected(
    algorithm: str, x: Any, error: type[Exception], match: str
) -> None:
    policy = make_policy(algorithm, ["a", "b"], 3, **base_params(algorithm))
    with pytest.raises(error, match=match):
        policy.select(x)
    with pytest.raises(error, match=match):
        policy.update(x, "a", 1.0)
    with pytest.raises(error, match=match):
        policy.correct(x, "a", 1.0, 0.0)


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
@pytest.mark.parametrize(
    ("reward", "error", "match"),
    [
        (math.nan, ValueError, "reward must be finite"),
        (-math.inf, ValueError, "reward must be finite"),
        ("1.0", TypeError, "reward must be a real number"),
        (None, TypeError, "reward must be a real number"),
    ],
)
def test_non_finite_or_malformed_reward_rejected(
    algorithm: str, reward: Any, error: type[Exception], match: str
) -> None:
    policy = make_policy(algorithm, ["a", "b"], 3, **base_params(algorithm))
    before = dumps(policy)
    with pytest.raises(error, match=match):
        policy.update([0.0, 0.0, 0.0], "a", reward)
    with pytest.raises(error, match=f"new_{match}"):
        policy.correct([0.0, 0.0, 0.0], "a", 0.0, reward)
    assert dumps(policy) == before


def test_unknown_arms_and_candidates_named() -> None:
    policy = make_policy("linucb", ["a", "b"], 2)
    with pytest.raises(ValueError, match="unknown arm 'z'; known arms: a, b"):
        policy.select([0.0, 0.0], ["a", "z"])
    with pytest.raises(ValueError, match="unknown arm 'z'"):
        policy.update([0.0, 0.0], "z", 1.0)
    with pytest.raises(ValueError, match="unknown arm 'z'"):
        policy.remove_arm("z")
    with pytest.raises(ValueError, match="at least one arm"):
        policy.select([0.0, 0.0], [])
    with pytest.raises(TypeError, match="not a str"):
        policy.select([0.0, 0.0], "a")
    with pytest.raises(ValueError, match="'a' is already an active arm"):
        policy.add_arm("a")
    with pytest.raises(TypeError, match=r"rng must be a numpy.random.Generator"):
        policy.select([0.0, 0.0], rng=42)  # type: ignore[arg-type]
    policy.remove_arm("a")
    policy.remove_arm("b")
    with pytest.raises(ValueError, match="no active arms"):
        policy.select([0.0, 0.0])


def _replace_header(data: bytes, old: bytes, new: bytes) -> bytes:
    n = struct.unpack_from("<I", data, 8)[0]
    header = data[12 : 12 + n]
    assert old in header
    header = header.replace(old, new)
    return data[:8] + struct.pack("<I", len(header)) + header + data[12 + n :]


def test_state_loads_rejects_garbage_and_newer_versions() -> None:
    data = dumps(make_policy("linucb", ["a"], 2, alpha=0.5))
    with pytest.raises(StateFormatError, match="bad magic"):
        loads(b"not a snapshot at all")
    with pytest.raises(TypeError, match="data must be bytes"):
        loads("text")  # type: ignore[arg-type]
    version = f'"format_version":{FORMAT_VERSION}'.encode()
    newer = _replace_header(data, version, f'"format_version":{FORMAT_VERSION + 1}'.encode())
    with pytest.raises(StateFormatError, match="newer than this release supports"):
        loads(newer)
    with pytest.raises(StateFormatError, match="unknown state snapshot format version 0"):
        loads(_replace_header(data, version, b'"format_version":0'))
    unknown = _replace_header(data, b'"algorithm":"linucb"', b'"algorithm":"linucb9"')
    with pytest.raises(StateFormatError, match="unknown algorithm 'linucb9'"):
        loads(unknown)
    bad_params = _replace_header(data, b'"alpha":0.5', b'"alpha":-1.0')
    with pytest.raises(StateFormatError, match="corrupt linucb state snapshot: alpha must be"):
        loads(bad_params)
    with pytest.raises(StateFormatError, match="truncated"):
        loads(data[:-8])
    with pytest.raises(StateFormatError, match="corrupt state snapshot header"):
        loads(data[:12] + b"[" + data[13:])
    with pytest.raises(StateFormatError, match="not a 'cost_model'"):
        CostModel.loads(data)


def test_state_refuses_to_load_non_river_objects() -> None:
    from banditroute.learners._river_codec import CodecError, decode, encode

    with pytest.raises(CodecError, match="refusing to load 'os:system'"):
        decode({"classes": ["os:system"], "tree": {"o": 0}})
    with pytest.raises(CodecError, match="refusing to load 'builtins:eval'"):
        decode({"classes": [], "tree": {"fn": "builtins:eval"}})
    with pytest.raises(CodecError, match=r"'river\.stats:Mean\.update' is not a class"):
        decode({"classes": ["river.stats:Mean.update"], "tree": None})
    with pytest.raises(CodecError, match="malformed state node"):
        decode({"classes": [], "tree": {"r": 5}})
    with pytest.raises(CodecError, match="cannot serialise"):
        encode(np.random.default_rng(0))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"cost_weight": -1.0}, ValueError, "cost_weight must be >= 0.0"),
        ({"latency_weight": math.inf}, ValueError, "latency_weight must be finite"),
        ({"feedback_weight": 1.5}, ValueError, "feedback_weight must be <= 1.0"),
        ({"reward_min": 1.0, "reward_max": 0.0}, ValueError, "reward_min must be < reward_max"),
        ({"cost_weight": "1"}, TypeError, "cost_weight must be a real number"),
    ],
)
def test_invalid_reward_weights_rejected(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        RewardWeights(**kwargs)


def test_invalid_reward_inputs_rejected() -> None:
    w = RewardWeights()
    with pytest.raises(ValueError, match="quality must be finite"):
        compute_reward(w, quality=math.nan)
    with pytest.raises(ValueError, match=r"cost_usd must be >= 0.0"):
        compute_reward(w, quality=1.0, cost_usd=-0.1)
    with pytest.raises(ValueError, match=r"latency_ms must be >= 0.0"):
        compute_reward(w, quality=1.0, latency_ms=-5.0)
    with pytest.raises(TypeError, match="weights must be RewardWeights"):
        compute_reward({"cost_weight": 1.0}, quality=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="success must be a bool"):
        merge_quality(success="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="feedback must be finite"):
        merge_quality(feedback=math.inf)


def test_invalid_feature_extractor_arguments_rejected() -> None:
    with pytest.raises(ValueError, match="dim must be >= 32"):
        FeatureExtractor(dim=8)
    with pytest.raises(TypeError, match="dim must be an integer"):
        FeatureExtractor(dim="64")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"leaves .* hashed text slots"):
        FeatureExtractor(dim=32, embedding_fn=lambda s: [1.0], embedding_dim=16)
    with pytest.raises(ValueError, match="embedding_dim needs an embedding_fn"):
        FeatureExtractor(embedding_dim=8)
    fx = FeatureExtractor()
    with pytest.raises(TypeError, match="prompt must be a str"):
        fx.extract(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="numeric context 'temp' must be finite"):
        fx.extract("hi", numeric={"temp": math.nan})
    with pytest.raises(TypeError, match="numeric context 'temp' must be a number"):
        fx.extract("hi", numeric={"temp": "hot"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="categorical context 'tier' must map str to str"):
        fx.extract("hi", categorical={"tier": 1})  # type: ignore[dict-item]
    bad = FeatureExtractor(embedding_fn=lambda s: [math.nan, 1.0])
    with pytest.raises(ValueError, match="embedding_fn returned non-finite values"):
        bad.extract("hi")


def test_invalid_cost_model_arguments_rejected() -> None:
    with pytest.raises(ValueError, match=r"default_output_tokens must be >= 0.0"):
        CostModel(4, default_output_tokens=-1)
    cm = CostModel(2)
    with pytest.raises(ValueError, match=r"output_tokens must be >= 0.0"):
        cm.learn("m", [0.0, 1.0], output_tokens=-3)
    with pytest.raises(ValueError, match="latency_ms must be finite"):
        cm.learn("m", [0.0, 1.0], latency_ms=math.nan)
    with pytest.raises(ValueError, match="x must be finite"):
        cm.predict_output_tokens("m", [math.inf, 1.0])
    with pytest.raises(ValueError, match="input_tokens must be >= 0"):
        cm.estimate_cost_usd("m", [0.0, 1.0], -1, 1.0, 1.0)
    assert cm.models == []
