"""The decision row: one typed definition, equal to the table, readable as a mapping."""

from __future__ import annotations

import pytest

from banditroute.service.storage.models import Decision
from banditroute.service.storage.rows import DECISION_COLUMNS, DecisionRow
from banditroute.service.storage.writer import DECISION_COLUMNS as WRITER_COLUMNS
from tests.helpers import decision_row


def test_decision_columns_are_the_table_columns_in_order_without_event_id() -> None:
    table = [c.name for c in Decision.__table__.columns if c.name != "event_id"]
    assert list(DECISION_COLUMNS) == table
    assert WRITER_COLUMNS is DECISION_COLUMNS


def test_decision_row_from_mapping_fills_defaults_and_ignores_other_keys() -> None:
    given = {k: v for k, v in decision_row().items() if k not in ("tenant", "shadow", "logged")}
    row = DecisionRow.from_mapping({**given, "not_a_column": 1})
    assert (row.tenant, row.shadow, row.logged) == ("", None, True)
    assert DecisionRow.from_mapping(row) is row


def test_decision_row_missing_a_required_column_is_a_value_error_naming_it() -> None:
    given = {k: v for k, v in decision_row().items() if k != "model"}
    with pytest.raises(ValueError, match="model"):
        DecisionRow.from_mapping(given)


def test_decision_row_reads_as_the_mapping_of_its_columns() -> None:
    given = decision_row(request_id="r1", bucket=3)
    row = DecisionRow.from_mapping(given)
    assert {**row} == given
    assert row["request_id"] == "r1" and row.get("bucket") == 3
    assert "from_mapping" not in row and row.get("keys") is None
    with pytest.raises(KeyError):
        row["nope"]
