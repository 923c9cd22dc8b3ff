"""Replay loaders parse tiny fixture files written here (no dependency on shared data)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from banditroute.service.replay.dataset import ReplayDataset
from banditroute.service.replay.loaders import (
    ROUTELLM_STRONG,
    ROUTELLM_WEAK,
    ROUTERBENCH_MODELS,
    default_data_root,
    hash_split,
    load_dataset,
    load_generic,
    load_routellm_gsm8k,
    load_routellm_mmlu,
    load_routellm_mtbench,
    load_routerbench,
)
from banditroute.service.replay.prices import call_cost, estimate_tokens


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _routerbench_row(sample: str, prompt: object, correct: list[str], cost: float) -> list[object]:
    return [0, sample, repr(prompt), sample.split(".")[0], *correct,
            *["resp"] * len(ROUTERBENCH_MODELS), *[cost] * len(ROUTERBENCH_MODELS), "x"]


@pytest.fixture
def routerbench_dir(tmp_path: Path) -> Path:
    root = tmp_path / "routerbench-subset"
    root.mkdir()
    header = ["", "sample_id", "prompt", "eval_name", *ROUTERBENCH_MODELS,
              *[f"{m}|model_response" for m in ROUTERBENCH_MODELS],
              *[f"{m}|total_cost" for m in ROUTERBENCH_MODELS], "oracle_model_to_route_to"]
    ones = ["1.0"] * len(ROUTERBENCH_MODELS)
    with_nan = ["nan", *["0.0"] * (len(ROUTERBENCH_MODELS) - 1)]
    _write_csv(root / "arc_challenge_train.csv", header, [
        _routerbench_row("arc.1", ["Question: 'why'?", "second part"], ones, 0.001),
        _routerbench_row("arc.2", ["only"], with_nan, 0.002),
    ])
    _write_csv(root / "mbpp_test.csv", header, [
        _routerbench_row("mbpp.1", ['Write a "python" function.'], ones, 0.003),
    ])
    (root / "README.md").write_text("not data")
    return root


def test_routerbench_parses_list_prompts_nan_and_splits(routerbench_dir: Path) -> None:
    train = load_routerbench(routerbench_dir, "train")
    assert train.n == 2
    assert train.prompts[0] == "Question: 'why'?\n\nsecond part"
    assert train.tasks == ["arc", "arc"]
    assert train.ids == ["arc.1", "arc.2"]
    assert train.quality[1].tolist() == [0.0] * len(ROUTERBENCH_MODELS)  # NaN counts as wrong
    assert train.notes["nan_correctness_cells_counted_wrong"] == 1
    assert train.cost[1, 0] == pytest.approx(0.002)
    test = load_routerbench(routerbench_dir, "test")
    assert test.prompts == ['Write a "python" function.']
    assert load_routerbench(routerbench_dir, "all").n == 3


def test_routerbench_rejects_unknown_split(routerbench_dir: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        load_routerbench(routerbench_dir, "valid")


def test_routellm_mmlu_prices_every_call_of_a_model_at_its_mean_cost(tmp_path: Path) -> None:
    header = ["prompt", ROUTELLM_WEAK, ROUTELLM_STRONG]
    _write_csv(tmp_path / "mmlu_anatomy.csv", header, [["a" * 400, "True", "False"]])
    _write_csv(tmp_path / "mmlu_virology.csv", header, [["b" * 8, "False", "True"]])
    ds = load_routellm_mmlu(tmp_path, "all")
    assert ds.models == [ROUTELLM_WEAK, ROUTELLM_STRONG]
    assert ds.tasks == ["anatomy", "virology"]
    assert ds.quality.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    # 400 chars -> 100 input tokens, 8 chars -> 2; 8 output tokens (MMLU constant). RouteLLM
    # counts calls, so each call of a model costs the model's mean over the file.
    strong = ((100 * 10.0 + 8 * 30.0) + (2 * 10.0 + 8 * 30.0)) / 2 / 1e6
    weak = ((100 * 0.6 + 8 * 0.6) + (2 * 0.6 + 8 * 0.6)) / 2 / 1e6
    assert ds.cost[:, 1].tolist() == pytest.approx([strong, strong])
    assert ds.cost[:, 0].tolist() == pytest.approx([weak, weak])
    assert ds.notes["strong_model"] == ROUTELLM_STRONG


def test_routellm_split_is_a_stable_hash_partition(tmp_path: Path) -> None:
    header = ["prompt", ROUTELLM_WEAK, ROUTELLM_STRONG]
    prompts = [f"question {i}" for i in range(40)]
    _write_csv(tmp_path / "mmlu_x.csv", header, [[p, "True", "True"] for p in prompts])
    train = load_routellm_mmlu(tmp_path, "train")
    test = load_routellm_mmlu(tmp_path, "test")
    assert train.n + test.n == 40
    assert not set(train.prompts) & set(test.prompts)
    assert all(hash_split(p) == "train" for p in train.prompts)
    assert 5 < train.n < 35


def test_routellm_gsm8k_output_tokens_come_from_responses(tmp_path: Path) -> None:
    root = tmp_path / "gsm8k"
    root.mkdir()
    _write_csv(root / "gsm8k_responses.csv",
               ["prompt", ROUTELLM_WEAK, ROUTELLM_STRONG, f"{ROUTELLM_WEAK}_response",
                f"{ROUTELLM_STRONG}_response"],
               [["q" * 40, "True", "True", "w" * 40, "s" * 400]])
    ds = load_routellm_gsm8k(root, "all")
    assert ds.cost[0, 1] == pytest.approx(call_cost(ROUTELLM_STRONG, 10, 100))
    assert ds.cost[0, 0] == pytest.approx(call_cost(ROUTELLM_WEAK, 10, 10))


def test_routellm_mtbench_maps_scores_to_quality_and_joins_turns(tmp_path: Path) -> None:
    root = tmp_path / "mt_bench"
    root.mkdir()
    (root / "question.jsonl").write_text(json.dumps(
        {"question_id": 81, "category": "writing", "turns": ["First ask.", "Then more."]}) + "\n")
    lines = []
    for model, turn, score in [(ROUTELLM_WEAK, 1, 1), (ROUTELLM_STRONG, 1, 10),
                               (ROUTELLM_WEAK, 2, 4), (ROUTELLM_STRONG, 2, 7)]:
        prompt = "### User:\nFirst ask.\n\n### Assistant A:\n" + "x" * 80 + \
            "\n\n<|The End of Assistant A's Conversation with User|>"
        lines.append(json.dumps({"question_id": 81, "model": model, "turn": turn,
                                 "score": score, "user_prompt": prompt}))
    (root / "judgements.jsonl").write_text("\n".join(lines) + "\n")
    ds = load_routellm_mtbench(root, "all")
    assert ds.prompts == ["First ask.", "First ask.\n\nThen more."]
    assert ds.quality.tolist() == [[0.0, 1.0], [pytest.approx(3 / 9), pytest.approx(6 / 9)]]
    assert ds.tasks == ["writing", "writing"]
    first = call_cost(ROUTELLM_STRONG, estimate_tokens("First ask."), 20)
    second = call_cost(ROUTELLM_STRONG, estimate_tokens("First ask.\n\nThen more."), 20)
    assert ds.cost[:, 1].tolist() == pytest.approx([(first + second) / 2] * 2)


def test_generic_csv_and_jsonl_load_the_same_table(tmp_path: Path) -> None:
    csv_path = tmp_path / "traffic.csv"
    _write_csv(csv_path, ["prompt", "quality:small", "quality:large", "cost:small", "cost:large",
                          "latency:large", "task", "split"],
               [["hi", "0.5", "1", "0.001", "0.01", "2.5", "chat", "train"],
                ["code?", "0", "0.9", "0.002", "0.02", "", "code", "test"]])
    jsonl_path = tmp_path / "traffic.jsonl"
    jsonl_path.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "hi", "quality": {"small": 0.5, "large": 1}, "cost": {"small": 0.001,
         "large": 0.01}, "latency": {"large": 2.5}, "task": "chat", "split": "train"},
        {"prompt": "code?", "quality": {"small": 0, "large": 0.9}, "cost": {"small": 0.002,
         "large": 0.02}, "task": "code", "split": "test"},
    ]) + "\n")
    for path in (csv_path, jsonl_path):
        ds = load_generic(path, "all")
        assert ds.models == ["small", "large"]
        assert ds.quality.tolist() == [[0.5, 1.0], [0.0, 0.9]]
        assert ds.cost.tolist() == [[0.001, 0.01], [0.002, 0.02]]
        assert ds.latency is not None and ds.latency[0, 1] == 2.5
        assert ds.tasks == ["chat", "code"]
        assert load_generic(path, "test").prompts == ["code?"]



def test_generic_jsonl_takes_the_csv_spelling_as_flat_keys(tmp_path: Path) -> None:
    """A JSONL row may spell cells as the CSV does ("quality:<model>"); same table."""
    nested = tmp_path / "nested.jsonl"
    nested.write_text(json.dumps({"prompt": "hi", "quality": {"a/b": 1, "c": 0.25},
                                  "cost": {"a/b": 0.01, "c": 0.001}, "split": "test"}) + "\n")
    flat = tmp_path / "flat.jsonl"
    flat.write_text(json.dumps({"prompt": "hi", "quality:a/b": 1, "quality:c": 0.25,
                                "cost:a/b": 0.01, "cost:c": 0.001, "split": "test"}) + "\n")
    one, two = load_generic(nested, "test"), load_generic(flat, "test")
    assert two.models == one.models == ["a/b", "c"]
    assert two.quality.tolist() == one.quality.tolist() == [[1.0, 0.25]]
    assert two.cost.tolist() == one.cost.tolist() == [[0.01, 0.001]]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "p", "quality:m": "Yes", "cost:m": 0}, "column 'quality:m': expected"),
        ({"prompt": "p", "score:m": 1, "quality:m": 1, "cost:m": 0}, "column 'score:m'"),
        ({"prompt": "p", "quality": {"m": 1}, "quality:m": 1, "cost:m": 0}, "given twice"),
        ({"prompt": "p", "qual": {"m": 1}, "cost": {"m": 0}}, "no model has a quality"),
    ],
    ids=["flat-yes", "unknown-kind", "twice", "no-quality-at-all"],
)
def test_generic_jsonl_flat_keys_are_checked_like_csv_columns(
    tmp_path: Path, row: dict[str, object], message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=re.escape(message)):
        load_generic(path, "all")

def test_generic_rejects_quality_outside_unit_interval(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "p", "quality": {"m": 3}, "cost": {"m": 0}}) + "\n")
    with pytest.raises(ValueError, match="quality"):
        load_generic(path)


_GOOD_CSV_ROW = ["hi", "0.5", "1", "0.001", "0.01", "train"]
_CSV_HEADER = ["prompt", "quality:small", "quality:large", "cost:small", "cost:large", "split"]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("quality:small", "Yes", "1/0"),
        ("quality:large", "No", "1/0"),
        ("quality:small", "1.5", "out of range"),
        ("cost:small", "$0.01", "$0.01"),
        ("cost:large", "-1", "out of range"),
        ("cost:small", "", "missing cost"),
        ("quality:large", "nan", "[0, 1]"),
        ("split", "Test", "lower case"),
        ("prompt", "", "prompt"),
    ],
    ids=["quality-yes", "quality-no", "quality-1.5", "cost-dollar", "cost-negative",
         "cost-missing", "quality-nan", "split-Test", "prompt-empty"],
)
def test_generic_csv_refuses_what_it_cannot_parse_naming_file_line_column(
    tmp_path: Path, column: str, value: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    bad = list(_GOOD_CSV_ROW)
    bad[_CSV_HEADER.index(column)] = value
    _write_csv(path, _CSV_HEADER, [_GOOD_CSV_ROW, _GOOD_CSV_ROW, bad])
    with pytest.raises(ValueError) as err:
        load_generic(path, "all")
    text = str(err.value)
    assert text.startswith(f"{path}:4: column {column!r}"), text  # line 1 is the header
    assert message in text


@pytest.mark.parametrize(
    ("changed", "column", "message"),
    [
        ({"quality": {"m": "Yes"}}, "quality.m", "1/0"),
        ({"cost": {"m": "$0.01"}}, "cost.m", "$0.01"),
        ({"quality": {"m": 3}}, "quality.m", "out of range"),
        ({"split": "Test"}, "split", "lower case"),
        ({"cost": {}}, "cost:m", "missing cost"),
    ],
    ids=["quality-yes", "cost-dollar", "quality-3", "split-Test", "no-cost"],
)
def test_generic_jsonl_refuses_what_it_cannot_parse_naming_file_line_column(
    tmp_path: Path, changed: dict[str, object], column: str, message: str
) -> None:
    good = {"prompt": "p", "quality": {"m": 1}, "cost": {"m": 0.01}, "split": "train"}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, **changed}) + "\n")
    with pytest.raises(ValueError) as err:
        load_generic(path, "all")
    assert str(err.value).startswith(f"{path}:3: column {column!r}"), str(err.value)
    assert message in str(err.value)


def test_generic_reads_boolean_correctness_as_one_and_zero(tmp_path: Path) -> None:
    """RouteLLM's files write correctness as True/False; JSON has true/false. Both are read as
    1/0 for quality (never for cost), while yes/no stays refused (tests above)."""
    csv_path = tmp_path / "bools.csv"
    _write_csv(csv_path, _CSV_HEADER, [["a", "True", "false", "0.001", "0.01", "train"],
                                       ["b", " FALSE ", "TRUE", "0.001", "0.01", "test"]])
    data = load_generic(csv_path, "all")
    assert data.quality.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    jsonl_path = tmp_path / "bools.jsonl"
    jsonl_path.write_text(json.dumps(
        {"prompt": "p", "quality": {"m": True, "n": False}, "cost": {"m": 0.1, "n": 0.0}}) + "\n")
    assert load_generic(jsonl_path, "all").quality.tolist() == [[1.0, 0.0]]
    jsonl_path.write_text(json.dumps(
        {"prompt": "p", "quality": {"m": 1}, "cost": {"m": True}}) + "\n")
    with pytest.raises(ValueError, match=r"column 'cost.m': expected a number of US dollars"):
        load_generic(jsonl_path, "all")


def test_generic_model_with_only_cost_columns_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "cost_only.csv"
    _write_csv(path, ["prompt", "quality:a", "cost:a", "cost:b"], [["hi", "1", "0.1", "0.2"]])
    with pytest.raises(ValueError, match=r"cost_only.csv:2: column 'cost:b': .* no quality"):
        load_generic(path, "all")


def test_generic_split_keeps_every_row_in_exactly_one_part(tmp_path: Path) -> None:
    path = tmp_path / "split.csv"
    rows = [[f"p{i}", "1", "0", "0.1", "0.2", s] for i, s in enumerate(["train", "test", ""])]
    _write_csv(path, _CSV_HEADER, rows)
    parts = [load_generic(path, s).prompts for s in ("train", "test")]
    assert sorted(parts[0] + parts[1]) == ["p0", "p1", "p2"]


def test_generic_reports_the_line_of_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "p", "quality": {"m": 1}}\n{oops\n')
    with pytest.raises(ValueError, match=":2:"):
        load_generic(path)


def test_load_dataset_resolves_names_and_paths(routerbench_dir: Path, tmp_path: Path) -> None:
    assert load_dataset("routerbench", "test", routerbench_dir.parent).n == 1
    with pytest.raises(ValueError, match="dataset"):
        load_dataset("no-such-dataset", "all", tmp_path)


def test_default_data_root_prefers_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("BANDITROUTE_DATA_ROOT", str(tmp_path))
    assert default_data_root() == tmp_path


def test_dataset_validates_shapes_and_ranges() -> None:
    with pytest.raises(ValueError, match="quality"):
        ReplayDataset("x", ["p"], ["m"], np.array([[1.5]]), np.array([[0.0]]))
    with pytest.raises(ValueError, match="cost"):
        ReplayDataset("x", ["p"], ["m"], np.array([[1.0]]), np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="models"):
        ReplayDataset("x", ["p"], ["m", "m"], np.ones((1, 2)), np.ones((1, 2)))


def test_real_routerbench_subset_matches_its_readme() -> None:
    root = default_data_root()
    if root is None or not (root / "routerbench-subset").is_dir():
        pytest.skip("shared routing data not present")
    ds = load_dataset("routerbench", "all", root)
    assert ds.n == 3178
    gpt4 = ds.models.index("gpt-4-1106-preview")
    assert ds.mean_quality()[gpt4] == pytest.approx(0.880, abs=0.005)
    from banditroute.learners.metrics import oracle_point

    acc, cost = oracle_point(ds.quality, ds.cost)
    assert acc == pytest.approx(0.975, abs=0.001)
    assert cost == pytest.approx(0.00021, abs=0.00001)
