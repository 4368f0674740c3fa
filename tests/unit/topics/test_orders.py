"""The orders spec: every EXTRACTS.md rule, its edge cases, and the records it publishes.

Rule cases are validated together in one GX run (a module fixture), then asserted one per test:
each case changes one field of a valid order and must fail exactly one rule, or none.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import fastavro
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafka_ingest.encode.avro import records_from_table
from kafka_ingest.specs import TopicSpec
from kafka_ingest.topics import orders
from kafka_ingest.topics._nested import _has_line_break, _Parser, parse_json_lists
from kafka_ingest.topics.orders import CURRENCIES, ORDERS, STATUSES
from kafka_ingest.validate.validator import BatchValidator

ITEMS = [
    {"product_id": "P-1", "quantity": 2, "unit_price": "12.50"},
    {"product_id": "P-2", "quantity": 1, "unit_price": 0.99},
]
VALID: dict[str, Any] = {
    "order_number": "ORD-0001",
    "user_id": "user-1",
    "status": "CREATED",
    "items": json.dumps(ITEMS),
    "total_price": "25.99",
    "currency": "KRW",
    "created_at": "2026-01-15T09:30:00+09:00",
    "coupon_code": "",
}


def items(*changes: dict[str, Any], drop: str | None = None) -> str:
    """The valid items JSON with the first item changed (the total stays 25.99 unless said)."""
    first = {**ITEMS[0], **{k: v for change in changes for k, v in change.items()}}
    if drop:
        del first[drop]
    return json.dumps([first, ITEMS[1]])


ZERO_ITEMS = json.dumps([{"product_id": "P-1", "quantity": 1, "unit_price": "0.00"}])

# case id -> (fields changed from VALID, rules the row must fail)
CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "valid": ({}, ()),
    "order_number_64_chars": ({"order_number": "A" * 64}, ()),
    "order_number_one_digit": ({"order_number": "7"}, ()),
    "order_number_trailing_dash": ({"order_number": "ORD-"}, ()),
    "order_number_empty": ({"order_number": ""}, ("order_number_format",)),
    "order_number_null": ({"order_number": None}, ("order_number_format",)),
    "order_number_65_chars": ({"order_number": "A" * 65}, ("order_number_format",)),
    "order_number_lowercase": ({"order_number": "ord-0001"}, ("order_number_format",)),
    "order_number_leading_dash": ({"order_number": "-ORD1"}, ("order_number_format",)),
    "order_number_underscore": ({"order_number": "ORD_1"}, ("order_number_format",)),
    "order_number_space_around": ({"order_number": " ORD-0001"}, ("order_number_format",)),
    "order_number_trailing_newline": ({"order_number": "ORD-0001\n"}, ("order_number_format",)),
    "order_number_non_ascii": ({"order_number": "ÖRD-1"}, ("order_number_format",)),
    "user_id_empty": ({"user_id": ""}, ("user_id_required",)),
    "user_id_null": ({"user_id": None}, ("user_id_required",)),
    "user_id_blank": ({"user_id": "  \t"}, ("user_id_required",)),
    "user_id_any_text": ({"user_id": "ユーザー 42"}, ()),
    "status_each_allowed": ({"status": "CANCELLED"}, ()),
    "status_lowercase": ({"status": "created"}, ("status_allowed",)),
    "status_space_around": ({"status": "CREATED "}, ("status_allowed",)),
    "status_unknown": ({"status": "PAID"}, ("status_allowed",)),
    "status_empty": ({"status": ""}, ("status_allowed",)),
    "status_null": ({"status": None}, ("status_allowed",)),
    "items_quantity_as_string": ({"items": items({"quantity": "2"})}, ()),
    "items_price_as_number": ({"items": items({"unit_price": 12.5})}, ()),
    "items_price_one_decimal": ({"items": items({"unit_price": "12.5"})}, ()),
    "items_unknown_key_ignored": ({"items": items({"sku": [1, 2]})}, ()),
    "items_pretty_printed": ({"items": json.dumps(ITEMS, indent=2)}, ()),
    "items_empty_text": ({"items": ""}, ("items_valid",)),
    "items_null": ({"items": None}, ("items_valid",)),
    "items_empty_array": ({"items": "[]"}, ("items_valid",)),
    "items_json_null": ({"items": "null"}, ("items_valid",)),
    "items_not_json": ({"items": "P-1 x2"}, ("items_valid",)),
    "items_truncated_json": ({"items": json.dumps(ITEMS)[:-3]}, ("items_valid",)),
    "items_object_not_array": ({"items": json.dumps(ITEMS[0])}, ("items_valid",)),
    "items_null_element": ({"items": json.dumps([None, *ITEMS])}, ("items_valid",)),
    "items_quantity_zero": ({"items": items({"quantity": 0})}, ("items_valid",)),
    "items_quantity_negative": ({"items": items({"quantity": -1})}, ("items_valid",)),
    "items_quantity_fraction": ({"items": items({"quantity": 1.5})}, ("items_valid",)),
    "items_quantity_exponent": ({"items": items({"quantity": "2e0"})}, ("items_valid",)),
    "items_quantity_over_avro_int": ({"items": items({"quantity": 2**31})}, ("items_valid",)),
    "items_quantity_boolean": ({"items": items({"quantity": True})}, ("items_valid",)),
    "items_quantity_missing": ({"items": items(drop="quantity")}, ("items_valid",)),
    "items_price_negative": ({"items": items({"unit_price": "-12.50"})}, ("items_valid",)),
    "items_price_negative_zero": ({"items": items({"unit_price": "-0.00"})}, ("items_valid",)),
    "items_price_three_decimals": ({"items": items({"unit_price": 12.505})}, ("items_valid",)),
    "items_price_exponent_number": ({"items": items().replace('"12.50"', "1.25e1")}, ("items_valid",)),
    "items_price_exponent_text": ({"items": items({"unit_price": "1.25e1"})}, ("items_valid",)),
    "items_price_nan": ({"items": items({"unit_price": "NaN"})}, ("items_valid",)),
    "items_price_bare_nan": ({"items": items().replace('"12.50"', "NaN")}, ("items_valid",)),
    "items_price_infinity": ({"items": items({"unit_price": "Infinity"})}, ("items_valid",)),
    "items_price_over_decimal_12_2": ({"items": items({"unit_price": "10000000000.00"})}, ("items_valid",)),
    "items_product_id_empty": ({"items": items({"product_id": ""})}, ("items_valid",)),
    "items_product_id_number": ({"items": items({"product_id": 123})}, ("items_valid",)),
    "items_product_id_missing": ({"items": items(drop="product_id")}, ("items_valid",)),
    "items_key_twice": (
        {"items": items().replace('"quantity": 2', '"quantity": 2, "quantity": 3')},
        ("items_valid",),
    ),
    "total_price_integer": ({"items": ZERO_ITEMS, "total_price": "0"}, ()),
    "total_price_leading_zeros": ({"total_price": "0025.99"}, ()),
    "total_price_empty": ({"total_price": ""}, ("total_price_format",)),
    "total_price_null": ({"total_price": None}, ("total_price_format",)),
    "total_price_three_decimals": ({"total_price": "25.990"}, ("total_price_format",)),
    "total_price_exponent": ({"total_price": "2.599e1"}, ("total_price_format",)),
    "total_price_nan": ({"total_price": "NaN"}, ("total_price_format",)),
    "total_price_infinity": ({"total_price": "Infinity"}, ("total_price_format",)),
    "total_price_plus_sign": ({"total_price": "+25.99"}, ("total_price_format",)),
    "total_price_comma": ({"total_price": "25,99"}, ("total_price_format",)),
    "total_price_space_around": ({"total_price": " 25.99"}, ("total_price_format",)),
    "total_price_bare_dot": ({"total_price": "25."}, ("total_price_format",)),
    "total_price_over_decimal_12_2": ({"total_price": "10000000000.00"}, ("total_price_format",)),
    "total_price_negative": ({"total_price": "-25.99"}, ("total_price_non_negative",)),
    "total_price_negative_zero": (
        {"items": ZERO_ITEMS, "total_price": "-0.00"},
        ("total_price_non_negative",),
    ),
    "total_price_zero": ({"items": ZERO_ITEMS, "total_price": "0.00"}, ()),
    "total_price_off_by_a_cent": ({"total_price": "25.98"}, ("total_matches_items",)),
    "total_price_not_the_sum": ({"total_price": "13.49"}, ("total_matches_items",)),
    "currency_each_allowed": ({"currency": "JPY"}, ()),
    "currency_lowercase": ({"currency": "krw"}, ("currency_allowed",)),
    "currency_unknown": ({"currency": "GBP"}, ("currency_allowed",)),
    "currency_null": ({"currency": None}, ("currency_allowed",)),
    "created_at_z": ({"created_at": "2026-01-15T00:30:00Z"}, ()),
    "created_at_negative_offset": ({"created_at": "2026-01-14T19:30:00-05:00"}, ()),
    "created_at_fraction": ({"created_at": "2026-01-15T00:30:00.123456789Z"}, ()),
    "created_at_leap_day": ({"created_at": "2024-02-29T00:00:00Z"}, ()),
    "created_at_without_offset": ({"created_at": "2026-01-15T09:30:00"}, ("created_at_with_offset",)),
    "created_at_impossible_date": ({"created_at": "2026-02-30T09:30:00Z"}, ("created_at_with_offset",)),
    "created_at_not_leap_year": ({"created_at": "2026-02-29T09:30:00Z"}, ("created_at_with_offset",)),
    "created_at_hour_24": ({"created_at": "2026-01-15T24:00:00Z"}, ("created_at_with_offset",)),
    "created_at_leap_second": ({"created_at": "2026-12-31T23:59:60Z"}, ("created_at_with_offset",)),
    "created_at_space_separator": ({"created_at": "2026-01-15 09:30:00Z"}, ("created_at_with_offset",)),
    "created_at_compact_offset": ({"created_at": "2026-01-15T09:30:00+0900"}, ("created_at_with_offset",)),
    "created_at_offset_hour_24": ({"created_at": "2026-01-15T09:30:00+24:00"}, ("created_at_with_offset",)),
    "created_at_lowercase_z": ({"created_at": "2026-01-15T09:30:00z"}, ("created_at_with_offset",)),
    "created_at_no_seconds": ({"created_at": "2026-01-15T09:30Z"}, ("created_at_with_offset",)),
    "created_at_date_only": ({"created_at": "2026-01-15"}, ("created_at_with_offset",)),
    "created_at_epoch_number": ({"created_at": "1768437000"}, ("created_at_with_offset",)),
    "created_at_empty": ({"created_at": ""}, ("created_at_with_offset",)),
    "coupon_code_text": ({"coupon_code": "WELCOME-10 🎉"}, ()),
    "coupon_code_blank": ({"coupon_code": "  "}, ()),
    "coupon_code_null": ({"coupon_code": None}, ()),
}


def frame_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as the reader hands them on: one string column per spec column."""
    schema = pa.schema([(column, pa.string()) for column in ORDERS.all_columns])
    frame = pa.Table.from_pylist(rows, schema=schema).to_pandas()
    frame["_first_occurrence"] = True
    return frame


def roundtrip(record: dict[str, Any]) -> dict[str, Any]:
    schema = fastavro.parse_schema(json.loads(ORDERS.schema_path.read_text()))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, schema, schema)
    assert isinstance(decoded, dict)
    return decoded


@pytest.fixture(scope="module")
def validator() -> BatchValidator:
    return BatchValidator(ORDERS)


@pytest.fixture(scope="module")
def failures(validator: BatchValidator) -> dict[str, tuple[str, ...]]:
    outcome = validator.validate(
        ORDERS.prepare(frame_of([{**VALID, **change} for change, _ in CASES.values()]))
    )
    return {case: outcome.failed_rules.get(position, ()) for position, case in enumerate(CASES)}


@pytest.mark.parametrize("case", list(CASES))
def test_row_fails_exactly_the_rules_it_breaks(case: str, failures: dict[str, tuple[str, ...]]) -> None:
    assert failures[case] == CASES[case][1]


def test_every_rule_has_a_failing_case() -> None:
    expected = {rule for _, rules in CASES.values() for rule in rules}
    assert expected == {rule.name for rule in ORDERS.rules}


def test_arrow_table_has_the_avro_record_fields_in_order() -> None:
    fields = [field["name"] for field in json.loads(ORDERS.schema_path.read_text())["fields"]]
    assert orders.to_table(ORDERS.prepare(frame_of([VALID]))).column_names == fields


def test_value_sets_match_the_avro_enums() -> None:
    schema = json.loads(ORDERS.schema_path.read_text())
    enums = {
        field["name"]: field["type"]["symbols"] for field in schema["fields"] if "symbols" in field["type"]
    }
    assert (tuple(enums["status"]), tuple(enums["currency"])) == (STATUSES, CURRENCIES)


def test_an_empty_batch_gives_no_records(validator: BatchValidator) -> None:
    prepared = ORDERS.prepare(frame_of([]))
    assert validator.validate(prepared).failed_rules == {}
    assert records_of(ORDERS, prepared) == []


def test_prepare_keeps_rows_order_and_extract_columns() -> None:
    frame = frame_of([VALID, {**VALID, "order_number": ""}, VALID]).set_axis([7, 3, 5])
    prepared = ORDERS.prepare(frame)
    assert list(prepared.index) == [7, 3, 5]
    pd.testing.assert_frame_equal(prepared[frame.columns], frame)


def test_rule_columns_are_never_null() -> None:
    prepared = ORDERS.prepare(frame_of([{column: None for column in VALID}, VALID]))
    flags = prepared[[f"_{rule.name}" for rule in ORDERS.rules]]
    assert flags.dtypes.eq(bool).all()
    assert not flags.isna().any().any()


def test_valid_row_maps_to_an_avro_record() -> None:
    (record,) = records_of(ORDERS, ORDERS.prepare(frame_of([VALID])))
    assert record == {
        "order_number": "ORD-0001",
        "user_id": "user-1",
        "status": "CREATED",
        "items": [
            {"product_id": "P-1", "quantity": 2, "unit_price": Decimal("12.50")},
            {"product_id": "P-2", "quantity": 1, "unit_price": Decimal("0.99")},
        ],
        "total_price": Decimal("25.99"),
        "currency": "KRW",
        "created_at": int(datetime(2026, 1, 15, 0, 30, tzinfo=UTC).timestamp() * 1000),
        "coupon_code": None,
    }


def test_records_round_trip_through_the_avro_schema() -> None:
    rows = [VALID, {**VALID, "coupon_code": "SALE", "created_at": "1969-12-31T23:59:59.9995Z"}]
    records = records_of(ORDERS, ORDERS.prepare(frame_of(rows)))
    for record in records:
        decoded = roundtrip(record)
        assert decoded == {**record, "created_at": decoded["created_at"]}
        assert decoded["created_at"] == datetime.fromtimestamp(record["created_at"] / 1000, UTC)


def test_fractional_seconds_are_truncated_to_milliseconds() -> None:
    row = {**VALID, "created_at": "2026-01-15T00:30:00.123999Z"}
    (record,) = records_of(ORDERS, ORDERS.prepare(frame_of([row])))
    assert record["created_at"] % 1000 == 123


def test_offset_is_converted_to_utc() -> None:
    rows = [
        {**VALID, "created_at": "2026-01-15T09:30:00+09:00"},
        {**VALID, "created_at": "2026-01-15T00:30:00Z"},
    ]
    first, second = records_of(ORDERS, ORDERS.prepare(frame_of(rows)))
    assert first["created_at"] == second["created_at"]


def test_money_keeps_two_places() -> None:
    row = {**VALID, "items": items({"unit_price": 12.5})}
    (record,) = records_of(ORDERS, ORDERS.prepare(frame_of([row])))
    assert str(record["total_price"]) == "25.99"
    assert str(record["items"][0]["unit_price"]) == "12.50"


def test_coupon_code_is_kept_verbatim_and_none_when_absent() -> None:
    rows = [{**VALID, "coupon_code": c} for c in (" SALE ", "", None)]
    records = records_of(ORDERS, ORDERS.prepare(frame_of(rows)))
    assert [r["coupon_code"] for r in records] == [" SALE ", None, None]


def test_missing_optional_column_reads_as_no_coupon() -> None:
    frame = frame_of([VALID]).drop(columns=["coupon_code"])
    (record,) = records_of(ORDERS, ORDERS.prepare(frame))
    assert record["coupon_code"] is None


def test_total_is_compared_in_cents_without_overflow() -> None:
    huge = json.dumps([{"product_id": "P", "quantity": 2**31 - 1, "unit_price": "9999999999.99"}])
    prepared = ORDERS.prepare(frame_of([{**VALID, "items": huge, "total_price": "9999999999.99"}]))
    assert prepared["_items_valid"].item()
    assert not prepared["_total_matches_items"].item()


def test_a_bad_items_row_does_not_affect_its_neighbours() -> None:
    rows = [VALID] * 3000
    rows[1500] = {**VALID, "items": "[{broken"}
    prepared = ORDERS.prepare(frame_of(rows))
    assert np.flatnonzero(~prepared["_items_valid"].to_numpy()).tolist() == [1500]


@pytest.mark.parametrize(
    "smuggled",
    [
        '[]}\n{"v": ' + json.dumps(ITEMS),
        json.dumps(ITEMS) + ', "x": 1',
        json.dumps(ITEMS) + "} {",
    ],
    ids=["second_object", "extra_field", "trailing_text"],
)
def test_text_after_the_items_array_is_invalid(smuggled: str) -> None:
    prepared = ORDERS.prepare(frame_of([{**VALID, "items": smuggled}, VALID]))
    assert prepared["_items_valid"].tolist() == [False, True]


_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False),
    st.sampled_from(["12.50", "1e2", "NaN", "", " 2", "0", "-0.00"]),
    st.text(max_size=5),
)
_item = st.dictionaries(st.sampled_from(["product_id", "quantity", "unit_price", "x"]), _json_scalars)
_junk = st.text(alphabet='[]{}",:0123456789.e-nulx \n', max_size=30)
_items_text = st.one_of(
    st.lists(st.one_of(st.none(), _item), max_size=3).map(json.dumps),
    st.tuples(
        st.lists(_item, max_size=2).map(json.dumps),
        st.one_of(_junk, st.sampled_from([', "x": 1', ', "v": []', '}{"v": []', "]", "}", " "])),
    ).map("".join),
    _junk,
)


def _same_integer(lists: list[Any], field: str) -> list[Any]:
    """``lists`` with ``-0`` in ``field`` written ``0``: the one text an integer field may change."""
    return [
        row
        if row is None
        else [item if item is None or item[field] != "-0" else {**item, field: "0"} for item in row]
        for row in lists
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_items_text, min_size=1, max_size=12),
    st.sampled_from([(8192, 64), (4, 1), (8, 2), (5, 3)]),
    st.sampled_from([(), ("quantity",)]),
)
def test_fast_items_parser_agrees_with_json_loads(
    texts: list[str], blocks: tuple[int, int], integer_fields: tuple[str, ...]
) -> None:
    block, smallest = blocks  # small blocks make a rejected block halve, down to row by row
    parsed = parse_json_lists(
        pa.array(texts, pa.large_string()),
        ("product_id",),
        ("quantity", "unit_price"),
        integer_fields=integer_fields,
        block=block,
        smallest=smallest,
    )
    reference, invalid = _Parser(parsed.lists.type, ("product_id",), ("quantity", "unit_price"))._slow(texts)
    assert _same_integer(parsed.lists.to_pylist(), "quantity") == _same_integer(
        reference.to_pylist(), "quantity"
    )
    assert parsed.invalid.tolist() == invalid.tolist()


def _counting(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[tuple[Any, ...]]:
    """The positional arguments of each call of ``owner.name`` from now on."""
    calls: list[tuple[Any, ...]] = []
    original = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def _orders_items(texts: list[str]) -> Any:
    """``texts`` parsed as the orders spec does (``quantity`` typed), in blocks of 8 rows."""
    return parse_json_lists(
        pa.array(texts, pa.large_string()),
        ("product_id",),
        ("quantity", "unit_price"),
        integer_fields=("quantity",),
        block=8,
    )


def test_integer_quantities_and_string_prices_are_read_without_quoting_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kafka_ingest.topics import _nested

    quoting = _counting(monkeypatch, _nested, "_quote_numbers")
    texts = [
        json.dumps([{"product_id": f"P-{i}", "quantity": i % 7 + 1, "unit_price": "9.99"}]) for i in range(40)
    ]

    parsed = _orders_items(texts)

    assert not parsed.invalid.any()
    assert [row[0]["quantity"] for row in parsed.lists.to_pylist()] == [str(i % 7 + 1) for i in range(40)]
    assert [fields for _values, fields in quoting] == [()]  # the lines were built once, unquoted


def test_a_batch_shaped_for_quoting_stops_trying_the_typed_read_after_its_first_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    typed = _counting(monkeypatch, _Parser, "parse_typed")
    texts = [json.dumps([{"product_id": "P-1", "quantity": "3", "unit_price": 4.5}])] * 40  # 5 blocks

    parsed = _orders_items(texts)

    assert not parsed.invalid.any()
    assert {row[0]["quantity"] for row in parsed.lists.to_pylist()} == {"3"}
    assert {row[0]["unit_price"] for row in parsed.lists.to_pylist()} == {"4.5"}
    assert len(typed) == 1


def test_a_bad_row_does_not_stop_the_typed_read_of_the_next_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    typed = _counting(monkeypatch, _Parser, "parse_typed")
    texts = [json.dumps([{"product_id": "P-1", "quantity": 3, "unit_price": "4.50"}])] * 40
    texts[3] = "[{broken"

    parsed = _orders_items(texts)

    assert np.flatnonzero(parsed.invalid).tolist() == [3]
    assert len(typed) == 5


def test_a_bad_items_row_costs_a_few_halvings_not_a_block_parsed_row_by_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = [json.dumps(ITEMS)] * 8192
    texts[5000] = "[{broken"
    by_json_loads: list[int] = []
    slow = _Parser._slow

    def counting(self: _Parser, rows: list[str | None]) -> Any:
        by_json_loads.append(len(rows))
        return slow(self, rows)

    monkeypatch.setattr(_Parser, "_slow", counting)
    parsed = parse_json_lists(pa.array(texts, pa.large_string()), ("product_id",), ("quantity", "unit_price"))
    assert np.flatnonzero(parsed.invalid).tolist() == [5000]
    assert by_json_loads == [64]  # only the 64-row part holding the bad row
    assert (
        parsed.lists[4999].as_py()
        == parsed.lists[5001].as_py()
        == [
            {
                "product_id": item["product_id"],
                "quantity": str(item["quantity"]),
                "unit_price": str(item["unit_price"]),
            }
            for item in ITEMS
        ]
    )


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_a_line_break_is_found_only_in_the_values_of_the_slice(kind: pa.DataType) -> None:
    texts = pa.array(["a\nb", "[]", "[1]", "x\ry"], kind)
    assert _has_line_break(texts)
    assert not _has_line_break(texts.slice(1, 2))
    assert _has_line_break(texts.slice(2, 2))
    assert not _has_line_break(texts.slice(1, 0))


def records_of(spec: TopicSpec, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The valid, prepared rows as Avro-ready dicts, as the reference encoder gets them."""
    return records_from_table(spec.to_table(frame))
