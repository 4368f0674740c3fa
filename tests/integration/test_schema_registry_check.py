"""Specifications for the registry pre-check and the wire format against a real registry.

Runs against the stack's Apicurio (``SCHEMA_REGISTRY_URL``, its Confluent-compatible API). Each
test uses its own subject, so runs never collide.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kafka_ingest.encode.avro import AvroEncoder
from kafka_ingest.hooks.schema_registry import DEFAULT_TIMEOUT_S
from kafka_ingest.registry import (
    IncompatibleSchemaError,
    LoadedSchema,
    SchemaCheckError,
    load_schema,
    resolve_schema_id,
)
from kafka_ingest.specs import SCHEMAS_DIR

pytestmark = pytest.mark.integration

ORDERS = SCHEMAS_DIR / "shopping.order.created-value.avsc"
PAYMENTS = SCHEMAS_DIR / "shopping.payment.processed-value.avsc"


@pytest.fixture
def client(schema_registry_url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": schema_registry_url, "timeout": DEFAULT_TIMEOUT_S})


@pytest.fixture
def subject(unique_name: Callable[[str], str]) -> str:
    return f"{unique_name('serde')}-value"


@pytest.fixture
def orders() -> LoadedSchema:
    return load_schema(ORDERS)


def evolve(tmp_path: Path, change: Callable[[list[dict[str, Any]]], None]) -> LoadedSchema:
    """The orders schema after ``change`` edits its field list, as its own schema file."""
    raw = json.loads(ORDERS.read_text())
    change(raw["fields"])
    path = tmp_path / "orders-evolved.avsc"
    path.write_text(json.dumps(raw))
    return load_schema(path)


def add_required_channel(fields: list[dict[str, Any]]) -> None:
    fields.append({"name": "channel", "type": "string"})


def make_user_id_a_long(fields: list[dict[str, Any]]) -> None:
    next(f for f in fields if f["name"] == "user_id")["type"] = "long"


def test_auto_register_registers_and_returns_the_same_id_on_the_next_run(
    client: SchemaRegistryClient, subject: str, orders: LoadedSchema
) -> None:
    first = resolve_schema_id(client, subject, orders, auto_register=True)
    second = resolve_schema_id(client, subject, orders, auto_register=True)

    assert first == second
    assert client.get_versions(subject) == [1]
    assert client.get_latest_version(subject).schema_id == first


def test_prod_mode_returns_the_id_of_the_identical_registered_version(
    client: SchemaRegistryClient, subject: str, orders: LoadedSchema
) -> None:
    registered = client.register_schema(subject, orders.registry_schema())

    assert resolve_schema_id(client, subject, orders, auto_register=False) == registered


def test_prod_mode_without_the_version_fails_and_registers_nothing(
    client: SchemaRegistryClient, subject: str, orders: LoadedSchema
) -> None:
    with pytest.raises(SchemaCheckError, match=rf"'{subject}'.*no versions"):
        resolve_schema_id(client, subject, orders, auto_register=False)

    assert subject not in client.get_subjects()


def test_prod_mode_names_the_latest_version_when_the_local_schema_is_newer(
    client: SchemaRegistryClient, subject: str, orders: LoadedSchema, tmp_path: Path
) -> None:
    client.register_schema(subject, orders.registry_schema())
    newer = evolve(
        tmp_path, lambda f: f.append({"name": "channel", "type": ["null", "string"], "default": None})
    )

    with pytest.raises(SchemaCheckError, match=r"latest version: 1 .*would be compatible with version 1"):
        resolve_schema_id(client, subject, newer, auto_register=False)

    assert client.get_versions(subject) == [1]


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (add_required_channel, "new field 'channel' has no default"),
        (make_user_id_a_long, "field 'user_id' changed type from string to long"),
    ],
    ids=["required-field-without-default", "changed-type"],
)
def test_an_incompatible_evolution_under_backward_fails_before_registration(
    client: SchemaRegistryClient,
    subject: str,
    orders: LoadedSchema,
    tmp_path: Path,
    change: Callable[[list[dict[str, Any]]], None],
    detail: str,
) -> None:
    resolve_schema_id(client, subject, orders, auto_register=True)
    client.set_compatibility(subject, "BACKWARD")

    with pytest.raises(IncompatibleSchemaError) as raised:
        resolve_schema_id(client, subject, evolve(tmp_path, change), auto_register=True)

    message = str(raised.value)
    assert f"'{subject}'" in message
    assert "version 1" in message
    assert "BACKWARD" in message
    assert detail in message
    assert client.get_versions(subject) == [1]


def test_a_transitive_rule_the_latest_version_cannot_see_is_reported_with_the_registrys_reason(
    client: SchemaRegistryClient, subject: str, orders: LoadedSchema, tmp_path: Path
) -> None:
    """v3 is compatible with v2 but not with v1: only registration (409) can tell."""
    resolve_schema_id(client, subject, orders, auto_register=True)
    without_user = evolve(tmp_path, lambda f: f.remove(next(x for x in f if x["name"] == "user_id")))
    resolve_schema_id(client, subject, without_user, auto_register=True)
    client.set_compatibility(subject, "BACKWARD_TRANSITIVE")
    long_user = json.loads(without_user.text)
    long_user["fields"].append({"name": "user_id", "type": "long", "default": 0})
    (tmp_path / "v3.avsc").write_text(json.dumps(long_user))

    with pytest.raises(
        IncompatibleSchemaError, match=rf"'{subject}' \(latest version 2 .*\): .*[Ii]ncompatible"
    ):
        resolve_schema_id(client, subject, load_schema(tmp_path / "v3.avsc"), auto_register=True)

    assert client.get_versions(subject) == [1, 2]


@pytest.mark.parametrize(
    ("path", "record"),
    [
        (
            ORDERS,
            {
                "order_number": "ORD-1",
                "user_id": "user-1",
                "status": "SHIPPED",
                "items": [{"product_id": "P-1", "quantity": 3, "unit_price": Decimal("19.99")}],
                "total_price": Decimal("59.97"),
                "currency": "EUR",
                "created_at": datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC),
                "coupon_code": "쿠폰",
            },
        ),
        (
            PAYMENTS,
            {
                "payment_number": "PAY-1",
                "order_number": "ORD-1",
                "amount": Decimal("59.97"),
                "currency": "EUR",
                "method": "CARD",
                "status": "APPROVED",
                "card_last4": "4242",
                "paid_at": datetime(2024, 5, 1, 12, 1, tzinfo=UTC),
            },
        ),
    ],
    ids=["orders", "payments"],
)
def test_encoded_bytes_decode_with_confluent_kafkas_deserializer_via_the_registry(
    client: SchemaRegistryClient, subject: str, path: Path, record: dict[str, Any]
) -> None:
    schema = load_schema(path)
    schema_id = resolve_schema_id(client, subject, schema, auto_register=True)
    value = AvroEncoder(schema, schema_id).encode(record)

    decoded = AvroDeserializer(
        SchemaRegistryClient({"url": client.config()["url"], "timeout": DEFAULT_TIMEOUT_S})
    )(value, SerializationContext(subject.removesuffix("-value"), MessageField.VALUE))

    assert decoded == record
