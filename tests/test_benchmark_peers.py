"""benchmarks/peers.py (banditroute vs Vowpal Wabbit) and the late hull gap it reports."""

from __future__ import annotations

import csv
import doctest
import importlib.util
import inspect
import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from banditroute.service.replay import cli
from banditroute.service.replay.dataset import ReplayDataset
from banditroute.service.replay.hull import hull_gap, late_hull_gap
from banditroute.service.replay.loaders import load_dataset

PEERS_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "peers.py"


@pytest.fixture(scope="module")
def peers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmark_peers", PEERS_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _two_models() -> ReplayDataset:
    """'cheap' (cost 1) is right on prompts 0, 2 and 4; 'dear' (cost 3) on all five."""
    quality = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    return ReplayDataset("toy", list("abcde"), ["cheap", "dear"], quality,
                         np.tile([1.0, 3.0], (5, 1)))


def test_late_hull_gap_of_always_the_best_model_is_zero() -> None:
    ds = _two_models()
    assert late_hull_gap(ds, [4, 3, 2, 1, 0], [1] * 5) == 0.0
    assert hull_gap(ds, [4, 3, 2, 1, 0], [1] * 5) == 0.0


def test_late_hull_gap_hand_computed() -> None:
    ds = _two_models()
    order = [4, 3, 2, 1, 0]  # n = 5: the late half is positions 2, 3, 4 = rows 2, 1, 0
    # late rows 2, 1, 0: cheap 2/3 right, so the hull is (1, 2/3) - (3, 1).
    # A router mixing: cheap on row 2 (right), dear on row 1, cheap on row 0 (right):
    # quality 1 at cost 5/3; the hull there is 2/3 + (1/3) * (2/3) / 2 = 7/9; gap 2/9.
    choices = [0, 0, 0, 1, 0]
    assert late_hull_gap(ds, order, choices) == pytest.approx(2 / 9)
    # Mixing wrongly: dear on row 2, cheap on row 1 (wrong), dear on row 0:
    # quality 2/3 at cost 7/3; hull 2/3 + (4/3) * (1/3) / 2 = 8/9; gap -2/9.
    assert late_hull_gap(ds, order, [1, 1, 1, 0, 1]) == pytest.approx(-2 / 9)
    # Only the late half counts: the early choices do not change it.
    assert late_hull_gap(ds, order, [1, 0, 0, 1, 0]) == pytest.approx(2 / 9)
    # Always the cheap model sits on the hull's first vertex.
    assert late_hull_gap(ds, order, [0] * 5) == pytest.approx(0.0)


def test_late_hull_gap_rejects_bad_input() -> None:
    ds = _two_models()
    with pytest.raises(ValueError, match="choices"):
        late_hull_gap(ds, [0, 1], [0])
    with pytest.raises(ValueError, match="choices"):
        late_hull_gap(ds, [0, 1], [0, 2])
    with pytest.raises(ValueError, match="order"):
        late_hull_gap(ds, [0, 9], [0, 1])


def test_peers_defaults_are_banditroute_replays(peers: ModuleType,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's banditroute side uses what `banditroute replay` does by default."""
    seen: dict[str, Any] = {}
    signature = inspect.signature(cli._replay)

    def fake_replay(*args: Any, **kwargs: Any) -> dict[str, Any]:
        bound = signature.bind(*args, **kwargs).arguments
        seen.update(policies=bound["policies"], cost_weights=bound["cost_weights"],
                    feature_dim=bound["feature_dim"], warm=bound["warm"])
        return {}

    monkeypatch.setattr(cli, "_replay", fake_replay)
    cli.replay_command(json_output=True)
    assert seen == {"policies": list(peers.BANDITROUTE_POLICIES), "cost_weights": None,
                    "feature_dim": peers.BANDITROUTE_FEATURE_DIM, "warm": False}


def test_peers_helpers_doctests(peers: ModuleType) -> None:
    result = doctest.testmod(peers)
    assert result.attempted >= 2 and result.failed == 0


@pytest.fixture
def generic_csv(tmp_path: Path) -> Path:
    """Generic replay CSV: 'small' answers the short prompts, only 'large' the long ones."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt", "quality:small", "quality:large", "cost:small",
                         "cost:large", "split"])
        for i in range(60):
            long = bool(rng.integers(0, 2))
            prompt = ("Prove: the theorem | in detail, step by step " * 3 if long
                      else "hi there ") + str(i)
            writer.writerow([prompt, 0 if long else 1, 1, 0.0001, 0.002,
                             "train" if i < 20 else "test"])
    return path


def test_peers_on_a_generic_file(peers: ModuleType, generic_csv: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("vowpalwabbit")
    out = tmp_path / "res" / "peers.json"
    result = peers.main(["--dataset", str(generic_csv), "--split", "test", "--seeds", "1",
                         "--vw-variants", "squarecb,epsilon", "--out", str(out), "--quiet"])
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text()) == json.loads(json.dumps(result))
    for key in ("banditroute_cold_aiq", "vw_best_cold_aiq", "zero_router_aiq", "methods",
                "best_single_model", "best_single_accuracy", "best_single_cost_per_query",
                "cost_weights", "seconds"):
        assert key in result, key
    assert result["n_prompts"] == 40 and result["seeds"] == [0]
    names = [m["name"] for m in result["methods"]]
    assert names == ["banditroute:linucb", "banditroute:thompson",
                     "banditroute:epsilon_greedy", "vw:squarecb", "vw:epsilon"]
    for method in result["methods"]:
        for key in ("aiq", "accuracy", "cost_per_query", "accuracy_vs_best_single",
                    "cost_vs_best_single", "late_hull_gap"):
            assert isinstance(method[key], float) and math.isfinite(method[key]), (
                method["name"], key)
        assert len(method["sweep"]) == len(set(result["cost_weights"]))
    assert result["banditroute_cold_aiq"] == result["methods"][0]["aiq"]
    assert result["vw_best_cold_aiq"] == max(m["aiq"] for m in result["methods"][3:])
    # the banditroute methods carry the replay report's own AIQ (2-model: APGR too)
    assert all("apgr" in m for m in result["methods"])


def test_peers_vw_side_is_deterministic(peers: ModuleType, generic_csv: Path) -> None:
    pytest.importorskip("vowpalwabbit")
    data = load_dataset(str(generic_csv), "test")
    shared = [f"shared |s {peers.vw_text(p)}" for p in data.prompts]
    args = peers.vw_args("squarecb", 3)
    first = peers.run_vw(data, shared, args, 10.0, seed=3)
    second = peers.run_vw(data, shared, args, 10.0, seed=3)
    assert first.choices.tolist() == second.choices.tolist()
    assert first.order.tolist() == np.random.default_rng(3).permutation(data.n).tolist()
    assert np.all((first.propensities > 0) & (first.propensities <= 1))
