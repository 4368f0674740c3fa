"""The corrections file: anything doubtful stops the replay with a message naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kafka_ingest.replay.corrections import check_keys_selected, load_corrections
from kafka_ingest.replay.errors import ReplayInputError
from kafka_ingest.topics.orders import ORDERS

HEADER = "order_number,user_id,status,items,total_price,currency,created_at"
ITEMS = '"[{""product_id"": ""P-1"", ""quantity"": 1, ""unit_price"": ""5.00""}]"'
ROW = f"ORD-1,user-1,CREATED,{ITEMS},5.00,USD,2026-01-05T10:00:00Z"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_csv_rows_by_key_with_the_optional_column_left_out(tmp_path: Path) -> None:
    corrections = load_corrections(write(tmp_path, "fix.csv", f"\ufeff{HEADER}\n{ROW}\n"), ORDERS)
    assert list(corrections.rows) == ["ORD-1"]
    assert corrections.rows["ORD-1"]["currency"] == "USD"
    assert len(corrections.fingerprint) == 64


def test_jsonl_nested_values_become_json_text_like_an_extract(tmp_path: Path) -> None:
    row = {
        "order_number": "ORD-1",
        "user_id": "u",
        "status": "CREATED",
        "total_price": "5.00",
        "items": [{"product_id": "P-1", "quantity": 1, "unit_price": "5.00"}],
        "currency": "USD",
        "created_at": "2026-01-05T10:00:00Z",
        "coupon_code": None,
    }
    corrections = load_corrections(write(tmp_path, "fix.jsonl", json.dumps(row) + "\n\n"), ORDERS)
    assert json.loads(str(corrections.rows["ORD-1"]["items"])) == row["items"]
    assert corrections.rows["ORD-1"]["coupon_code"] is None


def test_unknown_columns_are_named(tmp_path: Path) -> None:
    with pytest.raises(ReplayInputError, match=r"unknown column\(s\) 'colour'"):
        load_corrections(write(tmp_path, "fix.csv", f"{HEADER},colour\n{ROW},red\n"), ORDERS)


def test_missing_key_column_is_named(tmp_path: Path) -> None:
    header, row = HEADER.split(",", 1)[1], ROW.split(",", 1)[1]
    with pytest.raises(ReplayInputError, match="no key column 'order_number'"):
        load_corrections(write(tmp_path, "fix.csv", f"{header}\n{row}\n"), ORDERS)


def test_missing_required_columns_are_named(tmp_path: Path) -> None:
    with pytest.raises(ReplayInputError, match=r"lacks required column\(s\) 'user_id'"):
        load_corrections(write(tmp_path, "fix.jsonl", json.dumps({"order_number": "ORD-1"}) + "\n"), ORDERS)


def test_duplicate_keys_are_named(tmp_path: Path) -> None:
    with pytest.raises(ReplayInputError, match="more than once: 'ORD-1'"):
        load_corrections(write(tmp_path, "fix.csv", f"{HEADER}\n{ROW}\n{ROW}\n"), ORDERS)


def test_keys_that_match_no_selected_envelope_are_named(tmp_path: Path) -> None:
    corrections = load_corrections(write(tmp_path, "fix.csv", f"{HEADER}\n{ROW}\n"), ORDERS)
    check_keys_selected(corrections, ["ORD-1", "ORD-2"])
    with pytest.raises(ReplayInputError, match="match no selected DLQ envelope: 'ORD-1'"):
        check_keys_selected(corrections, ["ORD-2", None])


def test_other_formats_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ReplayInputError, match=r"expected a \.csv or \.jsonl"):
        load_corrections(write(tmp_path, "fix.txt", HEADER), ORDERS)
