"""Assembles a :class:`ReplayJob` from connection settings, outside Airflow's reach.

The operator and the CLI both come through here. The value schema is resolved as ingestion does
(``wiring.build_job``): a dry run never registers, and an incompatible schema fails before
anything is produced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from kafka_ingest.batches import RunInfo
from kafka_ingest.encode.table import make_table_encoder
from kafka_ingest.pipeline.wiring import validate_only_schema_id
from kafka_ingest.provision.access import READ, READ_WRITE, check_kafka_access
from kafka_ingest.publish.config import producer_config
from kafka_ingest.registry import load_schema, resolve_schema_id
from kafka_ingest.replay.audit import DEFAULT_REPLAYS_TOPIC
from kafka_ingest.replay.corrections import load_corrections
from kafka_ingest.replay.job import ReplayJob, ReplaySettings
from kafka_ingest.runtime.metrics import TopicMetrics
from kafka_ingest.specs import TopicSpec


def build_replay_job(
    spec: TopicSpec,
    settings: ReplaySettings,
    *,
    kafka_config: Mapping[str, Any],
    registry_client: SchemaRegistryClient,
    checkpoint_topic: str,
    metrics: TopicMetrics,
    run: RunInfo,
    auto_register: bool = False,
    replays_topic: str = DEFAULT_REPLAYS_TOPIC,
    producer_overrides: Mapping[str, Any] | None = None,
    conn_id: str = "kafka",
) -> ReplayJob:
    # A bad corrections file is the most likely mistake: say so before touching the registry or Kafka.
    corrections = load_corrections(settings.corrections_file, spec) if settings.corrections_file else None
    # A replay reads the DLQ and the topic, which the ingest principal may only write: on a secured
    # cluster it runs as a principal of its own (User:replay, docs/security.md). A missing ACL is
    # named before anything is read, not found by a read that waits out its timeout.
    needs: dict[str, tuple[str, ...]]
    if settings.dry_run:
        needs = {spec.topic: READ, spec.dlq_topic: READ}
    else:
        needs = {t: READ_WRITE for t in (spec.topic, spec.dlq_topic, checkpoint_topic, replays_topic)}
    check_kafka_access(kafka_config, conn_id, needs=needs, timeout_s=settings.timeout_s)
    schema = load_schema(spec.schema_path)
    if settings.dry_run:
        schema_id = validate_only_schema_id(registry_client, spec.subject, schema)
    else:
        schema_id = resolve_schema_id(registry_client, spec.subject, schema, auto_register=auto_register)
    transaction_timeout_s = (
        producer_config(kafka_config, "", producer_overrides)["transaction.timeout.ms"] / 1000
    )

    def producer_factory(transactional_id: str) -> Producer:
        config = producer_config(kafka_config, transactional_id, producer_overrides)
        config["stats_cb"] = metrics.record_librdkafka_stats
        return Producer(config)

    return ReplayJob(
        spec,
        # Outlast a transaction a crashed writer left open: the broker aborts it after its timeout.
        settings
        if settings.read_timeout_s > transaction_timeout_s
        else _longer_reads(settings, transaction_timeout_s),
        kafka_config=kafka_config,
        encoder=make_table_encoder(schema, schema_id),
        metrics=metrics,
        run=run,
        producer_factory=None if settings.dry_run else producer_factory,
        checkpoint_topic=checkpoint_topic,
        replays_topic=replays_topic,
        corrections=corrections,
    )


def _longer_reads(settings: ReplaySettings, transaction_timeout_s: float) -> ReplaySettings:
    from dataclasses import replace

    return replace(settings, read_timeout_s=transaction_timeout_s + 30.0)
