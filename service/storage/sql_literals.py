r"""Values rendered as PostgreSQL text: SQL literals, array literals and COPY values.

The group-commit writer's hot path sends decisions as one simple-protocol query (values as SQL
literals) or through COPY (arrays and JSON pre-rendered as text): psycopg's generic adapters
build an object per value and cost more than the rendering here. Every rendering reads the same
whatever ``standard_conforming_strings`` is, and a float round-trips exactly (``repr``).

Examples
--------
>>> print(literal("it's"), text_array(["a", 'b"c']), float_array([0.5, 1]))
'it''s' {"a","b\"c"} {0.5,1.0}
"""

from __future__ import annotations

import json
import math
import operator
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from banditroute.service.storage.rows import DECISION_COLUMNS, DecisionRow

__all__ = [
    "decision_copy_values",
    "decision_literals",
    "float_array",
    "literal",
    "text_array",
    "timestamp_array",
    "uuid_array",
]


def literal(value: Any) -> str:
    r"""``value`` as a PostgreSQL literal (the column type gives its type).

    A string with a backslash uses the escape syntax (``E'...'``, backslashes doubled), any
    other string the standard one: both read the same whatever
    ``standard_conforming_strings`` is. Raises ``TypeError`` for types it does not know.

    >>> import datetime, uuid
    >>> print(literal("it's a \\ backslash"), literal("it's"), literal(None))
    E'it''s a \\ backslash' 'it''s' NULL
    >>> print(literal(float("-inf")), literal(0.1), literal(7), literal(True))
    '-Infinity' 0.1 7 TRUE
    >>> print(literal(bytes([1, 255])), literal(uuid.UUID(int=1)))
    E'\\x01ff' '00000000-0000-0000-0000-000000000001'
    >>> print(literal(datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)))
    '2026-01-02T00:00:00+00:00'
    """
    convert = _LITERALS.get(type(value))
    if convert is None:
        raise TypeError(f"no SQL literal for {type(value).__name__}")
    return convert(value)


def _str_literal(value: str) -> str:
    if "\\" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'" if "'" in value else "'" + value + "'"


def _float_literal(value: float) -> str:
    text = repr(value)
    return text if math.isfinite(value) else _NON_FINITE[text]


def _datetime_literal(value: datetime) -> str:
    if value.tzinfo is None:
        raise TypeError("timestamps must be timezone-aware")
    return f"'{value.isoformat()}'"


_NON_FINITE = {"nan": "'NaN'", "inf": "'Infinity'", "-inf": "'-Infinity'"}
_LITERALS: dict[type, Callable[[Any], str]] = {
    str: _str_literal,
    type(None): lambda _: "NULL",
    int: str,
    float: _float_literal,
    bool: lambda v: "TRUE" if v else "FALSE",
    uuid.UUID: lambda v: f"'{v}'",
    datetime: _datetime_literal,
    bytes: lambda v: "E'\\\\x" + v.hex() + "'",
}


def text_array(names: Sequence[str]) -> str:
    r"""A ``text[]`` literal, every element quoted (any character is safe).

    >>> print(text_array(["gpt-4o", 'say "hi", \\o/']))
    {"gpt-4o","say \"hi\", \\o/"}
    """
    return (
        '{"' + '","'.join([n.replace("\\", "\\\\").replace('"', '\\"') for n in names]) + '"}'
        if names
        else "{}"
    )


def float_array(numbers: Iterable[float]) -> str:
    """A ``float8[]`` literal; ``repr`` of a float round-trips exactly (as psycopg dumps it).

    >>> float_array([0.5, 1, float("inf")])
    '{0.5,1.0,inf}'
    """
    return "{" + ",".join([repr(float(v)) for v in numbers]) + "}"


def uuid_array(values: Iterable[uuid.UUID]) -> str:
    """A ``uuid[]`` literal: much cheaper than dumping a list element by element."""
    return (
        "{"
        + ",".join(str(uuid.UUID(str(v)) if not isinstance(v, uuid.UUID) else v) for v in values)
        + "}"
    )


def timestamp_array(values: Iterable[datetime]) -> str:
    """A ``timestamptz[]`` literal of timezone-aware datetimes (ISO 8601 needs no quoting)."""
    out = []
    for value in values:
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        out.append(value.isoformat())
    return "{" + ",".join(out) + "}"


#: Positions of the JSON columns in a COPY row of ``("event_id", *DECISION_COLUMNS)``.
_JSON_POSITIONS = tuple(
    1 + DECISION_COLUMNS.index(c) for c in ("numeric_context", "categorical_context", "shadow")
)
_get_decision_columns = operator.attrgetter(*DECISION_COLUMNS)
_EMPTY_OBJECT: dict[str, Any] = {}
_CANDIDATES_AT = 1 + DECISION_COLUMNS.index("candidates")
_SCORES_AT = 1 + DECISION_COLUMNS.index("scores")
_PROBABILITIES_AT = 1 + DECISION_COLUMNS.index("probabilities")
assert _SCORES_AT == _CANDIDATES_AT + 1 and _PROBABILITIES_AT == _SCORES_AT + 1
_get_array_columns = operator.attrgetter("candidates", "scores", "probabilities")


def decision_copy_values(event_id: int, row: DecisionRow) -> list[Any]:
    """One decision's COPY values, ``event_id`` first: JSON columns pre-encoded to text (an
    empty object, the common case, as a constant) and arrays as array literals, so no adapter
    object is built per value (a value of another type is left to psycopg).

    >>> import uuid, datetime
    >>> row = DecisionRow(decision_id=uuid.UUID(int=1), created_at=datetime.datetime(2026, 1, 1),
    ...     route="r", policy_name="p", policy_version=1, model="a", propensity=1.0,
    ...     candidates=["a"], scores=[0.5], probabilities=[1.0], estimated_cost_usd=0.0,
    ...     features=b"", prompt_hash=b"", numeric_context={"a": 1.5})
    >>> values = decision_copy_values(7, row)
    >>> values[0], values[1 + DECISION_COLUMNS.index("numeric_context")]
    (7, '{"a": 1.5}')
    >>> values[1 + DECISION_COLUMNS.index("categorical_context")], values[_SCORES_AT]
    ('{}', '{0.5}')
    """
    values = [event_id, *_get_decision_columns(row)]
    for j in _JSON_POSITIONS:
        value = values[j]
        if value is not None:
            values[j] = "{}" if value == _EMPTY_OBJECT else json.dumps(value)
    try:
        values[_CANDIDATES_AT] = text_array(values[_CANDIDATES_AT])
        values[_SCORES_AT] = float_array(values[_SCORES_AT])
        values[_PROBABILITIES_AT] = float_array(values[_PROBABILITIES_AT])
    except (TypeError, ValueError, AttributeError):
        values[_CANDIDATES_AT : _PROBABILITIES_AT + 1] = _get_array_columns(row)
    return values


def decision_literals(row: DecisionRow) -> str:
    """``(...)`` of one decision for a ``VALUES`` list; its id is ``nextval('event_ids')``.
    Raises ``TypeError`` for a value :func:`literal` does not know.

    Each column has its own renderer (:data:`_COLUMN_LITERALS`), so the common types cost no
    dispatch, and repeated floats (a policy's probabilities and propensities take few values)
    are not rendered again (:func:`_float_text`). The text equals what :func:`literal` gives
    for the values of :func:`decision_copy_values`.

    >>> import uuid, datetime
    >>> row = DecisionRow(decision_id=uuid.UUID(int=1),
    ...     created_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), route="r",
    ...     policy_name="p", policy_version=1, model="a", propensity=0.5, candidates=["a", "b"],
    ...     scores=[0.25, -0.0], probabilities=[0.5, 0.5], estimated_cost_usd=float("inf"),
    ...     features=b"ab", prompt_hash=b"", numeric_context={"a": 1.5}, tenant="it's")
    >>> text = decision_literals(row)
    >>> values = decision_copy_values(0, row)
    >>> text == "(nextval('event_ids')," + ",".join([literal(v) for v in values[1:]]) + ")"
    True
    """
    return "(nextval('event_ids')," + ",".join(
        [render(value) for render, value in zip(_COLUMN_LITERALS, _get_decision_columns(row))]  # noqa: B905 - equal lengths
    ) + ")"


#: ``repr`` of floats rendered recently (:func:`_float_text`); cleared when it grows large.
_FLOAT_TEXT: dict[float, str] = {}
_FLOAT_TEXT_MAX = 4096


def _float_text(value: float) -> str:
    """``repr(value)`` of a float, remembered: shortest round-trip rendering is the costliest
    part of a decision row, and probabilities and propensities repeat. Zeros are never taken
    from the memo (``0.0 == -0.0``).

    >>> _float_text(0.1), _float_text(0.1), _float_text(-0.0), _float_text(0.0)
    ('0.1', '0.1', '-0.0', '0.0')
    """
    text = _FLOAT_TEXT.get(value)
    if text is None or not value:
        text = repr(value)
        if value:
            if len(_FLOAT_TEXT) >= _FLOAT_TEXT_MAX:
                _FLOAT_TEXT.clear()
            _FLOAT_TEXT[value] = text
    return text


def _float_column(value: Any) -> str:
    if type(value) is float:
        text = _float_text(value)
        return text if text[-1].isdigit() else _NON_FINITE[text]
    return literal(value)


def _float_array_column(values: Any) -> str:
    try:
        if type(values) is list and all(type(v) is float for v in values):
            return "'{" + ",".join(map(_float_text, values)) + "}'"
        return literal(float_array(values))
    except (TypeError, ValueError, AttributeError):
        return literal(values)  # raises TypeError: left to psycopg


def _text_array_column(values: Any) -> str:
    try:
        return _str_literal(text_array(values))
    except (TypeError, ValueError, AttributeError):
        return literal(values)


def _str_column(value: Any) -> str:
    if type(value) is str:
        if "'" in value or "\\" in value:
            return _str_literal(value)
        return "'" + value + "'"
    return literal(value)


def _json_column(value: Any) -> str:
    if value is None:
        return "NULL"
    return "'{}'" if value == _EMPTY_OBJECT else _str_literal(json.dumps(value))


def _bytes_column(value: Any) -> str:
    if type(value) is bytes:
        return "E'\\\\x" + value.hex() + "'"
    return literal(value)


def _uuid_column(value: Any) -> str:
    if type(value) is uuid.UUID:
        return f"'{value}'"
    return literal(value)


_SPECIAL_COLUMNS: dict[str, Callable[[Any], str]] = {
    "decision_id": _uuid_column,
    "propensity": _float_column,
    "estimated_cost_usd": _float_column,
    "pacing_cost_weight": _float_column,
    "candidates": _text_array_column,
    "scores": _float_array_column,
    "probabilities": _float_array_column,
    "features": _bytes_column,
    "prompt_hash": _bytes_column,
    "numeric_context": _json_column,
    "categorical_context": _json_column,
    "shadow": _json_column,
}
#: The renderer of each of :data:`DECISION_COLUMNS`, in order (text columns: :func:`_str_column`).
_COLUMN_LITERALS: tuple[Callable[[Any], str], ...] = tuple(
    _SPECIAL_COLUMNS.get(c, _str_column if DecisionRow.__dataclass_fields__[c].type == "str"
                         else literal)
    for c in DECISION_COLUMNS
)
