"""Specifications for kafka_ingest.encode.columnar: the same bytes as fastavro, computed column by column.

The one property that matters: for any table, every row's value equals fastavro's
``schemaless_writer`` of ``table.to_pylist()[row]`` behind the Confluent header, and exactly the
rows fastavro rejects are reported as errors, at their positions and without their values.
"""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import fastavro
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafka_ingest.encode.columnar import (
    ColumnarAvroEncoder,
    EncodedTable,
    UnsupportedColumn,
    UnsupportedSchema,
)
from kafka_ingest.registry import load_schema
from kafka_ingest.specs import SCHEMAS_DIR

SCHEMA_ID = 0x01020304
HEADER = struct.pack(">bI", 0, SCHEMA_ID)
ORDERS = load_schema(SCHEMAS_DIR / "shopping.order.created-value.avsc").parsed
PAYMENTS = load_schema(SCHEMAS_DIR / "shopping.payment.processed-value.avsc").parsed
CARD = "4111111111111111"
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decimal_type(precision: int, scale: int) -> dict[str, Any]:
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


def record_schema(schema: dict[str, Any]) -> dict[str, Any]:
    parsed = fastavro.parse_schema(schema)
    assert isinstance(parsed, dict)
    return parsed


def one_field(field_type: Any) -> dict[str, Any]:
    return record_schema({"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]})


TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}
EVERYTHING = record_schema(
    {
        "type": "record",
        "name": "Everything",
        "namespace": "test.columnar",
        "fields": [
            {"name": "text", "type": "string"},
            {"name": "blob", "type": "bytes"},
            {"name": "suit", "type": {"type": "enum", "name": "Suit", "symbols": ["S", "H", "D", "C"]}},
            {"name": "small", "type": "int"},
            {"name": "big", "type": "long"},
            {"name": "flag", "type": "boolean"},
            {"name": "real", "type": "double"},
            {"name": "single", "type": "float"},
            {"name": "maybe_real", "type": ["null", "double"]},
            {"name": "maybe_single", "type": ["float", "null"]},
            {"name": "price", "type": decimal_type(12, 2)},
            {"name": "huge", "type": decimal_type(30, 4)},
            {"name": "whole", "type": decimal_type(12, 2)},
            {"name": "at", "type": TIMESTAMP},
            {"name": "at_millis", "type": TIMESTAMP},
            {"name": "maybe_at", "type": ["null", TIMESTAMP]},
            {"name": "maybe_text", "type": ["null", "string"]},
            {"name": "maybe_suit", "type": ["null", "test.columnar.Suit"]},
            {"name": "maybe_price", "type": ["null", decimal_type(12, 2)]},
            {
                "name": "point",
                "type": {
                    "type": "record",
                    "name": "Point",
                    "fields": [{"name": "x", "type": "long"}, {"name": "label", "type": ["null", "string"]}],
                },
            },
            {"name": "maybe_point", "type": ["null", "test.columnar.Point"]},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {
                "name": "lines",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Line",
                        "fields": [
                            {"name": "sku", "type": "string"},
                            {"name": "qty", "type": "int"},
                            {"name": "price", "type": decimal_type(12, 2)},
                            {"name": "where", "type": "test.columnar.Point"},
                        ],
                    },
                },
            },
            {"name": "maybe_lines", "type": ["null", {"type": "array", "items": "test.columnar.Line"}]},
        ],
    }
)
POINT = pa.struct([("x", pa.int64()), ("label", pa.string())])
LINE = pa.struct(
    [("sku", pa.string()), ("qty", pa.int32()), ("price", pa.decimal128(12, 2)), ("where", POINT)]
)
EVERYTHING_ARROW = pa.schema(
    [
        ("text", pa.string()),
        ("blob", pa.binary()),
        ("suit", pa.string()),
        ("small", pa.int32()),
        ("big", pa.int64()),
        ("flag", pa.bool_()),
        ("real", pa.float64()),
        ("single", pa.float64()),
        ("maybe_real", pa.float32()),
        ("maybe_single", pa.float32()),
        ("price", pa.decimal128(12, 2)),
        ("huge", pa.decimal128(38, 4)),
        ("whole", pa.decimal128(10, 0)),
        ("at", pa.timestamp("ms", tz="UTC")),
        ("at_millis", pa.int64()),
        ("maybe_at", pa.timestamp("us", tz="UTC")),
        ("maybe_text", pa.large_string()),
        ("maybe_suit", pa.string()),
        ("maybe_price", pa.decimal128(12, 2)),
        ("point", POINT),
        ("maybe_point", POINT),
        ("tags", pa.list_(pa.string())),
        ("lines", pa.list_(LINE)),
        ("maybe_lines", pa.large_list(LINE)),
    ]
)
ITEM = pa.struct(
    [("product_id", pa.string()), ("quantity", pa.int32()), ("unit_price", pa.decimal128(12, 2))]
)
ORDERS_ARROW = pa.schema(
    [
        ("order_number", pa.string()),
        ("user_id", pa.large_string()),
        ("status", pa.string()),
        ("items", pa.list_(ITEM)),
        ("total_price", pa.decimal128(12, 2)),
        ("currency", pa.string()),
        ("created_at", pa.timestamp("ms", tz="UTC")),
        ("coupon_code", pa.string()),
    ]
)
PAYMENTS_ARROW = pa.schema(
    [
        ("payment_number", pa.string()),
        ("order_number", pa.string()),
        ("amount", pa.decimal128(12, 2)),
        ("currency", pa.dictionary(pa.int8(), pa.string())),
        ("method", pa.string()),
        ("status", pa.large_string()),
        ("card_last4", pa.string()),
        ("paid_at", pa.timestamp("ms", tz="UTC")),
    ]
)


# --------------------------------------------------------------------------- the reference


def fastavro_values(parsed: dict[str, Any], table: pa.Table) -> list[bytes | None]:
    """What serde's fastavro path would send for each row; ``None`` where fastavro refuses the row."""
    values: list[bytes | None] = []
    for record in table.to_pylist():
        buffer = io.BytesIO()
        buffer.write(HEADER)
        try:
            fastavro.schemaless_writer(buffer, parsed, record)
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError):
            values.append(None)
            continue
        values.append(buffer.getvalue())
    return values


def assert_same_as_fastavro(parsed: dict[str, Any], table: pa.Table) -> EncodedTable:
    result = ColumnarAvroEncoder(parsed, SCHEMA_ID).encode_table(table)
    expected = fastavro_values(parsed, table)
    assert result.to_pylist() == expected
    assert [position for position, _, _ in result.errors] == [i for i, v in enumerate(expected) if v is None]
    return result


# --------------------------------------------------------------------------- strategies

MIN_MS = int(datetime(1, 1, 2, tzinfo=UTC).timestamp() * 1000)
MAX_MS = int(datetime(9999, 12, 30, tzinfo=UTC).timestamp() * 1000)
texts = st.text(max_size=12)
millis = st.integers(MIN_MS, MAX_MS) | st.sampled_from([0, -1, 1, -86_400_001, MIN_MS, MAX_MS])


def scaled(digits: int, scale: int) -> st.SearchStrategy[Decimal]:
    """Decimals with up to ``digits`` digits at exactly ``scale`` places, edge values included."""
    bound = 10**digits - 1
    edges = st.sampled_from([0, 1, -1, 127, 128, -128, -129, 255, 256, -256, bound, -bound])
    return (st.integers(-bound, bound) | edges).map(lambda unscaled: Decimal(f"{unscaled}e-{scale}"))


def long_lists(element: st.SearchStrategy[Any], vary: str) -> st.SearchStrategy[list[Any]]:
    """150-200 elements, cheap to generate: one drawn element, its ``vary`` field changed per copy."""

    def copies(drawn: tuple[Any, int]) -> list[Any]:
        first, count = drawn
        if isinstance(first, dict):
            return [first | {vary: i - 100} for i in range(count)]
        return [f"{first}{i}" for i in range(count)]

    return st.tuples(element, st.integers(150, 200)).map(copies)


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def sliced_and_chunked(table: pa.Table, data: st.DataObject) -> list[pa.Table]:
    """Some of the rows as a zero-copy slice (Arrow offsets at every level of every column), and
    all of them in several chunks per column."""
    start = data.draw(st.integers(0, table.num_rows), label="slice start")
    stop = data.draw(st.integers(start, table.num_rows), label="slice stop")
    split = data.draw(st.integers(0, table.num_rows), label="chunk split")
    return [table.slice(start, stop - start), pa.concat_tables([table.slice(0, split), table.slice(split)])]


points = st.fixed_dictionaries({"x": st.integers(-(2**63), 2**63 - 1), "label": st.none() | texts})
lines = st.fixed_dictionaries(
    {"sku": texts, "qty": st.integers(-(2**31), 2**31 - 1), "price": scaled(12, 2), "where": points}
)
line_lists = st.lists(lines, max_size=3) | long_lists(lines, "qty")
everything_rows = st.fixed_dictionaries(
    {
        "text": st.text(max_size=40),
        "blob": st.binary(max_size=20),
        "suit": st.sampled_from(["S", "H", "D", "C"]),
        "small": st.integers(-(2**31), 2**31 - 1),
        "big": st.integers(-(2**63), 2**63 - 1),
        "flag": st.booleans(),
        "real": st.floats(),
        "single": st.floats(),
        "maybe_real": st.none() | st.floats(width=32),
        "maybe_single": st.none() | st.floats(width=32),
        "price": scaled(12, 2),
        "huge": scaled(30, 4),
        "whole": scaled(10, 0),
        "at": millis,
        "at_millis": millis,
        "maybe_at": st.none() | millis.map(lambda ms: ms * 1000 + 999),
        "maybe_text": st.none() | texts,
        "maybe_suit": st.none() | st.sampled_from(["S", "C"]),
        "maybe_price": st.none() | scaled(12, 2),
        "point": points,
        "maybe_point": st.none() | points,
        "tags": st.lists(texts, max_size=4) | long_lists(texts, ""),
        "lines": line_lists,
        "maybe_lines": st.none() | st.lists(lines, max_size=3),
    }
)
items = st.fixed_dictionaries(
    {"product_id": texts, "quantity": st.integers(-(2**31), 2**31 - 1), "unit_price": scaled(12, 2)}
)
order_rows = st.fixed_dictionaries(
    {
        "order_number": st.text(max_size=30),
        "user_id": texts,
        "status": st.sampled_from(["CREATED", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"]),
        "items": st.lists(items, max_size=3) | long_lists(items, "quantity"),
        "total_price": scaled(12, 2),
        "currency": st.sampled_from(["KRW", "USD", "EUR", "JPY"]),
        "created_at": millis,
        "coupon_code": st.none() | texts,
    }
)
payment_rows = st.fixed_dictionaries(
    {
        "payment_number": texts,
        "order_number": texts,
        "amount": scaled(12, 2),
        "currency": st.sampled_from(["KRW", "USD", "EUR", "JPY"]),
        "method": st.sampled_from(["CARD", "BANK_TRANSFER", "VIRTUAL_ACCOUNT", "MOBILE", "POINTS"]),
        "status": st.sampled_from(["APPROVED", "DECLINED", "CANCELLED", "REFUNDED"]),
        "card_last4": st.none() | st.text(alphabet="0123456789", min_size=4, max_size=4),
        "paid_at": millis,
    }
)


# --------------------------------------------------------------------------- byte identity


@PROPERTY
@given(rows=st.lists(order_rows, max_size=12), data=st.data())
def test_order_rows_are_byte_identical_to_fastavro(rows: list[dict[str, Any]], data: st.DataObject) -> None:
    table = rows_to_table(rows, ORDERS_ARROW)

    assert_same_as_fastavro(ORDERS, table)
    for variant in sliced_and_chunked(table, data):
        assert_same_as_fastavro(ORDERS, variant)


@PROPERTY
@given(rows=st.lists(payment_rows, max_size=20), data=st.data())
def test_payment_rows_are_byte_identical_to_fastavro(rows: list[dict[str, Any]], data: st.DataObject) -> None:
    table = rows_to_table(rows, PAYMENTS_ARROW)

    assert_same_as_fastavro(PAYMENTS, table)
    for variant in sliced_and_chunked(table, data):
        assert_same_as_fastavro(PAYMENTS, variant)


@PROPERTY
@given(rows=st.lists(everything_rows, max_size=8), data=st.data())
def test_every_supported_type_is_byte_identical_to_fastavro(
    rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    table = rows_to_table(rows, EVERYTHING_ARROW)

    result = assert_same_as_fastavro(EVERYTHING, table)
    assert result.errors == []
    for variant in sliced_and_chunked(table, data):
        assert_same_as_fastavro(EVERYTHING, variant)


def test_an_empty_table_encodes_to_no_values() -> None:
    result = ColumnarAvroEncoder(ORDERS, SCHEMA_ID).encode_table(ORDERS_ARROW.empty_table())

    assert result.to_pylist() == []
    assert result.errors == []


def test_frame_is_magic_byte_then_big_endian_schema_id_then_avro_body() -> None:
    table = pa.table({"f": [5]})

    (value,) = ColumnarAvroEncoder(one_field("long"), 0xCAFE).encode_table(table).to_pylist()

    assert value == b"\x00\x00\x00\xca\xfe" + b"\x0a"


def test_values_are_one_binary_array_over_one_contiguous_buffer() -> None:
    table = pa.table({"f": [0, 1, 2]})

    values = ColumnarAvroEncoder(one_field("long"), 1).encode_table(table).values

    assert values.type == pa.binary()
    assert values.buffers()[2].size == 3 * 6
    assert all(isinstance(v, bytes) for v in values.to_pylist())


def test_decimals_are_rescaled_up_like_fastavro_and_use_the_128_bit_path() -> None:
    values = [Decimal(10**30 - 1), Decimal(-(10**30)), Decimal(-(2**63)), Decimal(2**63), Decimal(0)]
    table = pa.table({"f": pa.array(values, pa.decimal128(34, 0))})

    assert_same_as_fastavro(one_field(decimal_type(38, 4)), table)


def test_null_slots_that_still_span_items_or_bytes_are_skipped() -> None:
    """Arrow lets a null list or string slot keep a non-empty range; its bytes must not leak."""
    schema = record_schema(
        {
            "type": "record",
            "name": "N",
            "fields": [
                {"name": "tags", "type": ["null", {"type": "array", "items": "string"}]},
                {"name": "note", "type": ["null", "string"]},
            ],
        }
    )
    words = pa.array(["a", "bb", "ccc", "dddd"])
    tags = pa.ListArray.from_arrays(pa.array([0, 2, 4], pa.int32()), words, mask=pa.array([True, False]))
    offsets = pa.py_buffer(np.array([0, 3, 5], dtype=np.int32).tobytes())
    validity = pa.py_buffer(np.packbits([False, True], bitorder="little"))
    note = pa.Array.from_buffers(pa.string(), 2, [validity, offsets, pa.py_buffer(b"xyzhi")])
    table = pa.table({"tags": tags, "note": note})

    assert_same_as_fastavro(schema, table)


def test_dictionary_and_view_columns_encode_like_plain_strings() -> None:
    rows = [{"status": s, "user_id": u} for s, u in [("CREATED", "a"), ("SHIPPED", "é🎉"), ("CREATED", "")]]
    base = rows_to_table([dict(order(), **row) for row in rows], ORDERS_ARROW)
    table = base.set_column(2, "status", base.column("status").dictionary_encode()).set_column(
        1, "user_id", base.column("user_id").cast(pa.string_view())
    )

    assert_same_as_fastavro(ORDERS, table)


def test_a_missing_column_takes_the_fields_default() -> None:
    table = rows_to_table([order(), order()], ORDERS_ARROW).drop_columns(["coupon_code"])

    assert_same_as_fastavro(ORDERS, table)


def test_missing_columns_take_defaults_of_named_and_nested_types() -> None:
    schema = record_schema(
        {
            "type": "record",
            "name": "R",
            "namespace": "test.defaults",
            "fields": [
                {"name": "a", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]}, "default": "Y"},
                {"name": "b", "type": "test.defaults.E", "default": "X"},
                {
                    "name": "c",
                    "type": {"type": "record", "name": "P", "fields": [{"name": "q", "type": "E"}]},
                    "default": {"q": "Y"},
                },
                {"name": "d", "type": "long"},
            ],
        }
    )

    assert_same_as_fastavro(schema, pa.table({"d": [1, -1]}))


# --------------------------------------------------------------------------- failing rows

FAULTS: dict[str, dict[str, Any]] = {
    "null user": {"user_id": None},
    "unknown status": {"status": CARD},
    "total over precision": {"total_price": Decimal(f"{CARD}.00")},
    "unit price over precision": {
        "items": [{"product_id": "P", "quantity": 1, "unit_price": Decimal(f"-{CARD}")}]
    },
    "null item": {"items": [None]},
    "null quantity": {"items": [{"product_id": "P", "quantity": None, "unit_price": Decimal("1.00")}]},
    "null items": {"items": None},
    "null timestamp": {"created_at": None},
}
WIDE_ORDERS_ARROW = pa.schema(
    [
        ORDERS_ARROW.field("order_number"),
        ORDERS_ARROW.field("user_id"),
        ORDERS_ARROW.field("status"),
        pa.field("items", pa.list_(pa.struct([*list(ITEM)[:2], ("unit_price", pa.decimal128(20, 2))]))),
        pa.field("total_price", pa.decimal128(20, 2)),
        *[ORDERS_ARROW.field(name) for name in ("currency", "created_at", "coupon_code")],
    ]
)


def order(**changes: Any) -> dict[str, Any]:
    record = {
        "order_number": "ORD-20240101-0001",
        "user_id": "user-42",
        "status": "CREATED",
        "items": [{"product_id": "P-1", "quantity": 2, "unit_price": Decimal("1250.50")}],
        "total_price": Decimal("2501.00"),
        "currency": "KRW",
        "created_at": datetime(2024, 1, 1, 9, 30, 15, 123000, tzinfo=UTC),
        "coupon_code": None,
    }
    return record | changes


@PROPERTY
@given(
    faults=st.lists(st.sampled_from([None, None, *FAULTS]), min_size=1, max_size=30),
    rows=st.data(),
)
def test_exactly_the_rows_fastavro_rejects_are_reported_and_the_rest_still_encode(
    faults: list[str | None], rows: st.DataObject
) -> None:
    records = [order(**FAULTS[f]) if f else rows.draw(order_rows) for f in faults]
    table = rows_to_table(records, WIDE_ORDERS_ARROW)

    result = assert_same_as_fastavro(ORDERS, table)

    assert [p for p, _, _ in result.errors] == [i for i, f in enumerate(faults) if f]
    assert result.values.null_count == len(result.errors)


@pytest.mark.parametrize(
    ("fault", "error_type", "field"),
    [
        ("null user", "type_mismatch", "'user_id' (string)"),
        ("unknown status", "enum_symbol", "'status' (enum OrderStatus)"),
        ("total over precision", "decimal_precision", "'total_price' (decimal(12,2))"),
        ("unit price over precision", "decimal_precision", "'items.unit_price' (decimal(12,2))"),
        ("null item", "type_mismatch", "'items' (record OrderItem)"),
        ("null quantity", "type_mismatch", "'items.quantity' (int)"),
        ("null items", "type_mismatch", "'items' (array of record OrderItem)"),
    ],
)
def test_an_error_names_the_field_and_problem_but_never_the_value(
    fault: str, error_type: str, field: str
) -> None:
    table = rows_to_table([order(), order(**FAULTS[fault])], WIDE_ORDERS_ARROW)

    ((position, kind, message),) = ColumnarAvroEncoder(ORDERS, SCHEMA_ID).encode_table(table).errors

    assert (position, kind) == (1, error_type)
    assert message.startswith(f"field {field}: ")
    assert CARD not in message
    assert CARD[-4:] not in message


def test_a_row_with_several_faults_is_reported_once_for_its_first_field() -> None:
    table = rows_to_table([order(status=CARD, user_id=None)], WIDE_ORDERS_ARROW)

    errors = ColumnarAvroEncoder(ORDERS, SCHEMA_ID).encode_table(table).errors

    assert [(p, t) for p, t, _ in errors] == [(0, "type_mismatch")]
    assert "'user_id'" in errors[0][2]


def test_more_decimal_places_than_the_scale_fails_every_row_like_fastavro() -> None:
    table = rows_to_table([order()], ORDERS_ARROW)
    table = table.set_column(4, "total_price", table.column("total_price").cast(pa.decimal128(13, 3)))

    result = assert_same_as_fastavro(ORDERS, table)

    assert [t for _, t, _ in result.errors] == ["decimal_scale"]


def test_a_uint64_beyond_long_is_out_of_range() -> None:
    table = pa.table({"f": pa.array([1, 2**63, 2**64 - 1], pa.uint64())})

    result = assert_same_as_fastavro(one_field("long"), table)

    assert [(p, t) for p, t, _ in result.errors] == [(1, "out_of_range"), (2, "out_of_range")]


def test_a_missing_column_without_default_fails_every_row() -> None:
    table = rows_to_table([order(), order()], ORDERS_ARROW).drop_columns(["currency"])

    result = assert_same_as_fastavro(ORDERS, table)

    assert {t for _, t, _ in result.errors} == {"missing_field"}


# --------------------------------------------------------------------------- what is not covered


@pytest.mark.parametrize(
    "field_type",
    [
        {"type": "map", "values": "string"},
        {"type": "fixed", "name": "F", "size": 4},
        ["null", "string", "long"],
        ["string", "long"],
        {"type": "string", "logicalType": "uuid"},
        {"type": "bytes", "logicalType": "big-decimal"},
        "null",
    ],
    ids=["map", "fixed", "three-branch union", "union without null", "uuid", "unknown logical", "null"],
)
def test_an_uncovered_schema_construct_is_refused_at_construction(field_type: Any) -> None:
    schema = one_field(field_type)

    with pytest.raises(UnsupportedSchema, match="'f'"):
        ColumnarAvroEncoder(schema, SCHEMA_ID)


def test_a_recursive_record_is_refused_at_construction() -> None:
    schema = record_schema(
        {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}
    )

    with pytest.raises(UnsupportedSchema, match="recursive"):
        ColumnarAvroEncoder(schema, SCHEMA_ID)


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("user_id", pa.array([42])),
        ("created_at", pa.array([datetime(2024, 1, 1)], pa.timestamp("ms"))),
        ("created_at", pa.array([1], pa.timestamp("ns", tz="UTC"))),
        ("status", pa.array([1])),
        ("total_price", pa.array([1.5])),
    ],
    ids=["int as string", "naive timestamp", "nanoseconds", "int as enum", "float as decimal"],
)
def test_a_column_that_does_not_fit_its_field_is_an_unsupported_column(column: str, values: pa.Array) -> None:
    table = rows_to_table([order()], ORDERS_ARROW)
    table = table.set_column(table.schema.get_field_index(column), column, values)

    with pytest.raises(UnsupportedColumn, match=f"'{column}'"):
        ColumnarAvroEncoder(ORDERS, SCHEMA_ID).encode_table(table)


def test_unsupported_column_is_an_unsupported_schema_so_one_except_falls_back() -> None:
    assert issubclass(UnsupportedColumn, UnsupportedSchema)
    assert issubclass(UnsupportedSchema, ValueError)


def test_a_schema_id_that_does_not_fit_four_bytes_is_a_wiring_error() -> None:
    with pytest.raises(ValueError, match="4-byte"):
        ColumnarAvroEncoder(ORDERS, 2**32)
