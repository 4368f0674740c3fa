"""Specifications for kafka_ingest.registry: schema files and the registry pre-check."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import MockSchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from kafka_ingest.errors import PermanentError
from kafka_ingest.registry import (
    IncompatibleSchemaError,
    LoadedSchema,
    SchemaCheckError,
    SchemaRegistryUnavailable,
    load_schema,
    resolve_schema_id,
)
from kafka_ingest.specs import SCHEMAS_DIR

ORDERS = SCHEMAS_DIR / "shopping.order.created-value.avsc"

# --------------------------------------------------------------------------- load_schema


def test_load_schema_keeps_the_full_name_compact_text_and_a_fastavro_parse() -> None:
    schema = load_schema(ORDERS)

    assert schema.name == "com.shopping.events.OrderCreated"
    assert json.loads(schema.text) == json.loads(ORDERS.read_text())
    assert "\n" not in schema.text
    assert "  " not in schema.text
    assert schema.parsed["__fastavro_parsed"] is True


def test_load_schema_reports_an_invalid_file_as_a_schema_check_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.avsc"
    broken.write_text('{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}')

    with pytest.raises(SchemaCheckError, match=r"broken\.avsc"):
        load_schema(broken)


# --------------------------------------------------------------------------- wire format


class Registry(MockSchemaRegistryClient):
    """confluent-kafka's mock registry plus the compatibility verdict it lacks, set by the test."""

    def __init__(self, *, compatible: bool = True) -> None:
        super().__init__({"url": "mock://registry", "max.retries": 0})
        self.compatible = compatible
        self.checked_versions: list[int | str] = []

    def test_compatibility(  # type: ignore[override]
        self, subject_name: str, schema: Schema, version: int | str = "latest", **_: Any
    ) -> bool:
        self.checked_versions.append(version)
        return self.compatible

    def get_compatibility(self, subject_name: str | None = None) -> str:
        return "BACKWARD"


def evolved(tmp_path: Path, *fields: dict[str, Any]) -> LoadedSchema:
    """The orders schema with extra fields, as a schema file of its own."""
    raw = json.loads(ORDERS.read_text())
    raw["fields"] += list(fields)
    path = tmp_path / "evolved.avsc"
    path.write_text(json.dumps(raw))
    return load_schema(path)


def failing(exc: BaseException) -> Callable[..., Any]:
    def fail(*_: Any, **__: Any) -> Any:
        raise exc

    return fail


def test_auto_register_registers_a_new_subject_and_returns_the_same_id_again() -> None:
    registry, schema = Registry(), load_schema(ORDERS)

    first = resolve_schema_id(registry, "orders-value", schema, auto_register=True)
    second = resolve_schema_id(registry, "orders-value", schema, auto_register=True)

    assert first == second
    assert registry.get_latest_version("orders-value").schema_id == first
    assert registry.checked_versions == [1]


def test_auto_register_refuses_an_incompatible_schema_before_registering(tmp_path: Path) -> None:
    registry = Registry(compatible=False)
    registry.register_schema("orders-value", load_schema(ORDERS).registry_schema())
    new = evolved(tmp_path, {"name": "channel", "type": "string"})

    with pytest.raises(IncompatibleSchemaError) as raised:
        resolve_schema_id(registry, "orders-value", new, auto_register=True)

    assert registry.get_versions("orders-value") == [1]
    message = str(raised.value)
    assert "'orders-value'" in message
    assert "version 1" in message
    assert "BACKWARD" in message
    assert "new field 'channel' has no default" in message
    assert "Nothing was registered" in message


def test_auto_register_reports_a_registry_refusal_at_registration_as_incompatible() -> None:
    registry = Registry()
    registry.register_schema = failing(SchemaRegistryError(409, 409, "Incompatible artifact: diffs [x]"))  # type: ignore[method-assign]

    with pytest.raises(IncompatibleSchemaError, match=r"orders-value.*Incompatible artifact: diffs \[x\]"):
        resolve_schema_id(registry, "orders-value", load_schema(ORDERS), auto_register=True)


def test_prod_mode_returns_the_id_of_an_identical_registered_version() -> None:
    registry, schema = Registry(), load_schema(ORDERS)
    schema_id = registry.register_schema("orders-value", schema.registry_schema())

    assert resolve_schema_id(registry, "orders-value", schema, auto_register=False) == schema_id


def test_prod_mode_without_any_version_names_the_subject_and_registers_nothing() -> None:
    registry = Registry()

    with pytest.raises(SchemaCheckError, match=r"'orders-value'.*no versions.*release process"):
        resolve_schema_id(registry, "orders-value", load_schema(ORDERS), auto_register=False)

    assert registry.get_subjects() == []


def test_prod_mode_says_a_missing_but_compatible_schema_would_be_compatible(tmp_path: Path) -> None:
    registry = Registry(compatible=True)
    registry.register_schema("orders-value", load_schema(ORDERS).registry_schema())
    new = evolved(tmp_path, {"name": "channel", "type": ["null", "string"], "default": None})

    with pytest.raises(SchemaCheckError) as raised:
        resolve_schema_id(registry, "orders-value", new, auto_register=False)

    assert not isinstance(raised.value, IncompatibleSchemaError)
    assert "latest version: 1" in str(raised.value)
    assert "would be compatible with version 1" in str(raised.value)
    assert registry.get_versions("orders-value") == [1]


def test_prod_mode_reports_a_missing_incompatible_schema_as_incompatible(tmp_path: Path) -> None:
    registry = Registry(compatible=False)
    registry.register_schema("orders-value", load_schema(ORDERS).registry_schema())

    with pytest.raises(IncompatibleSchemaError, match="incompatible with version 1"):
        resolve_schema_id(
            registry, "orders-value", evolved(tmp_path, {"name": "x", "type": "int"}), auto_register=False
        )


@pytest.mark.parametrize("status", [500, 503, 429])
def test_registry_server_errors_are_retryable(status: int) -> None:
    registry = Registry()
    registry.get_version = failing(SchemaRegistryError(status, 50001, "boom"))  # type: ignore[method-assign]

    with pytest.raises(SchemaRegistryUnavailable, match=r"orders-value.*unavailable"):
        resolve_schema_id(registry, "orders-value", load_schema(ORDERS), auto_register=True)


def test_schema_check_errors_are_permanent_and_unavailability_is_not() -> None:
    assert issubclass(SchemaCheckError, PermanentError)
    assert issubclass(IncompatibleSchemaError, SchemaCheckError)
    assert not issubclass(SchemaRegistryUnavailable, PermanentError)


def test_rejected_credentials_are_not_retryable_and_say_so() -> None:
    registry = Registry()
    registry.lookup_schema = failing(SchemaRegistryError(401, 401, "Unauthorized"))  # type: ignore[method-assign]

    with pytest.raises(SchemaCheckError, match="login and password"):
        resolve_schema_id(registry, "orders-value", load_schema(ORDERS), auto_register=False)


def test_an_unreachable_registry_is_retryable_and_the_message_has_no_credentials() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SchemaRegistryClient(
        {
            "url": f"http://127.0.0.1:{port}/apis/ccompat/v7",
            "basic.auth.user.info": "ingest:s3cr3t-pa55",
            "max.retries": 0,
        }
    )

    with pytest.raises(SchemaRegistryUnavailable) as raised:
        resolve_schema_id(client, "orders-value", load_schema(ORDERS), auto_register=True)

    assert f"127.0.0.1:{port}" in str(raised.value)
    assert "unreachable" in str(raised.value)
    assert "s3cr3t" not in str(raised.value)
