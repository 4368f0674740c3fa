"""Specifications for the local schema registry (Apicurio's Confluent-compatible API) as
confluent-kafka's SchemaRegistryClient sees it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, OffsetSpec
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from kafka_ingest.hooks.schema_registry import DEFAULT_TIMEOUT_S

pytestmark = pytest.mark.integration


def order_schema(*extra_fields: dict[str, object]) -> Schema:
    fields = [{"name": "order_id", "type": "string"}, *extra_fields]
    return Schema(
        json.dumps({"type": "record", "name": "Order", "namespace": "it", "fields": fields}), "AVRO"
    )


V1 = order_schema()
V2_WITH_DEFAULT = order_schema({"name": "channel", "type": "string", "default": "web"})
V2_WITHOUT_DEFAULT = order_schema({"name": "channel", "type": "string"})


@pytest.fixture
def client(schema_registry_url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": schema_registry_url, "timeout": DEFAULT_TIMEOUT_S})


@pytest.fixture
def subject(client: SchemaRegistryClient, unique_name: Callable[[str], str]) -> str:
    return f"{unique_name('orders')}-value"


def test_registered_schema_is_found_by_lookup_and_as_latest_version(
    client: SchemaRegistryClient, subject: str
) -> None:
    schema_id = client.register_schema(subject, V1)

    looked_up = client.lookup_schema(subject, V1)
    latest = client.get_latest_version(subject)

    assert (looked_up.schema_id, looked_up.version) == (schema_id, 1)
    assert (latest.schema_id, latest.version) == (schema_id, 1)
    assert json.loads(client.get_schema(schema_id).schema_str or "") == json.loads(V1.schema_str or "")


def test_registering_the_same_schema_again_returns_the_same_id(
    client: SchemaRegistryClient, subject: str
) -> None:
    assert client.register_schema(subject, V1) == client.register_schema(subject, V1)


def test_global_compatibility_is_backward_and_can_be_overridden_per_subject(
    client: SchemaRegistryClient, subject: str
) -> None:
    client.register_schema(subject, V1)

    client.set_compatibility(subject, "FULL")

    assert client.get_compatibility() == "BACKWARD"
    assert client.get_compatibility(subject) == "FULL"


def test_backward_compatible_evolution_is_accepted_as_version_2(
    client: SchemaRegistryClient, subject: str
) -> None:
    client.register_schema(subject, V1)

    assert client.test_compatibility(subject, V2_WITH_DEFAULT) is True
    client.register_schema(subject, V2_WITH_DEFAULT)
    assert client.get_latest_version(subject).version == 2


def test_incompatible_evolution_is_rejected_under_backward(
    client: SchemaRegistryClient, subject: str
) -> None:
    client.register_schema(subject, V1)

    assert client.test_compatibility(subject, V2_WITHOUT_DEFAULT) is False
    with pytest.raises(SchemaRegistryError) as rejected:
        client.register_schema(subject, V2_WITHOUT_DEFAULT)
    assert rejected.value.http_status_code == 409
    assert client.get_versions(subject) == [1]


def test_the_registry_keeps_its_schemas_in_kafka_topics_that_never_lose_messages(
    client: SchemaRegistryClient, subject: str, kafka_bootstrap: str
) -> None:
    """KafkaSQL storage: registering a schema appends to the journal, which is neither compacted
    nor subject to retention (docs/stack.md)."""
    prefix = os.environ.get("SCHEMA_REGISTRY_TOPIC_PREFIX", "_registry")
    journal = f"{prefix}.journal"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})

    def journal_size() -> int:
        partitions = admin.list_topics(topic=journal, timeout=10).topics[journal].partitions
        offsets = admin.list_offsets({TopicPartition(journal, p): OffsetSpec.latest() for p in partitions})
        return sum(future.result(timeout=10).offset for future in offsets.values())

    before = journal_size()
    client.register_schema(subject, V1)

    assert journal_size() > before
    resources = [ConfigResource(ConfigResource.Type.TOPIC, f"{prefix}.{t}") for t in ("journal", "snapshots")]
    for resource, future in admin.describe_configs(resources).items():
        config = future.result(timeout=10)
        settings = {k: config[k].value for k in ("cleanup.policy", "retention.ms", "retention.bytes")}
        assert settings == {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}, (
            resource
        )
