"""DuplicateIndex: the first occurrence of a key in (file name, row) order wins, within one day."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.validate import dedup
from kafka_ingest.validate.dedup import FIRST_OCCURRENCE_COLUMN, DuplicateIndex
from kafka_ingest.validate.validator import KEY_UNIQUE_RULE, BatchValidator


def chunk(file: str, keys: Sequence[str | None], first_row: int = 1) -> tuple[str, np.ndarray, pa.Array]:
    rows = np.arange(first_row, first_row + len(keys), dtype=np.int64)
    return file, rows, pa.array(keys, pa.string())


def first(index: DuplicateIndex, file: str, keys: Sequence[str | None], first_row: int = 1) -> list[bool]:
    return index.is_first_occurrence(*chunk(file, keys, first_row)).tolist()


def test_a_key_repeated_within_a_file_keeps_only_its_first_row() -> None:
    index = DuplicateIndex.build([chunk("part-0.csv", ["A", "B", "A", "A"])])
    assert first(index, "part-0.csv", ["A", "B", "A", "A"]) == [True, True, False, False]


def test_across_files_the_first_file_by_name_wins() -> None:
    index = DuplicateIndex.build([chunk("part-0.csv", ["A", "B"]), chunk("part-1.jsonl", ["C", "A"])])
    assert first(index, "part-0.csv", ["A", "B"]) == [True, True]
    assert first(index, "part-1.jsonl", ["C", "A"]) == [True, False]


def test_chunks_of_one_file_continue_its_row_order() -> None:
    index = DuplicateIndex.build(
        [chunk("part-0.csv", ["A", "B"]), chunk("part-0.csv", ["B", "A"], first_row=3)]
    )
    assert first(index, "part-0.csv", ["B", "A"], first_row=3) == [False, False]


def test_empty_and_null_keys_are_never_duplicates() -> None:
    index = DuplicateIndex.build([chunk("part-0.csv", ["", None, "", None, "A"])])
    assert len(index) == 0
    assert first(index, "part-0.csv", ["", None, "", None, "A"]) == [True] * 5


def test_keys_compare_as_exact_text() -> None:
    index = DuplicateIndex.build([chunk("part-0.csv", ["A-1", "a-1", " A-1"])])
    assert len(index) == 0


def test_an_invalid_first_occurrence_still_makes_later_ones_duplicates() -> None:
    index = DuplicateIndex.build([chunk("part-0.csv", ["ORD-7"]), chunk("part-1.csv", ["ORD-7"])])
    validator = BatchValidator(ORDERS)
    outcomes = []
    for file, row in (("part-0.csv", {"total_price": "not money"}), ("part-1.csv", {"total_price": "3.30"})):
        frame = _orders_frame([{"order_number": "ORD-7", **row}])
        frame[FIRST_OCCURRENCE_COLUMN] = index.is_first_occurrence(*chunk(file, ["ORD-7"]))
        outcomes.append(validator.validate(ORDERS.prepare(frame)).failed_rules)
    assert outcomes == [{0: ("total_price_format",)}, {0: (KEY_UNIQUE_RULE,)}]


def test_the_index_keeps_only_keys_that_occur_more_than_once() -> None:
    keys = [f"K{i}" for i in range(10_000)] + ["K5", "K7", "K5"]
    index = DuplicateIndex.build([chunk("part-0.csv", keys)])
    assert len(index) == 2  # K5 and K7
    assert index.duplicate_rows == 3


def test_the_answer_is_one_boolean_array_for_the_whole_chunk() -> None:
    keys = [f"K{i % 5000}" for i in range(20_000)]
    index = DuplicateIndex.build([chunk("part-0.csv", keys)])
    answer = index.is_first_occurrence(*chunk("part-0.csv", keys))
    assert isinstance(answer, np.ndarray)
    assert answer.dtype == bool
    assert answer.shape == (20_000,)
    assert np.flatnonzero(answer).tolist() == list(range(5000))


def test_scanning_compacts_without_changing_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedup, "_COMPACT_ROWS", 3)
    chunks = [chunk(f"part-{n}.csv", ["A", f"U{n}", "B"]) for n in range(6)]
    index = DuplicateIndex.build(chunks)
    assert len(index) == 2  # A and B
    assert first(index, "part-0.csv", ["A", "U0", "B"]) == [True, True, True]
    assert first(index, "part-3.csv", ["A", "U3", "B"]) == [False, True, False]


def test_files_out_of_name_order_are_refused() -> None:
    with pytest.raises(ValueError, match="name order"):
        DuplicateIndex.build([chunk("part-1.csv", ["A"]), chunk("part-0.csv", ["A"])])


def test_rows_out_of_order_are_refused() -> None:
    with pytest.raises(ValueError, match="increasing order"):
        DuplicateIndex.build(
            [chunk("part-0.csv", ["A", "B"], first_row=5), chunk("part-0.csv", ["C"], first_row=2)]
        )


def test_an_empty_index_treats_every_row_as_first() -> None:
    assert first(DuplicateIndex.empty(), "part-0.csv", ["A", "A"]) == [True, True]


def _orders_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    base = {column: None for column in ORDERS.all_columns} | {
        "user_id": "u1",
        "status": "SHIPPED",
        "items": json.dumps([{"product_id": "P", "quantity": 3, "unit_price": "1.10"}]),
        "currency": "EUR",
        "created_at": "2026-03-01T12:00:00Z",
    }
    schema = pa.schema([(column, pa.string()) for column in ORDERS.all_columns])
    return pa.Table.from_pylist([base | row for row in rows], schema=schema).to_pandas()


# -- SeenKeys: the same rule decided in one pass ------------------------------------------------

KEYS = ["A", "B", "A-1", "", None, "봄", "b", "A ", "A\x00", "Z" * 70]


@pytest.mark.parametrize("seed", range(20))
def test_one_pass_gives_the_pre_scans_answers(seed: int) -> None:
    rng = np.random.default_rng(seed)
    chunks = []
    for file in ("part-0.csv", "part-1.jsonl", "part-2.parquet")[: rng.integers(1, 4)]:
        row = 1
        for _ in range(rng.integers(1, 5)):
            keys = [KEYS[i] for i in rng.integers(0, len(KEYS), rng.integers(0, 30))]
            chunks.append(chunk(file, keys, row))
            row += len(keys) + int(rng.integers(0, 3))  # gaps: read-stage rejects have no key
    index, seen = DuplicateIndex.build(chunks), dedup.SeenKeys()
    for file, rows, keys in chunks:
        assert (
            seen.is_first_occurrence(file, rows, keys).tolist()
            == index.is_first_occurrence(file, rows, keys).tolist()
        )


def test_one_pass_keeps_nul_bytes_and_long_keys_exact() -> None:
    long = "L" * 100
    seen = dedup.SeenKeys()
    assert first_seen(seen, "part-0.csv", ["A", "A\x00", "A", "A\x00", long, long + "x"]) == [
        True,
        True,
        False,
        False,
        True,
        True,
    ]
    assert first_seen(seen, "part-0.csv", [long, "A\x00", "AB", "A"], 7) == [False, False, True, False]


def test_one_pass_compares_keys_of_different_lengths_across_batches() -> None:
    seen = dedup.SeenKeys()
    assert first_seen(seen, "part-0.csv", ["AB", "ABC"]) == [True, True]
    assert first_seen(seen, "part-0.csv", ["A", "ABCD", "AB"], 3) == [True, True, False]
    assert first_seen(seen, "part-0.csv", ["ABCD", "ABC", "ABCDE"], 6) == [False, False, True]


def test_one_pass_recorded_rows_count_as_seen() -> None:
    seen = dedup.SeenKeys()
    seen.record(*chunk("part-0.csv", ["A", "B"]))
    assert first_seen(seen, "part-1.csv", ["B", "C"]) == [False, True]


def test_one_pass_refuses_rows_out_of_order() -> None:
    seen = dedup.SeenKeys()
    seen.record(*chunk("part-1.csv", ["A"]))
    with pytest.raises(ValueError, match="name order"):
        seen.record(*chunk("part-0.csv", ["A"]))


def first_seen(seen: dedup.SeenKeys, file: str, keys: Sequence[str | None], first_row: int = 1) -> list[bool]:
    return seen.is_first_occurrence(*chunk(file, keys, first_row)).tolist()


@pytest.mark.parametrize("seed", range(10))
def test_merging_two_sorted_runs_gives_the_sorted_union(seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = np.array([bytes(rng.integers(65, 70, rng.integers(1, 9))) for _ in range(400)])
    distinct = np.unique(words)
    older_mask = rng.random(len(distinct)) < 0.5
    older = np.sort(distinct[older_mask].astype(f"S{rng.integers(8, 12)}"))
    newer = np.sort(distinct[~older_mask].astype("S8"))
    merged = dedup._merged(older, newer)
    assert merged.tolist() == np.sort(np.concatenate([older, newer])).tolist()
