"""BatchValidator hands GX only the rows that can fail; the outcome is the full batch's outcome."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kafka_ingest.read import read_extract
from kafka_ingest.specs import Rule, TopicSpec
from kafka_ingest.testing.samples import write_day
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.topics.payments import PAYMENTS
from kafka_ingest.validate.validator import BatchRuleError, BatchValidator


def prepared_batch(spec: TopicSpec, root: Path) -> pd.DataFrame:
    write_day(root, spec.dataset, "2026-01-15", rows=400, bad_ratio=0.2)
    path = next((root / spec.dataset / "dt=2026-01-15").glob("part-*"))
    batch = next(read_extract(str(path), columns=spec.columns, optional_columns=spec.optional_columns))
    frame = batch.table.to_pandas()
    frame["_first_occurrence"] = np.arange(len(frame)) % 50 != 7
    return spec.prepare(frame)


@pytest.mark.parametrize("spec", [ORDERS, PAYMENTS], ids=lambda spec: spec.dataset)
def test_validating_the_rows_that_can_fail_gives_the_full_outcome(spec: TopicSpec, tmp_path: Path) -> None:
    prepared = prepared_batch(spec, tmp_path)
    full = BatchValidator(spec).validate(prepared)
    subset = BatchValidator(spec).validate_rows_that_can_fail(prepared)
    assert (~full.valid).sum() > 20
    assert subset.valid.tolist() == full.valid.tolist()
    assert subset.failed_rules == full.failed_rules


def test_a_batch_where_every_row_passes_is_valid(tmp_path: Path) -> None:
    prepared = prepared_batch(ORDERS, tmp_path)
    passing = prepared[BatchValidator(ORDERS).validate(prepared).valid].reset_index(drop=True)
    outcome = BatchValidator(ORDERS).validate_rows_that_can_fail(passing)
    assert outcome.valid.all()
    assert outcome.failed_rules == {}


def test_a_rule_on_a_raw_column_makes_gx_see_every_row(tmp_path: Path) -> None:
    raw = Rule(
        "user_id_short", "expect_column_value_lengths_to_be_between", {"column": "user_id", "max_value": 6}
    )
    spec = replace(ORDERS, rules=(*ORDERS.rules, raw))
    prepared = prepared_batch(spec, tmp_path)
    outcome = BatchValidator(spec).validate_rows_that_can_fail(prepared)
    assert outcome.failed_rules == BatchValidator(spec).validate(prepared).failed_rules
    assert any("user_id_short" in rules for rules in outcome.failed_rules.values())


@pytest.mark.parametrize("spec", [ORDERS, PAYMENTS], ids=lambda spec: spec.dataset)
def test_batches_validated_together_get_each_its_own_outcome(spec: TopicSpec, tmp_path: Path) -> None:
    prepared = prepared_batch(spec, tmp_path)
    first, second = prepared.iloc[:150], prepared.iloc[150:]  # the second keeps labels from 150 on
    validator = BatchValidator(spec)
    together = validator.validate_together([first, second])
    for frame, outcome in zip((first, second), together, strict=True):
        alone = validator.validate_rows_that_can_fail(frame.reset_index(drop=True))
        assert (~alone.valid).sum() > 5
        assert outcome.valid.tolist() == alone.valid.tolist()
        assert outcome.failed_rules == alone.failed_rules


def test_batches_with_a_batch_rule_are_still_validated_one_by_one(tmp_path: Path) -> None:
    spec = replace(
        ORDERS,
        batch_rules=(Rule("enough_rows", "expect_table_row_count_to_be_between", {"min_value": 100}),),
    )
    prepared = prepared_batch(spec, tmp_path)
    validator = BatchValidator(spec)
    outcomes = validator.validate_together([prepared, prepared])
    assert outcomes[0].valid.tolist() == validator.validate(prepared).valid.tolist()
    assert outcomes[1].valid.tolist() == outcomes[0].valid.tolist()
    with pytest.raises(BatchRuleError, match="enough_rows"):  # the 50-row batch, judged alone
        validator.validate_together([prepared, prepared.iloc[:50]])
