"""Specification for the schema guard on the real stack: a registry reset on purpose.

A day is published against the stack's registry; then the operator is pointed at a second,
empty registry (a private Apicurio with in-memory storage) in which the id the day's records
carry was handed to another schema first. Reprocessing the day must fail the task at once,
permanently, naming the subject, the id and both fingerprints, and produce nothing at all: no
record, no DLQ record, no checkpoint, not even an aborted transaction.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from ingest_helpers import DATE, Endpoints, Record, read_topic, run_job, task_context, with_topic

from kafka_ingest.checkpoints import CheckpointStore, checkpoint_key
from kafka_ingest.operators.datasets import OrdersToKafkaOperator
from kafka_ingest.schema_guard import SchemaGuard, SchemaIdChangedError, SchemaStamp, schema_fingerprint
from kafka_ingest.testing.samples import write_day
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.topics.payments import PAYMENTS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from stack import PrivateRegistry, artifacts, java_for

pytestmark = pytest.mark.integration
RESET_CONN_ID = "schema_registry_reset"


@pytest.fixture(scope="module")
def empty_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRegistry]:
    """A second Apicurio, in-memory: what the stack's registry looked like before KafkaSQL, after
    a restart."""
    _, jar = artifacts()
    registry = PrivateRegistry(tmp_path_factory.mktemp("reset-registry"), java_for(21, "REGISTRY_JAVA"), jar)
    registry.start()
    try:
        registry.wait_ready(timeout_s=180)
        yield registry
    finally:
        registry.stop()


def hand_out_ids_up_to(client: SchemaRegistryClient, schema_id: int, last: str) -> None:
    """Registers fillers, then ``last``, so that ``schema_id`` names ``last`` (ids are content ids,
    handed out in order by a fresh Apicurio)."""
    for n in range(1, schema_id):
        filler = {"type": "record", "name": f"Filler{n}", "fields": [{"name": "n", "type": "int"}]}
        client.register_schema("filler-value", Schema(json.dumps(filler), "AVRO"))
    assert client.register_schema("other-value", Schema(last, "AVRO")) == schema_id


def committed(bootstrap: str, topic: str) -> list[Record]:
    """What a read_committed consumer sees, in partition and offset order (partitions interleave)."""
    return sorted(read_topic(bootstrap, topic), key=lambda r: (r.partition, r.offset))


def end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """Every partition's high watermark, which an aborted transaction moves too."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=10).topics
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "it-guard-offsets"})
    try:
        return {
            (topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for topic in topics
            if topic in metadata
            for p in metadata[topic].partitions
        }
    finally:
        consumer.close()


def test_a_registry_whose_ids_now_name_other_schemas_fails_the_task_before_producing(
    endpoints: Endpoints,
    empty_registry: PrivateRegistry,
    tmp_path: Path,
    unique_name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = with_topic(ORDERS, unique_name("guard"))
    day = write_day(tmp_path, "orders", DATE, rows=40)
    published = run_job(endpoints, spec, day.files)
    schema_id = int(published["schema_id"])
    reset = SchemaRegistryClient({"url": empty_registry.url})
    payments_text = PAYMENTS.schema_path.read_text()
    hand_out_ids_up_to(reset, schema_id, payments_text)
    topics = [spec.topic, spec.dlq_topic, endpoints.checkpoint_topic]
    before = {topic: committed(endpoints.bootstrap, topic) for topic in topics}
    offsets_before = end_offsets(endpoints.bootstrap, topics)
    conn = {"conn_type": "schema_registry", "host": empty_registry.url}
    monkeypatch.setenv(f"AIRFLOW_CONN_{RESET_CONN_ID.upper()}", json.dumps(conn))
    operator = OrdersToKafkaOperator(
        task_id="publish",
        extract_path=day.files,
        extract_date=DATE,
        topic=spec.topic,
        schema_registry_conn_id=RESET_CONN_ID,
        checkpoint_topic=endpoints.checkpoint_topic,
        reprocess=True,
    )

    with pytest.raises(AirflowFailException) as failed:
        operator.execute(task_context())  # type: ignore[arg-type]

    assert isinstance(failed.value.__cause__, SchemaIdChangedError)
    message = str(failed.value)
    expected = [
        f"'{spec.subject}'",
        f"schema id {schema_id}",
        schema_fingerprint(ORDERS.schema_path.read_text()),
        schema_fingerprint(payments_text),
        "Restore the registry",
    ]
    assert [part for part in expected if part not in message] == []
    assert {topic: committed(endpoints.bootstrap, topic) for topic in topics} == before
    assert end_offsets(endpoints.bootstrap, topics) == offsets_before


def test_the_stack_registry_returns_the_recorded_schema_for_a_checkpoints_id(
    endpoints: Endpoints, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    """What a later run's guard asks (a run with another current id, so the registry is really
    asked): Apicurio's answer for the recorded id has the local schema file's fingerprint."""
    spec = with_topic(ORDERS, unique_name("guard"))
    day = write_day(tmp_path, "orders", DATE, rows=20)
    first = run_job(endpoints, spec, day.files)
    key = checkpoint_key(spec.topic, spec.dataset, DATE, Path(day.files[0]).name)
    checkpoint = CheckpointStore(
        endpoints.checkpoint_topic, client_config={"bootstrap.servers": endpoints.bootstrap}
    ).load(key)
    assert checkpoint is not None
    assert (checkpoint.schema_id, checkpoint.schema_fingerprint) == (
        first["schema_id"],
        schema_fingerprint(ORDERS.schema_path.read_text()),
    )
    asked: list[int] = []
    client = endpoints.registry()
    get_schema = client.get_schema
    client.get_schema = lambda schema_id, *a, **k: asked.append(schema_id) or get_schema(schema_id, *a, **k)  # type: ignore[method-assign]

    SchemaGuard(client, spec.subject, SchemaStamp(first["schema_id"] + 1000, "another")).check(checkpoint)

    assert asked == [first["schema_id"]]
