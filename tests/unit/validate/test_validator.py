"""BatchValidator: GX runs a spec's rules per batch and names every failing row's rules."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kafka_ingest.specs import Rule, TopicSpec
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.validate.validator import KEY_UNIQUE_RULE, BatchRuleError, BatchValidator

ORDER: dict[str, Any] = {
    "order_number": "ORD-1",
    "user_id": "u1",
    "status": "SHIPPED",
    "items": json.dumps([{"product_id": "P", "quantity": 3, "unit_price": "1.10"}]),
    "total_price": "3.30",
    "currency": "EUR",
    "created_at": "2026-03-01T12:00:00Z",
    "coupon_code": None,
}


def orders_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    schema = pa.schema([(column, pa.string()) for column in ORDERS.all_columns])
    frame = pa.Table.from_pylist(rows, schema=schema).to_pandas()
    frame["_first_occurrence"] = True
    return frame


def _prepare_toy(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(_qty_positive=pd.to_numeric(frame["qty"], errors="coerce").gt(0).to_numpy())


def toy_spec(**changes: Any) -> TopicSpec:
    """A minimal spec: one derived rule and one native GX rule on a raw column."""
    fields: dict[str, Any] = {
        "dataset": "toy",
        "topic": "toy.events",
        "schema_file": "toy.avsc",
        "key_field": "id",
        "columns": ("id", "qty"),
        "rules": (
            Rule(
                "qty_positive",
                "expect_column_values_to_be_in_set",
                {"column": "_qty_positive", "value_set": [True]},
            ),
            Rule("id_required", "expect_column_values_to_not_be_null", {"column": "id"}),
        ),
        "prepare": _prepare_toy,
        "to_table": lambda frame: pa.table({}),
        "event_type": "Toy",
        "unique_key": False,
    }
    return TopicSpec(**{**fields, **changes})


@pytest.fixture(scope="module")
def orders_validator() -> BatchValidator:
    return BatchValidator(ORDERS)


def test_every_failing_row_of_a_large_batch_is_identified(orders_validator: BatchValidator) -> None:
    rows = [dict(ORDER) for _ in range(20_000)]
    broken = {  # in the spec's declaration order
        "total_matches_items": range(5, 20_000, 89),
        "currency_allowed": range(3, 20_000, 97),
        "created_at_with_offset": range(11, 20_000, 83),
    }
    for position in broken["currency_allowed"]:
        rows[position]["currency"] = "usd"
    for position in broken["total_matches_items"]:
        rows[position]["total_price"] = "3.31"
    for position in broken["created_at_with_offset"]:
        rows[position]["created_at"] = "2026-03-01T12:00:00"
    outcome = orders_validator.validate(ORDERS.prepare(orders_frame(rows)))
    expected: dict[int, list[str]] = {}
    for rule, positions in broken.items():
        for position in positions:
            expected.setdefault(position, []).append(rule)
    assert outcome.failed_rules == {p: tuple(r) for p, r in expected.items()}
    assert np.flatnonzero(~outcome.valid).tolist() == sorted(expected)


def test_a_row_failing_several_rules_lists_them_in_declaration_order(
    orders_validator: BatchValidator,
) -> None:
    row = {**ORDER, "created_at": "yesterday", "order_number": "x", "status": None}
    outcome = orders_validator.validate(ORDERS.prepare(orders_frame([ORDER, row])))
    assert outcome.failed_rules == {1: ("order_number_format", "status_allowed", "created_at_with_offset")}
    assert outcome.valid.tolist() == [True, False]


def test_failures_are_reported_by_row_position_not_index_label(orders_validator: BatchValidator) -> None:
    frame = orders_frame([ORDER, {**ORDER, "currency": "GBP"}, ORDER]).set_axis([10, 20, 30])
    outcome = orders_validator.validate(ORDERS.prepare(frame))
    assert outcome.failed_rules == {1: ("currency_allowed",)}


def test_rows_that_are_not_first_occurrences_fail_key_unique_in_day(orders_validator: BatchValidator) -> None:
    frame = orders_frame([ORDER, ORDER, ORDER])
    frame["_first_occurrence"] = [True, False, False]
    outcome = orders_validator.validate(ORDERS.prepare(frame))
    assert outcome.failed_rules == {1: (KEY_UNIQUE_RULE,), 2: (KEY_UNIQUE_RULE,)}


def test_a_missing_extract_column_fails_the_batch(orders_validator: BatchValidator) -> None:
    frame = orders_frame([ORDER]).drop(columns=["currency"])
    with pytest.raises(BatchRuleError, match="columns_present") as raised:
        orders_validator.validate(ORDERS.prepare(frame))
    assert raised.value.rules == ("columns_present",)


def test_a_missing_first_occurrence_column_fails_the_batch(orders_validator: BatchValidator) -> None:
    frame = orders_frame([ORDER]).drop(columns=["_first_occurrence"])
    with pytest.raises(BatchRuleError, match="columns_present"):
        orders_validator.validate(ORDERS.prepare(frame))


def test_a_null_in_a_rule_flag_column_fails_the_batch(orders_validator: BatchValidator) -> None:
    frame = orders_frame([ORDER, ORDER])
    frame["_first_occurrence"] = pd.array([True, None], dtype="boolean")
    with pytest.raises(BatchRuleError, match=KEY_UNIQUE_RULE):
        orders_validator.validate(ORDERS.prepare(frame))


def test_batch_rule_errors_never_carry_values(orders_validator: BatchValidator) -> None:
    frame = orders_frame([{**ORDER, "user_id": "secret-user"}]).drop(columns=["status"])
    with pytest.raises(BatchRuleError) as raised:
        orders_validator.validate(ORDERS.prepare(frame))
    assert "secret-user" not in str(raised.value)


def test_a_spec_batch_rule_fails_the_batch() -> None:
    spec = toy_spec(
        batch_rules=(Rule("enough_rows", "expect_table_row_count_to_be_between", {"min_value": 2}),)
    )
    frame = pd.DataFrame({"id": ["a"], "qty": ["1"]})
    with pytest.raises(BatchRuleError, match="enough_rows"):
        BatchValidator(spec).validate(spec.prepare(frame))


def test_nulls_fail_the_required_rule_rather_than_being_skipped() -> None:
    spec = toy_spec()
    frame = pd.DataFrame({"id": ["a", None], "qty": ["1", "0"]})
    outcome = BatchValidator(spec).validate(spec.prepare(frame))
    assert outcome.failed_rules == {1: ("qty_positive", "id_required")}


def test_a_spec_without_a_unique_key_gets_no_duplicate_rule() -> None:
    spec = toy_spec()
    outcome = BatchValidator(spec).validate(spec.prepare(pd.DataFrame({"id": ["a", "a"], "qty": ["1", "2"]})))
    assert outcome.valid.all()


def test_gx_objects_are_built_once_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = toy_spec()
    validator = BatchValidator(spec)
    builds: list[int] = []
    build = validator._build

    def counted() -> Any:
        builds.append(1)
        return build()

    monkeypatch.setattr(validator, "_build", counted)
    for qty in ("1", "2", "3"):
        validator.validate(spec.prepare(pd.DataFrame({"id": ["a"], "qty": [qty]})))
    assert builds == [1]


def test_validation_prints_no_progress_bars(capfd: pytest.CaptureFixture[str]) -> None:
    spec = toy_spec()
    BatchValidator(spec).validate(spec.prepare(pd.DataFrame({"id": ["a"], "qty": ["1"]})))
    assert capfd.readouterr().err == ""


def test_creating_a_validator_does_not_import_great_expectations() -> None:
    code = (
        "import sys\n"
        "from kafka_ingest.topics.orders import ORDERS\n"
        "from kafka_ingest.validate.validator import BatchValidator\n"
        "BatchValidator(ORDERS)\n"
        "print('great_expectations' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
