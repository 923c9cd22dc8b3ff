"""The policy defaults the code ships are the ones benchmarks/defaults.py selects on validation."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from banditroute.learners import LinearThompson, LinUCB

ROOT = Path(__file__).resolve().parents[1]


def _defaults_module() -> Any:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        path = ROOT / "benchmarks" / "defaults.py"
        spec = importlib.util.spec_from_file_location("bench_defaults", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def _shipped(cls: type, dim: int = 64) -> dict[str, float]:
    params = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
    out = {k: params[k] for k in ("alpha", "v", "explore") if k in params}
    if params.get("explore_decay") is not None:  # a decaying exploration floor
        out["explore_decay"] = params["explore_decay"]
        out["explore_min"] = params["explore_min"]
    policy = cls(["a"], dim=dim)
    ridge = policy._ridge.ridge  # per-coordinate prior precision, intercept last
    out["context_ridge"] = float(ridge[0]) / dim
    assert float(ridge[-1]) == params["ridge"] == 1.0
    return out


def test_shipped_defaults_are_the_validation_selected_ones() -> None:
    chosen = _defaults_module().DEFAULTS
    assert _shipped(LinUCB) == chosen["linucb"]
    assert _shipped(LinearThompson) == chosen["thompson"]


def test_every_default_is_a_grid_candidate() -> None:
    module = _defaults_module()
    for algorithm, params in module.DEFAULTS.items():
        assert params in module.GRID[algorithm]


def test_replay_operating_point_is_the_validation_selected_one() -> None:
    from banditroute.service.replay.cli import DEFAULT_COST_FRACTIONS

    assert DEFAULT_COST_FRACTIONS[0] == _defaults_module().OPERATING_FRACTION


def test_the_committed_selection_runs_chose_what_the_code_ships() -> None:
    """``benchmarks/results/defaults*.json`` (the procedure's last runs) agree with the code."""
    import json

    module = _defaults_module()
    results = ROOT / "benchmarks" / "results"
    grid = json.loads((results / "defaults.json").read_text())
    for algorithm, shipped in module.DEFAULTS.items():
        assert grid["winners"][algorithm]["params"] == shipped
    operating = json.loads((results / "defaults_operating.json").read_text())
    assert operating["operating_fraction"] == module.OPERATING_FRACTION


def test_a_default_changes_only_for_a_gain_beyond_the_tie_band() -> None:
    module = _defaults_module()
    grid = [{"alpha": 0.5}, {"alpha": 0.35}, {"alpha": 1.0}]
    shipped = {"alpha": 0.35}
    band = module.TIE_BAND
    assert module.choose_winner(grid, [0.001 + band, 0.001, 0.0], shipped)[0] == shipped
    assert module.choose_winner(grid, [0.002 + band, 0.001, 0.0], shipped)[0] == grid[0]
    # a grid without the shipped entry: the best mean wins
    assert module.choose_winner(grid[:1] + grid[2:], [0.0, 0.1], shipped)[0] == grid[2]


def test_the_group_prior_is_the_one_task_context_py_chose_on_validation() -> None:
    """``python benchmarks/task_context.py --grid 4,16,64 --out ...`` wrote this file."""
    import json

    chosen = json.loads(
        (ROOT / "benchmarks" / "results" / "task_context_validation.json").read_text()
    )["chosen_group_ridge"]
    for cls in (LinUCB, LinearThompson):
        assert inspect.signature(cls.__init__).parameters["group_ridge"].default == chosen
