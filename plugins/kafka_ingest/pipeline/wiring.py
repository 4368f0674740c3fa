"""Assembles an :class:`IngestionJob` from connection settings, outside Airflow's reach.

The operator calls this with what its hooks read from Airflow Connections; the benchmark and
tests call it with plain settings. The schema pre-check happens here, once, before any producer
exists, so an incompatible schema fails the run before anything is produced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from kafka_ingest.batches import RunInfo
from kafka_ingest.encode.table import make_table_encoder
from kafka_ingest.pipeline.job import IngestionJob
from kafka_ingest.pipeline.schema_guard import SchemaGuard, SchemaStamp, schema_fingerprint
from kafka_ingest.pipeline.settings import JobSettings
from kafka_ingest.provision.topics import require_topics
from kafka_ingest.publish.checkpoints import CheckpointStore
from kafka_ingest.publish.config import producer_config
from kafka_ingest.registry import (
    IncompatibleSchemaError,
    LoadedSchema,
    SchemaCheckError,
    load_schema,
    resolve_schema_id,
)
from kafka_ingest.runtime.metrics import TopicMetrics
from kafka_ingest.specs import TopicSpec


def build_job(
    spec: TopicSpec,
    settings: JobSettings,
    *,
    kafka_config: Mapping[str, Any],
    registry_client: SchemaRegistryClient,
    checkpoint_topic: str,
    auto_register: bool,
    metrics: TopicMetrics,
    run: RunInfo,
    producer_overrides: Mapping[str, Any] | None = None,
) -> tuple[IngestionJob, int]:
    """The job and the value schema id it encodes with.

    A publishing run first checks that its three topics exist (nothing registered, nothing read
    otherwise): brokers do not create topics, ``topics ensure`` does.
    """
    checkpoints = (
        None
        if settings.validate_only
        else _checked_store(spec, settings, kafka_config, checkpoint_topic, producer_overrides)
    )
    schema = load_schema(spec.schema_path)
    if settings.validate_only:
        schema_id = validate_only_schema_id(registry_client, spec.subject, schema)
    else:
        schema_id = resolve_schema_id(registry_client, spec.subject, schema, auto_register=auto_register)
    encoder = make_table_encoder(schema, schema_id, columnar=settings.columnar_encoder)
    if settings.validate_only:
        return IngestionJob(
            spec, settings, encoder=encoder, producer_factory=None, checkpoints=None, metrics=metrics, run=run
        ), schema_id

    def producer_factory(transactional_id: str) -> Producer:
        config = producer_config(kafka_config, transactional_id, producer_overrides)
        config["stats_cb"] = metrics.record_librdkafka_stats
        return Producer(config)

    job = IngestionJob(
        spec,
        settings,
        encoder=encoder,
        producer_factory=producer_factory,
        checkpoints=checkpoints,
        metrics=metrics,
        run=run,
        schema_guard=SchemaGuard(
            registry_client, spec.subject, SchemaStamp(schema_id, schema_fingerprint(schema.text))
        ),
    )
    return job, schema_id


def _checked_store(
    spec: TopicSpec,
    settings: JobSettings,
    kafka_config: Mapping[str, Any],
    checkpoint_topic: str,
    producer_overrides: Mapping[str, Any] | None,
) -> CheckpointStore:
    """The checkpoint store, once the run's topics are known to exist."""
    transaction_timeout_s = (
        producer_config(kafka_config, "", producer_overrides)["transaction.timeout.ms"] / 1000
    )
    checkpoints = CheckpointStore(
        checkpoint_topic,
        client_config=dict(kafka_config),
        # Outlast a transaction a crashed task left open: the broker aborts it after its timeout.
        read_timeout_s=float(transaction_timeout_s) + 30.0,
    )
    # The job's bound on a Kafka call, not 30 s.
    require_topics(checkpoints.admin(), (spec.topic, spec.dlq_topic), timeout_s=settings.timeout_s)
    checkpoints.ensure_topic(timeout_s=settings.timeout_s)
    return checkpoints


def validate_only_schema_id(client: SchemaRegistryClient, subject: str, schema: LoadedSchema) -> int:
    """A dry run never registers: the registered id if there is one, else 0.

    An incompatible schema still fails the dry run, as it would fail the real one.
    """
    try:
        return resolve_schema_id(client, subject, schema, auto_register=False)
    except IncompatibleSchemaError:
        raise
    except SchemaCheckError:
        return 0
