"""What a topic's own tests need: its rules on a few rows, its records, one day through its DAG.

The framework owns the standard checks, so a topic's tests (the ones ``python -m kafka_ingest
scaffold`` writes) state only what is particular to the topic: rows, the rules they fail, the
records they become, the sample day's outcome.

- :func:`failed_rules` and :func:`records` need no stack: rows go through ``prepare``, the spec's
  Great Expectations suite and an Avro round trip through the spec's schema file.
- :func:`run_day` runs the topic's DAG for one day against the local stack with ``dag.test()``,
  under a dag id and topic of its own (so runs never see each other's records), and reads back
  what a consumer would: the values decoded by confluent-kafka's ``AvroDeserializer`` and the DLQ
  envelopes. Given a topic (a shared one, e.g. on a development cluster), it reads from where
  that topic ended before the run, so the read costs what the run wrote however much the topic
  already holds, and keeps the records of its own run.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import fastavro
import pandas as pd
import pyarrow as pa

from kafka_ingest.encode.avro import records_from_table
from kafka_ingest.registry import load_schema
from kafka_ingest.specs import TopicSpec
from kafka_ingest.testing.topics import TopicRecord, end_offsets, read_topic
from kafka_ingest.validate.dedup import FIRST_OCCURRENCE_COLUMN

if TYPE_CHECKING:
    from kafka_ingest.operators.extract_to_kafka import ExtractToKafkaOperator

Row = Mapping[str, Any]
EXTRACTS_ROOT_VARIABLE = "AIRFLOW_VAR_EXTRACTS_ROOT"


def frame_of(spec: TopicSpec, rows: Sequence[Row]) -> pd.DataFrame:
    """Rows as the readers hand them on: one text column per spec column, none a duplicate key."""
    schema = pa.schema([(column, pa.string()) for column in spec.all_columns])
    frame = pa.Table.from_pylist([dict(row) for row in rows], schema=schema).to_pandas()
    frame[FIRST_OCCURRENCE_COLUMN] = True
    return frame


def failed_rules(spec: TopicSpec, rows: Sequence[Row]) -> list[tuple[str, ...]]:
    """The rules each row fails (none: it would be published), judged as in a run.

    All rows are validated in one batch, as the pipeline does; the day-level duplicate-key rule
    is left out (every row counts as its key's first occurrence).
    """
    from kafka_ingest.validate.validator import BatchValidator

    outcome = BatchValidator(spec).validate(spec.prepare(frame_of(spec, rows)))
    return [outcome.failed_rules.get(position, ()) for position in range(len(rows))]


def records(spec: TopicSpec, rows: Sequence[Row]) -> list[dict[str, Any]]:
    """The records valid rows become, as a consumer decodes them (an Avro round trip with fastavro).

    Raises ``AssertionError`` naming the rows that fail a rule: only valid rows become records.
    """
    invalid = {position: rules for position, rules in enumerate(failed_rules(spec, rows)) if rules}
    if invalid:
        raise AssertionError(f"{spec.dataset}: rows fail rules, so they become no record: {invalid}")
    schema = load_schema(spec.schema_path).parsed
    decoded = []
    for record in records_from_table(spec.to_table(spec.prepare(frame_of(spec, rows)))):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema, record)
        buffer.seek(0)
        value = fastavro.schemaless_reader(buffer, schema, schema)
        assert isinstance(value, dict)
        decoded.append(value)
    return decoded


@dataclass(frozen=True)
class DayRun:
    """One day's run of a topic's DAG, read back from the stack."""

    dag_id: str
    topic: str
    state: str
    task_states: dict[str, str]
    values: list[dict[str, Any]]
    dlq: list[dict[str, Any]]

    def dlq_rules(self, file_name: str) -> dict[int, tuple[str, ...]]:
        """Row number in ``file_name`` (1 = first data row) -> the rules its DLQ record names."""
        return {
            int(envelope["source"]["row"]): tuple(envelope["failed_rules"])
            for envelope in self.dlq
            if PurePosixPath(envelope["source"]["file"]).name == file_name
        }


def run_day(
    operator_class: type[ExtractToKafkaOperator],
    extracts_root: str | Path,
    day: str,
    *,
    kafka_bootstrap: str,
    schema_registry_url: str,
    conf: Mapping[str, Any] | None = None,
    topic: str | None = None,
) -> DayRun:
    """Run ``operator_class``'s DAG (``build_ingest_dag``) for ``day`` over ``extracts_root``.

    The DAG gets a dag id of its own and, unless ``topic`` names one, a topic of its own too
    (``<topic>.it-<hex>``). It is registered in the metadata DB as the dag-processor would
    (``dag.test()`` runs only DAGs it knows) and deleted from it afterwards; its topics stay, for
    reading after a failure. What is read back starts where the topics ended before the run and
    is only this run's (its dag id), so a topic's history costs nothing.
    """
    from kafka_ingest.dag_factory import build_ingest_dag
    from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC
    from kafka_ingest.testing.provision import provision_topics

    spec = operator_class.spec
    if spec is None:
        raise ValueError(f"{operator_class.__name__} sets no spec: it has no DAG to run.")
    suffix = uuid.uuid4().hex[:8]
    dag = build_ingest_dag(
        operator_class, dag_id=f"it_{spec.dataset}_{suffix}", topic=topic or f"{spec.topic}.it-{suffix}"
    )
    publish: Any = dag.get_task("publish")  # mapped: its arguments are in partial_kwargs
    topic = str(publish.partial_kwargs["topic"])
    provision_topics(
        kafka_bootstrap,
        replace(spec, topic=topic),
        checkpoint_topic=str(publish.partial_kwargs.get("checkpoint_topic", DEFAULT_CHECKPOINT_TOPIC)),
    )
    starts = {name: end_offsets(kafka_bootstrap, name) for name in (topic, f"{topic}.dlq")}
    _register(dag)
    try:
        with _environment(EXTRACTS_ROOT_VARIABLE, str(extracts_root)):
            run = dag.test(
                logical_date=datetime.fromisoformat(day).replace(tzinfo=UTC), run_conf=dict(conf or {})
            )
        task_states = {
            ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state)
            for ti in run.get_task_instances()
        }
        state = str(run.state)
    finally:
        _forget(dag.dag_id)
    return DayRun(
        dag_id=dag.dag_id,
        topic=topic,
        state=state,
        task_states=task_states,
        values=_decoded_values(
            schema_registry_url,
            topic,
            [
                r
                for r in read_topic(kafka_bootstrap, topic, since=starts[topic])
                if r.header("dag_id") == dag.dag_id
            ],
        ),
        dlq=[
            envelope
            for record in read_topic(kafka_bootstrap, f"{topic}.dlq", since=starts[f"{topic}.dlq"])
            if (envelope := json.loads(record.value))["run"]["dag_id"] == dag.dag_id
        ],
    )


def _register(dag: Any) -> None:
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def _forget(dag_id: str) -> None:
    from airflow.api.common.delete_dag import delete_dag

    delete_dag(dag_id, keep_records_in_log=False)


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def _decoded_values(registry_url: str, topic: str, records: Sequence[TopicRecord]) -> list[dict[str, Any]]:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from kafka_ingest.hooks.schema_registry import DEFAULT_TIMEOUT_S

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry_url, "timeout": DEFAULT_TIMEOUT_S}))
    context = SerializationContext(topic, MessageField.VALUE)
    return [deserializer(record.value, context) for record in records]
