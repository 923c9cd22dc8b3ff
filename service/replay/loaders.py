"""Loaders turning routing-benchmark files into :class:`ReplayDataset` tables.

Supported sources (``--dataset``):

``routerbench``
    The RouterBench subset (``routerbench-subset/<task>_<split>.csv``): 11 models,
    0/1 correctness (NaN counts as wrong), recorded USD cost per call. The prompt
    column is a stringified Python list, parsed with :func:`ast.literal_eval` and
    joined with blank lines. The split is taken from the file name.
``routellm-mmlu`` / ``routellm-gsm8k`` / ``routellm-mtbench``
    RouteLLM's caches for gpt-4-1106-preview vs Mixtral-8x7B. No costs are recorded:
    they come from list prices and token estimates (:mod:`banditroute.service.replay.prices`).
    MT-Bench judge scores ``s`` in 1..10 become quality ``(s - 1) / 9``; each of the
    80 questions gives two prompts (turn 1, and turns 1+2 joined). These sources have
    no official split, so ``train``/``test`` is a stable hash split of the prompt text
    (:func:`hash_split`, 50/50).
a path
    The generic format, CSV or JSONL (see :func:`load_generic`).
"""

from __future__ import annotations

import ast
import csv
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from banditroute.service.replay.dataset import ReplayDataset
from banditroute.service.replay.generic import load_generic
from banditroute.service.replay.prices import DEFAULT_OUTPUT_TOKENS, call_cost, estimate_tokens
from banditroute.service.replay.splits import SPLITS, check_split, hash_split

__all__ = [
    "DATASETS",
    "ROUTELLM_STRONG",
    "ROUTELLM_WEAK",
    "SPLITS",
    "default_data_root",
    "hash_split",
    "load_dataset",
    "load_generic",
    "load_routellm_gsm8k",
    "load_routellm_mmlu",
    "load_routellm_mtbench",
    "load_routerbench",
]

DATASETS = ("routerbench", "routellm-mmlu", "routellm-gsm8k", "routellm-mtbench")
ROUTELLM_STRONG = "gpt-4-1106-preview"
ROUTELLM_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
ROUTERBENCH_MODELS = (
    "WizardLM/WizardLM-13B-V1.2",
    "claude-instant-v1",
    "claude-v1",
    "claude-v2",
    "gpt-3.5-turbo-1106",
    "gpt-4-1106-preview",
    "meta/code-llama-instruct-34b-chat",
    "meta/llama-2-70b-chat",
    "mistralai/mistral-7b-chat",
    "mistralai/mixtral-8x7b-chat",
    "zero-one-ai/Yi-34B-Chat",
)
_ROUTERBENCH_FILE = re.compile(r"^(?P<task>.+)_(?P<split>train|test)\.csv$")


def default_data_root(start: Path | None = None) -> Path | None:
    """The data folder: ``$BANDITROUTE_DATA_ROOT``, else ``<repo>/../shared/data`` if present.

    ``start`` is any path inside the repository (default: this file).
    """
    env = os.environ.get("BANDITROUTE_DATA_ROOT")
    if env:
        return Path(env)
    here = (start or Path(__file__)).resolve()
    for parent in [here, *here.parents]:
        if (parent / "pyproject.toml").is_file():
            candidate = parent.parent / "shared" / "data"
            return candidate if candidate.is_dir() else None
    return None


def _to_float(value: str | None) -> float:
    """Parse a correctness/cost cell; empty or unparsable -> NaN."""
    if value is None:
        return math.nan
    text = value.strip()
    if text in ("True", "true"):
        return 1.0
    if text in ("False", "false"):
        return 0.0
    try:
        return float(text)
    except ValueError:
        return math.nan


def _parse_list_prompt(raw: str) -> str:
    """RouterBench stores prompts as ``str(list_of_messages)``."""
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw
    if isinstance(value, list | tuple):
        return "\n\n".join(str(part) for part in value)
    return str(value)


def _open_csv(path: Path) -> Iterable[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with path.open(newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def load_routerbench(root: Path, split: str = "all") -> ReplayDataset:
    """Load the RouterBench subset from ``root`` (the ``routerbench-subset`` folder).

    NaN correctness counts as wrong (quality 0); NaN cost becomes 0. Rows come in file
    order (files sorted by name).
    """
    check_split(split)
    files = sorted(p for p in root.glob("*.csv") if _ROUTERBENCH_FILE.match(p.name))
    if not files:
        raise FileNotFoundError(f"no <task>_<train|test>.csv files under {root}")
    prompts: list[str] = []
    tasks: list[str] = []
    ids: list[str] = []
    quality: list[list[float]] = []
    cost: list[list[float]] = []
    nan_cells = 0
    for path in files:
        match = _ROUTERBENCH_FILE.match(path.name)
        assert match is not None
        if split != "all" and match["split"] != split:
            continue
        for row in _open_csv(path):
            prompts.append(_parse_list_prompt(row["prompt"]))
            tasks.append(row.get("eval_name") or match["task"])
            ids.append(row.get("sample_id") or str(len(ids)))
            q_row = [_to_float(row.get(m)) for m in ROUTERBENCH_MODELS]
            c_row = [_to_float(row.get(f"{m}|total_cost")) for m in ROUTERBENCH_MODELS]
            nan_cells += sum(1 for q in q_row if math.isnan(q))
            quality.append([0.0 if math.isnan(q) else q for q in q_row])
            cost.append([0.0 if math.isnan(c) else c for c in c_row])
    return ReplayDataset(
        name="routerbench",
        prompts=prompts,
        models=list(ROUTERBENCH_MODELS),
        quality=np.asarray(quality, dtype=np.float64).reshape(len(prompts), -1),
        cost=np.asarray(cost, dtype=np.float64).reshape(len(prompts), -1),
        tasks=tasks,
        ids=ids,
        split=split,
        notes={
            "source": "RouterBench subset (ARC-Challenge, MBPP, Winogrande) via RouterDC",
            "nan_correctness_cells_counted_wrong": nan_cells,
            "cost": "recorded RouterBench total_cost per call (USD)",
        },
    )


def _routellm_table(
    name: str,
    prompts: Sequence[str],
    correct: Sequence[tuple[float, float]],
    output_tokens: Sequence[tuple[int, int]],
    tasks: Sequence[str] | None,
    split: str,
    output_note: str,
) -> ReplayDataset:
    check_split(split)
    keep = [i for i, p in enumerate(prompts) if split == "all" or hash_split(p) == split]
    models = [ROUTELLM_WEAK, ROUTELLM_STRONG]
    quality = np.zeros((len(keep), 2))
    for row, i in enumerate(keep):
        for j in range(2):
            q = correct[i][j]
            quality[row, j] = 0.0 if math.isnan(q) else q
    # RouteLLM's caches record no cost; RouteLLM measures cost as the share of calls sent to
    # GPT-4. So every call of a model costs the same: its mean list-price cost per call over
    # the whole file (train and test alike), and the cost axis is proportional to the call
    # share that APGR and CPT are defined on.
    per_call = [
        float(np.mean([call_cost(model, estimate_tokens(p), out[j])
                       for p, out in zip(prompts, output_tokens, strict=True)]))
        for j, model in enumerate(models)
    ]
    cost = np.tile(np.array(per_call), (len(keep), 1))
    return ReplayDataset(
        name=name,
        prompts=[prompts[i] for i in keep],
        models=models,
        quality=quality,
        cost=cost,
        tasks=None if tasks is None else [tasks[i] for i in keep],
        ids=[str(i) for i in keep],
        split=split,
        notes={
            "source": "lm-sys/RouteLLM evaluation caches",
            "cost": "per call: each model's mean list-price cost per call over the file "
                    "(list prices x estimated tokens, service.replay.prices); RouteLLM "
                    "measures cost as the share of calls to GPT-4",
            "input_tokens": "ceil(len(prompt) / 4)",
            "output_tokens": output_note,
            "split": "sha256(prompt) hash split, 50% train / 50% test",
            "strong_model": ROUTELLM_STRONG,
            "weak_model": ROUTELLM_WEAK,
        },
    )


def load_routellm_mmlu(root: Path, split: str = "all") -> ReplayDataset:
    """Load RouteLLM's 57 MMLU files from ``root`` (the ``mmlu_responses`` folder)."""
    files = sorted(root.glob("mmlu_*.csv"))
    if not files:
        raise FileNotFoundError(f"no mmlu_*.csv files under {root}")
    prompts: list[str] = []
    correct: list[tuple[float, float]] = []
    tasks: list[str] = []
    for path in files:
        subject = path.stem.removeprefix("mmlu_")
        for row in _open_csv(path):
            prompts.append(row["prompt"])
            correct.append((_to_float(row.get(ROUTELLM_WEAK)), _to_float(row.get(ROUTELLM_STRONG))))
            tasks.append(subject)
    out = DEFAULT_OUTPUT_TOKENS["routellm-mmlu"]
    return _routellm_table(
        "routellm-mmlu", prompts, correct, [(out, out)] * len(prompts), tasks, split,
        f"constant {out} per answer (answers are one letter)",
    )


def load_routellm_gsm8k(root: Path, split: str = "all") -> ReplayDataset:
    """Load RouteLLM's GSM8K cache from ``root`` (the ``gsm8k`` folder).

    Output tokens are estimated from each model's recorded response.
    """
    path = root / "gsm8k_responses.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    default = DEFAULT_OUTPUT_TOKENS["routellm-gsm8k"]
    prompts: list[str] = []
    correct: list[tuple[float, float]] = []
    out_tokens: list[tuple[int, int]] = []
    for row in _open_csv(path):
        prompts.append(row["prompt"])
        correct.append((_to_float(row.get(ROUTELLM_WEAK)), _to_float(row.get(ROUTELLM_STRONG))))
        counts = []
        for model in (ROUTELLM_WEAK, ROUTELLM_STRONG):
            response = row.get(f"{model}_response")
            counts.append(estimate_tokens(response) if response else default)
        out_tokens.append((counts[0], counts[1]))
    return _routellm_table(
        "routellm-gsm8k", prompts, correct, out_tokens, None, split,
        f"ceil(len(response) / 4) from the recorded responses (else {default})",
    )


_ASSISTANT = re.compile(
    r"### Assistant A:\n(.*?)(?=\n\n### User:|\n\n<\|The End of Assistant)", re.S
)


def load_routellm_mtbench(root: Path, split: str = "all") -> ReplayDataset:
    """Load RouteLLM's MT-Bench judgements from ``root`` (the ``mt_bench`` folder).

    One prompt per (question, turn); turn 2's prompt is both user turns joined. Quality
    is ``(score - 1) / 9``; output tokens come from the judged answer text when it can be
    found in the judge prompt, else a constant.
    """
    questions = {}
    with (root / "question.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                q = json.loads(line)
                questions[int(q["question_id"])] = q
    scores: dict[tuple[int, int], dict[str, tuple[float, int]]] = {}
    default = DEFAULT_OUTPUT_TOKENS["routellm-mtbench"]
    with (root / "judgements.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            j = json.loads(line)
            answers = _ASSISTANT.findall(j.get("user_prompt", ""))
            tokens = estimate_tokens(answers[-1]) if answers else default
            score = float(j["score"])
            quality = (score - 1.0) / 9.0 if 1.0 <= score <= 10.0 else math.nan
            key = (int(j["question_id"]), int(j["turn"]))
            scores.setdefault(key, {})[j["model"]] = (quality, tokens)
    prompts: list[str] = []
    correct: list[tuple[float, float]] = []
    out_tokens: list[tuple[int, int]] = []
    tasks: list[str] = []
    for (qid, turn), per_model in sorted(scores.items()):
        if ROUTELLM_WEAK not in per_model or ROUTELLM_STRONG not in per_model:
            continue
        q = questions[qid]
        prompts.append("\n\n".join(q["turns"][:turn]))
        tasks.append(str(q.get("category", "")))
        weak, strong = per_model[ROUTELLM_WEAK], per_model[ROUTELLM_STRONG]
        correct.append((weak[0], strong[0]))
        out_tokens.append((weak[1], strong[1]))
    return _routellm_table(
        "routellm-mtbench", prompts, correct, out_tokens, tasks, split,
        f"ceil(len(judged answer) / 4) (else {default})",
    )


#: Row fields of the generic format besides the per-model tables.
def load_dataset(dataset: str, split: str = "all", data_root: Path | None = None) -> ReplayDataset:
    """Load a named dataset (see :data:`DATASETS`) or a generic file path.

    Examples
    --------
    >>> load_dataset("nope", data_root=Path("/nonexistent"))
    Traceback (most recent call last):
    ...
    ValueError: dataset: expected one of routerbench, routellm-mmlu, routellm-gsm8k, \
routellm-mtbench or an existing .csv/.jsonl file, got 'nope'
    """
    check_split(split)
    if dataset in DATASETS:
        root = data_root or default_data_root()
        if root is None:
            raise FileNotFoundError(
                "no data root: pass --data-root or set BANDITROUTE_DATA_ROOT"
            )
        if dataset == "routerbench":
            return load_routerbench(root / "routerbench-subset", split)
        if dataset == "routellm-mmlu":
            return load_routellm_mmlu(root / "routellm" / "mmlu_responses", split)
        if dataset == "routellm-gsm8k":
            return load_routellm_gsm8k(root / "routellm" / "gsm8k", split)
        return load_routellm_mtbench(root / "routellm" / "mt_bench", split)
    path = Path(dataset)
    if path.is_file() and path.suffix.lower() in (".csv", ".jsonl", ".ndjson"):
        return load_generic(path, split)
    raise ValueError(
        f"dataset: expected one of {', '.join(DATASETS[:-1])}, {DATASETS[-1]} "
        f"or an existing .csv/.jsonl file, got {dataset!r}"
    )
