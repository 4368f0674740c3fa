"""Specifications for kafka_ingest.encode.avro: the fastavro reference encoder and the wire format."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import MockSchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import given, settings
from hypothesis import strategies as st

from kafka_ingest.encode.avro import AvroEncoder
from kafka_ingest.registry import (
    LoadedSchema,
    load_schema,
)
from kafka_ingest.specs import SCHEMAS_DIR

ORDERS = SCHEMAS_DIR / "shopping.order.created-value.avsc"
PAYMENTS = SCHEMAS_DIR / "shopping.payment.processed-value.avsc"
CARD = "4111111111111111"


def order(**changes: Any) -> dict[str, Any]:
    record = {
        "order_number": "ORD-20240101-0001",
        "user_id": "user-42",
        "status": "CREATED",
        "items": [
            {"product_id": "P-1", "quantity": 2, "unit_price": Decimal("1250.50")},
            {"product_id": "P-2", "quantity": 1, "unit_price": Decimal("0.00")},
        ],
        "total_price": Decimal("2501.00"),
        "currency": "KRW",
        "created_at": datetime(2024, 1, 1, 9, 30, 15, 123000, tzinfo=UTC),
        "coupon_code": "WELCOME-10 🎉",
    }
    return record | changes


def payment(**changes: Any) -> dict[str, Any]:
    record = {
        "payment_number": "PAY-0001",
        "order_number": "ORD-20240101-0001",
        "amount": Decimal("99.99"),
        "currency": "USD",
        "method": "CARD",
        "status": "APPROVED",
        "card_last4": "1111",
        "paid_at": datetime(2024, 1, 1, 9, 31, tzinfo=UTC),
    }
    return record | changes


def decode(schema: LoadedSchema, value: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(value[5:]), schema.parsed)


# --------------------------------------------------------------------------- load_schema


@pytest.mark.parametrize(
    ("path", "records"),
    [
        (ORDERS, [order(), order(coupon_code=None, items=[]), order(status="CANCELLED", currency="JPY")]),
        (PAYMENTS, [payment(), payment(method="POINTS", card_last4=None, amount=Decimal("0.01"))]),
    ],
    ids=["orders", "payments"],
)
def test_bytes_are_identical_to_confluent_kafkas_avro_serializer(
    path: Path, records: list[dict[str, Any]]
) -> None:
    schema = load_schema(path)
    registry = MockSchemaRegistryClient({"url": "mock://registry"})
    serializer = AvroSerializer(registry, schema.text, conf={"auto.register.schemas": True})
    context = SerializationContext("topic", MessageField.VALUE)
    expected = [serializer(record, context) for record in records]
    schema_id = registry.lookup_schema("topic-value", schema.registry_schema()).schema_id
    assert isinstance(schema_id, int)

    values, errors = AvroEncoder(schema, schema_id).encode_batch(records)

    assert errors == []
    assert values == expected


def test_frame_is_magic_byte_then_big_endian_schema_id_then_avro_body() -> None:
    schema = load_schema(ORDERS)

    value = AvroEncoder(schema, 0x01020304).encode(order())

    assert value[:5] == b"\x00\x01\x02\x03\x04"
    assert struct.unpack(">bI", value[:5]) == (0, 0x01020304)
    assert decode(schema, value) == order()


def test_the_reused_buffer_never_leaks_bytes_between_records() -> None:
    encoder = AvroEncoder(load_schema(ORDERS), 7)
    long_one = encoder.encode(order(coupon_code="x" * 500))

    short_one = encoder.encode(order(coupon_code=None))

    assert len(short_one) < len(long_one)
    assert short_one == AvroEncoder(load_schema(ORDERS), 7).encode(order(coupon_code=None))


@pytest.mark.parametrize("schema_id", [-1, 2**32])
def test_a_schema_id_that_does_not_fit_four_bytes_is_a_wiring_error(schema_id: int) -> None:
    with pytest.raises(ValueError, match="4-byte"):
        AvroEncoder(load_schema(ORDERS), schema_id)


@pytest.mark.parametrize(
    ("given", "decoded"),
    [
        (Decimal("0.00"), Decimal("0.00")),
        (Decimal("-12.30"), Decimal("-12.30")),
        (Decimal("7"), Decimal("7.00")),
        (Decimal("9999999999.99"), Decimal("9999999999.99")),
    ],
)
def test_decimals_keep_their_value_at_scale_two(given: Decimal, decoded: Decimal) -> None:
    schema = load_schema(ORDERS)

    result = decode(schema, AvroEncoder(schema, 1).encode(order(total_price=given)))

    assert result["total_price"] == decoded
    assert result["total_price"].as_tuple().exponent == -2


def test_timestamps_are_utc_milliseconds_whatever_the_offset() -> None:
    schema = load_schema(ORDERS)
    seoul = datetime(2024, 1, 1, 18, 30, 15, 123456, tzinfo=timezone(timedelta(hours=9)))

    result = decode(schema, AvroEncoder(schema, 1).encode(order(created_at=seoul)))

    assert result["created_at"] == datetime(2024, 1, 1, 9, 30, 15, 123000, tzinfo=UTC)


def test_enums_and_null_union_branches_round_trip() -> None:
    schema = load_schema(PAYMENTS)
    record = payment(method="BANK_TRANSFER", status="REFUNDED", currency="EUR", card_last4=None)

    assert decode(schema, AvroEncoder(schema, 1).encode(record)) == record


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
    cents=st.integers(min_value=-(10**12) + 1, max_value=10**12 - 1),
    coupon=st.none() | st.text(st.characters(exclude_categories=["Cs"]), max_size=10),
)
def test_any_schema_conforming_order_round_trips(text: str, cents: int, coupon: str | None) -> None:
    schema = load_schema(ORDERS)
    record = order(user_id=text, total_price=Decimal(cents).scaleb(-2), coupon_code=coupon)

    assert decode(schema, AvroEncoder(schema, 1).encode(record)) == record


# --------------------------------------------------------------------------- un-encodable records


@pytest.mark.parametrize(
    ("bad", "error_type", "field"),
    [
        (order(status=CARD), "enum_symbol", "status"),
        (order(coupon_code=int(CARD)), "type_mismatch", "coupon_code"),
        (order(user_id=int(CARD)), "type_mismatch", "user_id"),
        (order(total_price=Decimal(f"{CARD}.00")), "decimal_precision", "total_price"),
        (order(total_price=Decimal("1.001")), "decimal_scale", "total_price"),
        (
            order(items=[{"product_id": "P", "quantity": CARD, "unit_price": Decimal(1)}]),
            "type_mismatch",
            "items",
        ),
        ({k: v for k, v in order().items() if k != "currency"}, "missing_field", "currency"),
        (order(created_at=CARD), "type_mismatch", "created_at"),
    ],
    ids=["enum", "union", "string", "precision", "scale", "nested", "missing", "timestamp"],
)
def test_an_unencodable_record_is_reported_at_its_position_without_its_value(
    bad: dict[str, Any], error_type: str, field: str
) -> None:
    values, errors = AvroEncoder(load_schema(ORDERS), 3).encode_batch([order(), bad, order()])

    assert values[0] is not None
    assert values[1] is None
    assert values[2] == values[0]
    [(position, reported_type, message)] = errors
    assert (position, reported_type) == (1, error_type)
    assert f"field '{field}" in message
    assert CARD not in message


def test_nested_failures_name_the_path_inside_the_record() -> None:
    bad = order(items=[{"product_id": "P", "quantity": "2", "unit_price": Decimal(1)}])

    _, [(_, _, message)] = AvroEncoder(load_schema(ORDERS), 3).encode_batch([bad])

    assert message.startswith("field 'items.quantity'")


def test_a_record_that_is_not_a_mapping_is_reported_not_raised() -> None:
    _, errors = AvroEncoder(load_schema(ORDERS), 3).encode_batch([None, [1, 2]])  # type: ignore[list-item]

    assert [(p, t) for p, t, _ in errors] == [(0, "type_mismatch"), (1, "type_mismatch")]


# --------------------------------------------------------------------------- resolve_schema_id
