"""The generic replay format: a CSV or JSONL file of prompts with per-model quality and cost.

Columns (CSV) or keys (JSONL): ``prompt``, ``quality:<model>`` and ``cost:<model>`` for every
model, optional ``latency:<model>`` (seconds), ``task``, ``id`` and ``split``
(``train``/``test``). Anything that cannot be parsed is refused with the file, the line and
the column (docs/replay.md, "Generic format"); nothing is silently dropped.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np

from banditroute.service.replay.dataset import ReplayDataset, jsonl_lines
from banditroute.service.replay.splits import check_split, hash_split

__all__ = ["load_generic"]


_GENERIC_FIELDS = ("prompt", "task", "id", "split")
_GENERIC_TABLES = ("quality", "cost", "latency")
#: Correctness written as a boolean, accepted for quality only (any case): right 1, wrong 0.
_BOOLEANS = {"true": 1.0, "false": 0.0}


class _GenericRow:
    """One parsed row of a generic file; ``where`` locates it (``path:line``)."""

    __slots__ = ("cells", "fields", "line")

    def __init__(self, line: int) -> None:
        self.line = line
        self.fields: dict[str, str] = {}
        #: kind -> model -> value
        self.cells: dict[str, dict[str, float]] = {kind: {} for kind in _GENERIC_TABLES}


def _generic_error(path: Path, line: int, column: str, problem: str) -> ValueError:
    return ValueError(f"{path}:{line}: column {column!r}: {problem}")


def _generic_number(path: Path, line: int, column: str, kind: str, raw: object) -> float:
    """A quality, cost or latency cell: a finite number in the kind's range, else an error."""
    hint = {
        "quality": "a number in [0, 1], or true/false for right/wrong (write 1/0, not yes/no)",
        "cost": "a number of US dollars >= 0, without a currency sign (0.01, not $0.01)",
        "latency": "a number of seconds >= 0, without a unit",
    }[kind]
    value: float | None = None
    if kind == "quality" and isinstance(raw, bool):  # JSON true/false: right or wrong
        value = float(raw)
    elif kind == "quality" and isinstance(raw, str) and raw.strip().lower() in _BOOLEANS:
        value = _BOOLEANS[raw.strip().lower()]  # "True"/"False", as RouteLLM's files write it
    elif isinstance(raw, str):
        text = raw.strip()
        if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
            value = float(text)
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    if value is None or not math.isfinite(value):
        raise _generic_error(path, line, column, f"expected {hint}, got {raw!r}")
    if value < 0 or (kind == "quality" and value > 1):
        raise _generic_error(path, line, column, f"{value:g} is out of range: expected {hint}")
    return value


def _generic_field(path: Path, line: int, name: str, raw: object) -> str:
    if raw is None:
        return ""
    if name in ("id", "task") and isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    if not isinstance(raw, str):
        raise _generic_error(path, line, name, f"expected a string, got {raw!r}")
    if name == "split" and raw not in ("", "train", "test"):
        raise _generic_error(
            path, line, name, f"expected 'train' or 'test' (lower case) or empty, got {raw!r}"
        )
    return raw


def _cell_name(path: Path, line: int, name: str) -> tuple[str, str]:
    """``(kind, model)`` of a ``<kind>:<model>`` column or key, or an error naming it."""
    kind, _, model = name.partition(":")
    if kind not in _GENERIC_TABLES or not model:
        raise _generic_error(
            path, line, name, "expected quality:<model>, cost:<model> or latency:<model>"
        )
    return kind, model


def _generic_jsonl(path: Path) -> list[_GenericRow]:
    rows: list[_GenericRow] = []
    for number, text in jsonl_lines(path):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object")
        row = _GenericRow(number)
        # (kind, model, key as the error names it, value): nested {"quality": {model: q}}
        # and the CSV's flat spelling "quality:<model>" alike
        cells: list[tuple[str, str, str, object]] = []
        for key, raw in obj.items():
            if key in _GENERIC_TABLES:
                if raw is None:
                    continue
                if not isinstance(raw, dict):
                    raise _generic_error(
                        path, number, key, f"expected an object {{model: number}}, got {raw!r}"
                    )
                cells.extend((key, model, f"{key}.{model}", v) for model, v in raw.items())
            elif key in _GENERIC_FIELDS:
                row.fields[key] = _generic_field(path, number, key, raw)
            elif ":" in key:
                kind, model = _cell_name(path, number, key)  # checked even when null
                if raw is not None:
                    cells.append((kind, model, key, raw))
        for kind, model, column, raw in cells:
            if model in row.cells[kind]:
                raise _generic_error(path, number, column,
                                     f"{kind} of model {model!r} is given twice")
            row.cells[kind][model] = _generic_number(path, number, column, kind, raw)
        rows.append(row)
    return rows


def _generic_csv(path: Path) -> list[_GenericRow]:
    csv.field_size_limit(1 << 30)
    rows: list[_GenericRow] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return rows
        columns: list[tuple[str, str, str]] = []  # (kind or field or "", model, column)
        for name in header:
            if ":" in name:
                columns.append((*_cell_name(path, 1, name), name))
            else:
                columns.append((name if name in _GENERIC_FIELDS else "", "", name))
        line = reader.line_num + 1
        for values in reader:
            if values:
                if len(values) > len(header):
                    raise ValueError(
                        f"{path}:{line}: {len(values)} cells but {len(header)} columns"
                    )
                row = _GenericRow(line)
                for (kind, model, name), raw in zip(columns, values, strict=False):
                    if kind in _GENERIC_TABLES:
                        if raw.strip():
                            row.cells[kind][model] = _generic_number(path, line, name, kind, raw)
                    elif kind:
                        row.fields[kind] = _generic_field(path, line, name, raw)
                rows.append(row)
            line = reader.line_num + 1
    return rows


def load_generic(path: Path, split: str = "all") -> ReplayDataset:
    """Load the generic replay format from a ``.csv`` or ``.jsonl`` file.

    CSV: columns ``prompt``, ``quality:<model>`` and ``cost:<model>`` for every model,
    optional ``latency:<model>`` (seconds), ``task``, ``id`` and ``split``. JSONL: one object
    per line, ``{"prompt": ..., "quality": {model: q}, "cost": {model: usd},
    "latency": {...}, "task": ..., "id": ..., "split": ...}``, or with the CSV's flat keys
    (``"quality:<model>": q``).

    Nothing is guessed and nothing is dropped: every row needs a prompt and, for every model,
    a quality (a plain number in [0, 1]) and a cost (a plain number of USD >= 0); a latency
    (seconds >= 0) is optional and 0 where missing. ``split`` is ``train``, ``test`` (lower
    case) or empty; without one the split is :func:`hash_split` of the prompt. Anything else
    (``Yes``, ``$0.01``, ``Test``, a model with cost but no quality) raises ``ValueError``
    naming the file, the line and the column. Other CSV columns and JSON keys are ignored.
    """
    check_split(split)
    rows = (
        _generic_jsonl(path)
        if path.suffix.lower() in (".jsonl", ".ndjson")
        else (_generic_csv(path))
    )
    if not rows:
        raise ValueError(f"{path}: no rows")
    models: list[str] = []
    for row in rows:
        for model in row.cells["quality"]:
            if model not in models:
                models.append(model)
    if not models:
        raise ValueError(
            f"{path}: no model has a quality: give quality:<model> and cost:<model> columns "
            "(CSV) or keys (JSONL: flat, or nested as {\"quality\": {model: q}})")
    for row in rows:
        for kind in ("cost", "latency"):
            for model in row.cells[kind]:
                if model not in models:
                    raise _generic_error(
                        path,
                        row.line,
                        f"{kind}:{model}",
                        f"model {model!r} has a {kind} but no quality anywhere in the file",
                    )
    for row in rows:
        if not row.fields.get("prompt"):
            raise _generic_error(path, row.line, "prompt", "every row needs a non-empty prompt")
        for kind in ("quality", "cost"):
            for model in models:
                if model not in row.cells[kind]:
                    raise _generic_error(
                        path,
                        row.line,
                        f"{kind}:{model}",
                        f"missing {kind} of model {model!r} (every row gives one per model)",
                    )
    kept = [
        row
        for row in rows
        if split == "all" or (row.fields.get("split") or hash_split(row.fields["prompt"])) == split
    ]
    n, k = len(kept), len(models)
    tables = {kind: np.zeros((n, k)) for kind in _GENERIC_TABLES}
    for i, row in enumerate(kept):
        for kind, table in tables.items():
            for j, model in enumerate(models):
                table[i, j] = row.cells[kind].get(model, 0.0)
    has_latency = any(row.cells["latency"] for row in rows)
    return ReplayDataset(
        name=path.stem,
        prompts=[row.fields["prompt"] for row in kept],
        models=models,
        quality=tables["quality"],
        cost=tables["cost"],
        latency=tables["latency"] if has_latency else None,
        tasks=[r.fields["task"] for r in kept] if all(r.fields.get("task") for r in kept) else None,
        ids=[r.fields.get("id") or str(i) for i, r in enumerate(kept)],
        split=split,
        notes={"source": str(path), "format": "banditroute generic replay format"},
    )
