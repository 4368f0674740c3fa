"""Specifications for the schema pre-check: a schema the registry will not take stops the run
before anything is produced (no record, no DLQ record, no checkpoint), with a message that names
the subject and the versions, and the operator fails the task without retries."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from ingest_helpers import DATE, Endpoints, read_topic, run_job, task_context, with_topic

from kafka_ingest.hooks.schema_registry import DEFAULT_TIMEOUT_S
from kafka_ingest.operators.datasets import OrdersToKafkaOperator
from kafka_ingest.registry import IncompatibleSchemaError, SchemaCheckError
from kafka_ingest.specs import TopicSpec
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.testing.samples import DayManifest, write_day
from kafka_ingest.topics.orders import ORDERS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> DayManifest:
    return write_day(tmp_path_factory.mktemp("orders"), "orders", DATE, rows=50, formats=("csv",))


@pytest.fixture
def spec(unique_name: Callable[[str], str]) -> TopicSpec:
    return with_topic(ORDERS, unique_name("orders"))


def orders_schema(change: Callable[[list[dict[str, object]]], None]) -> str:
    raw = json.loads(ORDERS.schema_path.read_text())
    change(raw["fields"])
    return json.dumps(raw)


def user_id_as_long(fields: list[dict[str, object]]) -> None:
    next(f for f in fields if f["name"] == "user_id")["type"] = "long"


def operator(
    spec: TopicSpec, endpoints: Endpoints, day: DayManifest, *, auto_register: bool = True
) -> OrdersToKafkaOperator:
    provision_topics(endpoints.bootstrap, spec, checkpoint_topic=endpoints.checkpoint_topic)
    return OrdersToKafkaOperator(
        task_id="publish",
        extract_path=day.files,
        extract_date=DATE,
        topic=spec.topic,
        checkpoint_topic=endpoints.checkpoint_topic,
        auto_register=auto_register,
    )


def assert_nothing_was_produced(endpoints: Endpoints, spec: TopicSpec) -> None:
    assert read_topic(endpoints.bootstrap, spec.topic, isolation="read_uncommitted") == []
    assert read_topic(endpoints.bootstrap, spec.dlq_topic, isolation="read_uncommitted") == []
    checkpoints = read_topic(endpoints.bootstrap, endpoints.checkpoint_topic)
    assert [c.key for c in checkpoints if (c.key or b"").startswith(spec.topic.encode())] == []


def test_a_task_against_an_incompatible_registered_version_fails_before_producing_anything(
    endpoints: Endpoints, day: DayManifest, spec: TopicSpec
) -> None:
    registry = endpoints.registry()
    registry.register_schema(spec.subject, Schema(orders_schema(user_id_as_long), "AVRO"))

    with pytest.raises(AirflowFailException) as failed:
        operator(spec, endpoints, day).execute(task_context())  # type: ignore[arg-type]

    assert isinstance(failed.value.__cause__, IncompatibleSchemaError)
    message = str(failed.value)
    assert f"'{spec.subject}'" in message
    assert "version 1" in message
    assert "user_id" in message
    assert registry.get_versions(spec.subject) == [1]
    assert_nothing_was_produced(endpoints, spec)


def test_a_local_schema_file_incompatible_with_the_latest_version_fails_before_producing_anything(
    endpoints: Endpoints, day: DayManifest, spec: TopicSpec, tmp_path: Path
) -> None:
    registry = endpoints.registry()
    registry.register_schema(spec.subject, Schema(ORDERS.schema_path.read_text(), "AVRO"))
    registry.register_schema(
        spec.subject,
        Schema(orders_schema(lambda f: f.append({"name": "note", "type": "string", "default": ""})), "AVRO"),
    )
    variant = tmp_path / "orders-with-channel.avsc"
    variant.write_text(orders_schema(lambda f: f.append({"name": "channel", "type": "string"})))

    with pytest.raises(IncompatibleSchemaError) as failed:
        run_job(endpoints, replace(spec, schema_file=str(variant)), day.files)

    message = str(failed.value)
    assert f"'{spec.subject}'" in message
    assert "version 2" in message
    assert "channel" in message
    assert registry.get_versions(spec.subject) == [1, 2]
    assert_nothing_was_produced(endpoints, spec)


def test_without_auto_register_a_subject_without_versions_fails_the_task_clearly(
    endpoints: Endpoints, day: DayManifest, spec: TopicSpec
) -> None:
    with pytest.raises(AirflowFailException) as failed:
        operator(spec, endpoints, day, auto_register=False).execute(task_context())  # type: ignore[arg-type]

    assert type(failed.value.__cause__) is SchemaCheckError
    message = str(failed.value)
    assert f"'{spec.subject}'" in message
    assert "no versions" in message
    assert "auto_register" in message
    assert (
        spec.subject
        not in SchemaRegistryClient(
            {"url": endpoints.registry_url, "timeout": DEFAULT_TIMEOUT_S}
        ).get_subjects()
    )
    assert_nothing_was_produced(endpoints, spec)
