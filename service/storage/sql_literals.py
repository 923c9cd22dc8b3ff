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
    Raises ``TypeError`` for a value :func:`literal` does not know."""
    values = decision_copy_values(0, row)
    return "(nextval('event_ids')," + ",".join([literal(v) for v in values[1:]]) + ")"
